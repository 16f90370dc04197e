package kdclientcli

import (
	"fmt"
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
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		io.WriteString(stdout, completionUsage)
		return 0
	}
	if len(args) != 1 || !completion.Has(args[0]) {
		fmt.Fprintf(stderr, "kdclient completion: give one shell: bash, zsh or fish\n%s", completionUsage)
		return 2
	}
	if err := completion.Write(stdout, args[0], completionSpec()); err != nil {
		fmt.Fprintf(stderr, "kdclient completion: %v\n", err)
		return 1
	}
	return 0
}

const completionUsage = `Usage: kdclient completion bash|zsh|fish

Prints a script that completes kdclient's flags, commands and transports.
  bash:  source <(kdclient completion bash)   (or save it in /etc/bash_completion.d/kdclient)
  zsh:   source <(kdclient completion zsh)    (or save it as _kdclient in a directory of $fpath)
  fish:  kdclient completion fish | source    (or save it in ~/.config/fish/completions/kdclient.fish)
`
