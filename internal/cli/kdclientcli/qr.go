package kdclientcli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"kdsrv/internal/cli/clikit"
	"kdsrv/internal/discovery"
)

func runQR(ctx context.Context, o cliOptions, pos []string, stdout, stderr io.Writer, jsonOut bool) int {
	report := clikit.Reporter{Stderr: stderr, JSON: jsonOut, Program: "kdclient"}
	usage := func(format string, a ...any) int { return report.Usage("-QR: "+format, a...) }
	fail := report.Fail
	if len(pos) > 1 {
		return usage("give at most one host, got %q", pos)
	}
	if o.qrPort <= 0 || o.qrPort > 65535 {
		return usage("-qr-port %d is not a UDP port (1-65535)", o.qrPort)
	}
	timeout := 2 * time.Second // -QR's own default, not the session one
	if o.timeoutSet {
		if o.timeout <= 0 {
			return usage("-timeout must be positive")
		}
		timeout = o.timeout
	}
	if o.browse {
		if len(pos) > 0 {
			return usage("-browse lists the whole local network; it takes no host (got %q)", pos[0])
		}
		return runBrowse(ctx, o, timeout, stdout, fail)
	}
	host := ""
	if len(pos) == 1 {
		// \\Host as typed for the original; an unquoted \\Host reaches
		// us from a Unix shell as \Host.
		host = strings.TrimLeft(pos[0], `\`)
		if host == "" {
			return usage("%q names no host", pos[0])
		}
	}
	res, err := discovery.Query(ctx, host, discovery.QueryOptions{Port: o.qrPort, Timeout: timeout})
	if err != nil {
		return fail("-QR: %v", err)
	}
	display := host
	if display == "" || display == "." || strings.EqualFold(display, "localhost") {
		display = res.Host // this machine: show its name, as the original does
	}
	if res.Truncated {
		fmt.Fprintf(stderr, "kdclient: -QR: %s runs more servers than one answer can list; only the first %d are shown\n", display, len(res.Lines))
	}
	if o.json {
		b, err := discovery.FormatJSON(display, res.Lines)
		if err != nil {
			return fail("-QR: %v", err)
		}
		_, _ = stdout.Write(b)
		return 0
	}
	fmt.Fprint(stdout, discovery.Format(display, res.Lines))
	return 0
}

// runBrowse lists the servers announced on the local network by multicast
// DNS, one line per transport.
func runBrowse(ctx context.Context, o cliOptions, timeout time.Duration, stdout io.Writer, fail func(string, ...any) int) int {
	res, err := discovery.Browse(ctx, timeout)
	if err != nil {
		return fail("-QR -browse: %v", err)
	}
	if o.json {
		if res == nil {
			res = []discovery.BrowseResult{}
		}
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fail("-QR -browse: %v", err)
		}
		_, _ = stdout.Write(append(b, '\n'))
		return 0
	}
	if len(res) == 0 {
		fmt.Fprintln(stdout, "No KD connection servers announced on the local network.")
		return 0
	}
	for _, r := range res {
		for _, l := range r.Lines {
			fmt.Fprintf(stdout, "%s (%s:%d) - %s\n", r.Instance, r.Host, r.Port, l)
		}
	}
	return 0
}
