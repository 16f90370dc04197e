// Package clikit holds the command-line pieces kdsrv and kdclient share:
// parsing the flags (with JSON errors under -json or -log-format json) and
// the -trace flags.
package clikit

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"

	"kdsrv/internal/kdtrace"
	"kdsrv/internal/logx"
)

// ParseFlags parses args with the flag set newFlagSet builds around the
// writer it is given for flag errors and -h. With jsonOut, that writer is
// a buffer: the help text is copied to stderr as it is, and a flag error
// becomes one JSON object naming program. With interspersed, words that
// are not flags may stand among the flags; they are returned in order.
// Otherwise parsing stops at the first such word and the rest is returned.
//
// ok false means the caller exits with code: 0 after -h, 2 after a flag
// error (already reported).
func ParseFlags(program string, args []string, jsonOut, interspersed bool, stderr io.Writer, newFlagSet func(errOut io.Writer) *flag.FlagSet) (rest []string, code int, ok bool) {
	var flagErrs bytes.Buffer
	errOut := stderr
	if jsonOut {
		errOut = &flagErrs // re-written as JSON below
	}
	fs := newFlagSet(errOut)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if jsonOut {
					_, _ = stderr.Write(flagErrs.Bytes()) // the help text itself
				}
				return nil, 0, false
			}
			if jsonOut {
				logx.Fatal(stderr, true, program, err.Error(), program+" -h shows the usage")
			}
			return nil, 2, false
		}
		args = fs.Args()
		if !interspersed || len(args) == 0 {
			return append(rest, args...), 0, true
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// TraceFlags are -trace FILE and -trace-format F.
type TraceFlags struct {
	File   string // -trace: "" none, "-" standard error
	Format string // -trace-format: text or json
}

// Register defines -trace and -trace-format on fs.
func (f *TraceFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.File, "trace", "", "write a decoded trace of every KD packet and link event to FILE (- = standard error)")
	fs.StringVar(&f.Format, "trace-format", "text", "trace format: text or json")
}

// CheckFormat parses -trace-format.
func (f *TraceFlags) CheckFormat() (kdtrace.Format, error) {
	format, err := kdtrace.ParseFormat(f.Format)
	if err != nil {
		return format, fmt.Errorf("-trace-format: %w", err)
	}
	return format, nil
}

// Open opens the -trace destination (stderr for "-"); closeFn flushes and
// closes it. Without -trace the tracer is nil and closeFn does nothing.
func (f *TraceFlags) Open(stderr io.Writer) (tr *kdtrace.Tracer, closeFn func() error, err error) {
	format, err := f.CheckFormat()
	if err != nil {
		return nil, nil, err
	}
	if f.File == "" {
		return nil, func() error { return nil }, nil
	}
	w, closeFn, err := kdtrace.Open(f.File, stderr)
	if err != nil {
		return nil, nil, err
	}
	return kdtrace.New(w, format), closeFn, nil
}

// Reporter reports what stops a program, "PROGRAM: MESSAGE" for people or
// with JSON one JSON object (logx.Fatal), and gives the exit code.
type Reporter struct {
	Stderr  io.Writer
	JSON    bool
	Program string
}

// Usage reports a usage error, with the hint that PROGRAM -h shows the
// usage, and returns 2.
func (r Reporter) Usage(format string, a ...any) int {
	logx.Fatal(r.Stderr, r.JSON, r.Program, fmt.Sprintf(format, a...), r.Program+" -h shows the usage")
	return 2
}

// Fail reports a failure and returns 1.
func (r Reporter) Fail(format string, a ...any) int {
	logx.Fatal(r.Stderr, r.JSON, r.Program, fmt.Sprintf(format, a...), "")
	return 1
}
