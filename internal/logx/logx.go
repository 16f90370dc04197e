// Package logx builds the *slog.Logger of kdsrv, kdclient and kdtarget
// from their shared flags (-log-level, -log-format, -v), and keeps floods
// of repeated log lines from filling a disk (Limit).
//
// Libraries take a *slog.Logger in their Config; nil means "log nothing"
// (see OrDiscard). Only the programs decide where lines go and in which
// format.
package logx

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Formats of -log-format.
const (
	FormatText = "text" // key=value lines (slog.TextHandler), the default
	FormatJSON = "json" // one JSON object per line: time, level, msg, attributes
)

// Flags are the logging flags every program shares.
type Flags struct {
	Level   string // -log-level: debug, info, warn or error (default info)
	Format  string // -log-format: text or json (default text)
	Verbose bool   // -v: the same as -log-level debug
}

// Register defines -log-level, -log-format and -v on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Level, "log-level", "", "log level: debug, info, warn or error (default info)")
	fs.StringVar(&f.Format, "log-format", FormatText, "log format: text or json")
	fs.BoolVar(&f.Verbose, "v", false, "log everything (-log-level debug)")
}

// JSON reports whether -log-format json was given (valid or not, so that
// even the error about the other flags can be JSON).
func (f *Flags) JSON() bool { return strings.EqualFold(strings.TrimSpace(f.Format), FormatJSON) }

// Options returns the checked settings; the error names the flag and the
// accepted values.
func (f *Flags) Options() (Options, error) {
	o := Options{Level: slog.LevelInfo, Format: FormatText}
	format := strings.ToLower(strings.TrimSpace(f.Format))
	switch format {
	case "", FormatText:
	case FormatJSON:
		o.Format = FormatJSON
	default:
		return o, fmt.Errorf("-log-format %q: give text or json", f.Format)
	}
	if f.Level != "" {
		l, err := ParseLevel(f.Level)
		if err != nil {
			return o, err
		}
		if f.Verbose && l != slog.LevelDebug {
			return o, fmt.Errorf("-v means -log-level debug; it contradicts -log-level %s: give one of them", f.Level)
		}
		o.Level = l
	}
	if f.Verbose {
		o.Level = slog.LevelDebug
	}
	return o, nil
}

// New returns the logger the flags ask for, writing to w.
func (f *Flags) New(w io.Writer) (*slog.Logger, error) {
	o, err := f.Options()
	if err != nil {
		return nil, err
	}
	return New(w, o), nil
}

// ParseLevel reads debug, info, warn (or warning) or error, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("-log-level %q: give debug, info, warn or error", s)
}

// Options configure New.
type Options struct {
	Level  slog.Level
	Format string // FormatText or FormatJSON
	// Limit bounds repeated lines (see Limit); zero fields take the
	// defaults. Set Limit.Burst to -1 for no limit.
	Limit LimitConfig
}

// New returns a logger writing lines of the given format to w, at level
// and above, with repeated info and warning lines limited (Limit) and
// attributes that name secrets redacted.
func New(w io.Writer, o Options) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: redact}
	var h slog.Handler
	if o.Format == FormatJSON {
		h = slog.NewJSONHandler(w, ho)
	} else {
		h = slog.NewTextHandler(w, ho)
	}
	if o.Limit.Burst >= 0 {
		h = Limit(h, o.Limit)
	}
	return slog.New(h)
}

// OrDiscard returns l, or a logger that discards everything when l is nil:
// libraries call it on their Config's logger.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Discard is a logger that writes nothing.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// secretKeys are attribute keys whose values are never written, whatever a
// caller passes: a second line of defence behind the rule that secrets are
// not logged at all.
var secretKeys = map[string]bool{"password": true, "passwd": true, "key": true, "secret": true, "token": true}

func redact(_ []string, a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "(redacted)")
	}
	return a
}

// Err is the attribute of an error: "err".
func Err(err error) slog.Attr {
	if err == nil {
		return slog.String("err", "")
	}
	return slog.String("err", err.Error())
}

// Round is a duration attribute rounded for people (milliseconds).
func Round(key string, d time.Duration) slog.Attr {
	return slog.String(key, d.Round(time.Millisecond).String())
}

// WantsJSON reports whether args (a command line, before parsing) ask for
// -log-format json, so that even an error about the flags themselves can
// be written as JSON.
func WantsJSON(args []string) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		return strings.EqualFold(strings.TrimSpace(value), FormatJSON)
	}
	return false
}

// Fatal writes the message of a program that cannot go on (bad usage, a
// failed start) to w: "PROG: MSG" and, when hint is set, "(HINT)" on the
// next line, as people read it; with json, one JSON object at level
// ERROR, like every other line of that program's standard error.
func Fatal(w io.Writer, json bool, prog, msg, hint string) {
	if json {
		args := []any{"program", prog}
		if hint != "" {
			args = append(args, "hint", hint)
		}
		New(w, Options{Format: FormatJSON}).Error(msg, args...)
		return
	}
	if hint != "" {
		fmt.Fprintf(w, "%s: %s\n(%s)\n", prog, msg, hint)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", prog, msg)
}
