package kdclientcli

import (
	"io"

	"kdsrv/internal/cli/completion"
)

// completionSpec is kdclient's command line for shell completion: every
// flag of newFlagSet, the commands, and the values worth suggesting.
func completionSpec() completion.Spec {
	var o cliOptions
	fs := newFlagSet(&o, io.Discard)
	cmds := []completion.Command{{Name: "completion", Help: "print a shell completion script", Args: completion.Shells}}
	for _, c := range commands {
		cmds = append(cmds, completion.Command{Name: c.name, Help: c.help})
	}
	return completion.Spec{
		Program: "kdclient",
		Flags: completion.FlagsOf(fs, map[string][]string{
			"k": {"kdsrv:server=@{tcp:server=", "kdsrv:server=@{tcp:clicon=", "kdsrv:server=@{npipe:server=",
				"kdsrv:server=@{ssl:proto=", "kdsrv:server=@{spipe:proto=", "kdsrv:server=@{com:port="},
			"listen":     {"unix:", "tcp:", "npipe:", "pty"},
			"log-level":  {"debug", "info", "warn", "error"},
			"log-format": {"text", "json"},
		}, map[string]bool{flagPasswordFile: true, flagKDNETKeyFile: true, "trace": true}),
		Commands: cmds,
	}
}

// completionMain runs "kdclient completion SHELL".
func completionMain(args []string, stdout, stderr io.Writer) int {
	return completion.Main(args, stdout, stderr, completionSpec(), "flags, commands and transports")
}
