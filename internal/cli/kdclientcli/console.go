package kdclientcli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"kdsrv/internal/client"
	"kdsrv/internal/secret"
	"kdsrv/internal/spec"
)

// runConsole watches the target's console: what kdsrv kept of the text
// the target wrote on its line outside KD packets, then live text, until
// ctx ends (Ctrl-C) or the connection ends.
func runConsole(ctx context.Context, c *spec.Connect, sec *secrets, copts client.Options, o cliOptions, stdout, stderr io.Writer, errf func(string, ...any) int) int {
	conn, err := dial(ctx, c, o, copts, sec, stderr, secret.Prompt)
	if err != nil {
		errf("%v", err)
		if ctx.Err() != nil {
			return InterruptedExitCode(ctx)
		}
		return 1
	}
	defer conn.Close()
	octx, cancel := context.WithTimeout(ctx, o.timeout+5*time.Second)
	opened, err := conn.Watch(octx, c.Trans)
	cancel()
	if err != nil {
		return errf("%v", err)
	}
	copts.Logger.Debug("watching the console", "target", c.Trans.String(), "session", opened.Session, "info", opened.Info)
	enc := json.NewEncoder(stdout)
	err = conn.Console(ctx, func(e client.ConsoleEvent) {
		switch {
		case e.Data != nil && o.json:
			_ = enc.Encode(struct {
				Time string `json:"time"`
				Text string `json:"text"`
			}{time.Now().UTC().Format(time.RFC3339Nano), strings.ToValidUTF8(string(e.Data), "\uFFFD")})
		case e.Data != nil:
			_, _ = io.WriteString(stdout, printable(e.Data))
		case e.Notice != nil:
			fmt.Fprintf(stderr, "kdclient: kdsrv: %s\n", e.Notice.Text)
		case e.State != nil:
			fmt.Fprintf(stderr, "kdclient: target %s: %s\n", e.State.State, e.State.Text)
		}
	})
	if err != nil {
		return errf("%v", err)
	}
	return 0
}

// printable makes console bytes safe for a terminal: text, newlines,
// carriage returns and tabs pass; other control bytes (escape sequences a
// target could use to take over the terminal) and invalid UTF-8 are shown
// as \xNN.
func printable(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\n' || r == '\r' || r == '\t':
			sb.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&sb, `\x%02x`, r)
		default:
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}
