package kdsrvcli

import (
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
	return completion.Main(args, stdout, stderr, completionSpec(), "flags, subcommands and transports")
}
