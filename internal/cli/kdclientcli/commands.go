package kdclientcli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"kdsrv/internal/client"
	"kdsrv/internal/secret"
	"kdsrv/internal/spec"
	"kdsrv/internal/wire"
)

// commands are kdclient's commands as the unknown-command error and shell
// completion name them; parseCommand (and Main, for endpsrv) run them.
// A new command gets a line here too.
var commands = []struct{ name, help string }{
	{"version", "target version: build, machine, kernel base"},
	{"regs", "registers of a processor"},
	{"read", "hex dump of virtual memory: read ADDR LEN"},
	{"write", "write bytes: write ADDR HEX"},
	{"break", "stop the target and show where it stopped"},
	{"go", "resume the target"},
	{"dbgprint", "stream the target's DbgPrint output"},
	{"dump", "copy memory to a file: dump ADDR LEN FILE"},
	{"console", "stream the text the target writes outside KD packets"},
	{"endpsrv", "ask the server to shut down"},
}

// commandList is "version, regs, ...", for messages.
func commandList() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

func parseCommand(o cliOptions, pos []string) (func(context.Context, *client.Commander, *client.Bridge) error, error) {
	name, args := pos[0], pos[1:]
	want := func(n int, form string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s", form)
		}
		return nil
	}
	// memArgs checks the arguments of a command on memory (usage form,
	// n of them) and parses the first, the address, and (maxLen > 0)
	// the second, a length of at most maxLen bytes.
	memArgs := func(n int, form string, maxLen int) (addr uint64, length int, err error) {
		if err := want(n, form); err != nil {
			return 0, 0, err
		}
		if addr, err = client.ParseAddress(args[0]); err != nil || maxLen == 0 {
			return addr, 0, err
		}
		length, err = client.ParseLength(args[1], maxLen)
		return addr, length, err
	}
	switch name {
	case "version", "break", "go", "dbgprint":
		if err := want(0, name); err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *client.Commander, b *client.Bridge) error {
			switch name {
			case "version":
				return cm.Version(ctx)
			case "break":
				return cm.Break(ctx)
			case "go":
				return cm.Go(ctx)
			}
			return cm.DbgPrint(ctx, b.Halted())
		}, nil
	case "regs":
		if err := want(0, "regs [-cpu N]"); err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *client.Commander, _ *client.Bridge) error {
			return cm.Regs(ctx, uint16(o.cpu))
		}, nil
	case "read":
		addr, n, err := memArgs(2, "read ADDR LEN", 1<<20)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, cm *client.Commander, _ *client.Bridge) error { return cm.Read(ctx, addr, n) }, nil
	case "write":
		addr, _, err := memArgs(2, "write ADDR HEX", 0)
		if err != nil {
			return nil, err
		}
		data, err := hex.DecodeString(strings.ReplaceAll(args[1], " ", ""))
		if err != nil || len(data) == 0 {
			return nil, fmt.Errorf("bad data %q: give bytes in hexadecimal, e.g. 90cc", args[1])
		}
		return func(ctx context.Context, cm *client.Commander, _ *client.Bridge) error {
			return cm.Write(ctx, addr, data)
		}, nil
	case "dump":
		addr, n, err := memArgs(3, "dump ADDR LEN FILE", 1<<30)
		if err != nil {
			return nil, err
		}
		file := args[2]
		return func(ctx context.Context, cm *client.Commander, _ *client.Bridge) error {
			return runDump(ctx, cm, addr, n, file, o.keepPartial)
		}, nil
	}
	return nil, fmt.Errorf("unknown command %q (commands: %s)", name, commandList())
}

// dumpStopped is a dump that did not complete: interrupted (ctx ended) or
// failed. Its message says how far it got and what became of the file.
type dumpStopped struct {
	interrupted bool
	msg         string
}

func (e *dumpStopped) Error() string { return e.msg }

// runDump dumps n bytes at addr into file through a client.DumpFile: the
// file is replaced only by a complete dump.
func runDump(ctx context.Context, cm *client.Commander, addr uint64, n int, file string, keepPartial bool) error {
	out, err := client.CreateDumpFile(file)
	if err != nil {
		return err
	}
	err = cm.Dump(ctx, addr, n, out)
	if err == nil {
		return out.Commit()
	}
	// The context ends when the user interrupts kdclient, or when the
	// connection to kdsrv ended (then the dump failed, for that reason).
	interrupted := ctx.Err() != nil
	var lost *connectionLost
	if interrupted && errors.As(context.Cause(ctx), &lost) {
		interrupted, err = false, lost.err
	}
	what := "failed"
	if interrupted {
		what = "interrupted"
	}
	msg := fmt.Sprintf("dump %s after %d of %d bytes", what, out.Written(), n)
	if !interrupted {
		msg += ": " + err.Error()
	}
	partial, perr := out.Abort(keepPartial)
	if _, statErr := os.Stat(file); statErr == nil {
		msg += fmt.Sprintf("; %s left unchanged", file)
	} else {
		msg += fmt.Sprintf("; %s not created", file)
	}
	switch {
	case perr != nil:
		msg += "; " + perr.Error()
	case partial != "":
		msg += fmt.Sprintf("; the %d bytes read are in %s", out.Written(), partial)
	case out.Written() > 0:
		msg += " (-keep-partial keeps the bytes read as FILE.partial)"
	}
	return &dumpStopped{interrupted: interrupted, msg: msg}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runEndpsrv(ctx context.Context, c *spec.Connect, sec *secrets, copts client.Options, o cliOptions, stdout, stderr io.Writer, errf func(string, ...any) int) int {
	conn, err := dial(ctx, c, o, copts, sec, stderr, secret.Prompt)
	if err != nil {
		return errf("%v", err)
	}
	defer conn.Close()
	dctx, cancel := dialContext(ctx, c.Server, o, stderr)
	defer cancel()
	r, err := conn.Control(dctx, wire.CmdShutdown, nil)
	if err != nil {
		return errf("%v", err)
	}
	if r.Status != wire.OK {
		return errf("endpsrv refused: %s", r.Body)
	}
	fmt.Fprintln(stdout, string(r.Body))
	return 0
}
