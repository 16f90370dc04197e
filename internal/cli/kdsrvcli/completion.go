package kdsrvcli

import (
	"fmt"
	"io"

	"kdsrv/internal/cli/completion"
)

// completionSpec is kdsrv's command line for shell completion: every flag
// of newFlagSet, the subcommands, and the values worth suggesting.
func completionSpec() completion.Spec {
	var o options
	fs := newFlagSet(&o, io.Discard)
	return completion.Spec{
		Program: "kdsrv",
		Flags: completion.FlagsOf(fs, map[string][]string{
			"t":          {"tcp:port=", "npipe:pipe=", "ssl:proto=", "spipe:proto=", "com:port="},
			"log-level":  {"debug", "info", "warn", "error"},
			"log-format": {"text", "json"},
		}, map[string]bool{flagPasswordFile: true, flagRegistry: true}),
		Commands: []completion.Command{
			{Name: "cert", Help: "certificates for the ssl and spipe transports", Args: []string{"create", "list"}},
			{Name: "completion", Help: "print a shell completion script", Args: completion.Shells},
		},
	}
}

// completionMain runs "kdsrv completion SHELL".
func completionMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		io.WriteString(stdout, completionUsage)
		return 0
	}
	if len(args) != 1 || !completion.Has(args[0]) {
		fmt.Fprintf(stderr, "kdsrv completion: give one shell: bash, zsh or fish\n%s", completionUsage)
		return 2
	}
	if err := completion.Write(stdout, args[0], completionSpec()); err != nil {
		fmt.Fprintf(stderr, "kdsrv completion: %v\n", err)
		return 1
	}
	return 0
}

const completionUsage = `Usage: kdsrv completion bash|zsh|fish

Prints a script that completes kdsrv's flags, subcommands and transports.
  bash:  source <(kdsrv completion bash)      (or save it in /etc/bash_completion.d/kdsrv)
  zsh:   source <(kdsrv completion zsh)       (or save it as _kdsrv in a directory of $fpath)
  fish:  kdsrv completion fish | source       (or save it in ~/.config/fish/completions/kdsrv.fish)
`
