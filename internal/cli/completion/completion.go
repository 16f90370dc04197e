// Package completion writes shell completion scripts (bash, zsh, fish) for
// kdsrv and kdclient from their flag sets, so that a flag added to a
// program is completed without touching the scripts.
package completion

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Shells are the shells Write knows.
var Shells = []string{"bash", "zsh", "fish"}

// Flag is one flag of a program.
type Flag struct {
	Name   string
	Help   string
	Bool   bool     // takes no value
	Values []string // suggested values (words; completion adds no space after one ending in = : or {)
	File   bool     // the value is a file name
}

// Command is a word a program takes as a command, with the words that may
// follow it.
type Command struct {
	Name string
	Help string
	Args []string
}

// Spec describes a program's command line.
type Spec struct {
	Program  string
	Flags    []Flag
	Commands []Command
}

// FlagsOf lists the flags of fs, with values[name] suggested for a flag
// and files[name] marking a flag whose value is a file.
func FlagsOf(fs *flag.FlagSet, values map[string][]string, files map[string]bool) []Flag {
	var out []Flag
	fs.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		out = append(out, Flag{Name: f.Name, Help: f.Usage, Bool: ok && b.IsBoolFlag(), Values: values[f.Name], File: files[f.Name]})
	})
	return out
}

// Write writes the completion script of shell for s.
func Write(w io.Writer, shell string, s Spec) error {
	var b strings.Builder
	switch shell {
	case "bash":
		bash(&b, s)
	case "zsh":
		zsh(&b, s)
	case "fish":
		fish(&b, s)
	default:
		return fmt.Errorf("unknown shell %q: give one of %s", shell, strings.Join(Shells, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ident makes a shell function name part from a program name.
func ident(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// sq quotes s for a POSIX shell, zsh or fish in single quotes.
func sq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// fsq quotes s in single quotes for fish (which escapes ' and \ inside).
func fsq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func words(ws []string, quote func(string) string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = quote(w)
	}
	return strings.Join(q, " ")
}

// noSpace reports whether a completed value is a prefix to go on typing.
func noSpace(v string) bool {
	return strings.HasSuffix(v, "=") || strings.HasSuffix(v, ":") || strings.HasSuffix(v, "{")
}

// help cleans a flag's help for a one-line description.
func help(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("[", "(", "]", ")", "'", "").Replace(s)
}

func (s Spec) valueFlags() []string {
	var out []string
	for _, f := range s.Flags {
		if !f.Bool {
			out = append(out, f.Name)
		}
	}
	return out
}

func (s Spec) commandNames() []string {
	var out []string
	for _, c := range s.Commands {
		out = append(out, c.Name)
	}
	return out
}

func bash(b *strings.Builder, s Spec) {
	fn := "_" + ident(s.Program) + "_complete"
	fmt.Fprintf(b, "# bash completion for %[1]s. Load it with\n#   source <(%[1]s completion bash)\n# or save it as /etc/bash_completion.d/%[1]s.\n", s.Program)
	fmt.Fprintf(b, "%s() {\n", fn)
	b.WriteString(`    local line="${COMP_LINE:0:COMP_POINT}" cur="" prev="" cmd="" i
    local -a w
    # Split the line ourselves: COMP_WORDS breaks words at : and =, which
    # every transport value holds.
    read -r -a w <<< "$line"
    if [[ "$line" == *" " ]]; then
        w+=("")
    fi
    cur="${w[${#w[@]}-1]}"
    (( ${#w[@]} > 1 )) && prev="${w[${#w[@]}-2]}"
    COMPREPLY=()
    case "$prev" in
`)
	for _, f := range s.Flags {
		if f.Bool {
			continue
		}
		pat := fmt.Sprintf("-%s|--%s", f.Name, f.Name)
		switch {
		case f.File:
			fmt.Fprintf(b, "        %s) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", pat)
		case len(f.Values) > 0:
			fmt.Fprintf(b, "        %s) COMPREPLY=($(compgen -W %s -- \"$cur\")) ;;\n", pat, sq(strings.Join(f.Values, " ")))
		default:
			fmt.Fprintf(b, "        %s) return 0 ;;\n", pat)
		}
	}
	b.WriteString(`        *) prev="" ;;
    esac
    if [[ -z "$prev" ]]; then
        # The command so far: the first word that is neither a flag nor
        # the value of one.
        for (( i=1; i < ${#w[@]}-1; i++ )); do
            case "${w[i]}" in
`)
	if vf := s.valueFlags(); len(vf) > 0 {
		var pats []string
		for _, n := range vf {
			pats = append(pats, "-"+n, "--"+n)
		}
		fmt.Fprintf(b, "                %s) (( i++ )) ;;\n", strings.Join(pats, "|"))
	}
	b.WriteString(`                -*) ;;
                *) cmd="${w[i]}"; break ;;
            esac
        done
        case "$cmd" in
`)
	for _, c := range s.Commands {
		if len(c.Args) > 0 {
			fmt.Fprintf(b, "            %s) COMPREPLY=($(compgen -W %s -- \"$cur\")) ;;\n", c.Name, sq(strings.Join(c.Args, " ")))
		}
	}
	var flags []string
	for _, f := range s.Flags {
		flags = append(flags, "-"+f.Name)
	}
	fmt.Fprintf(b, `            *)
                if [[ "$cur" == -* ]]; then
                    COMPREPLY=($(compgen -W %s -- "$cur"))
                elif [[ -z "$cmd" ]]; then
                    COMPREPLY=($(compgen -W %s -- "$cur"))
                fi ;;
        esac
    fi
`, sq(strings.Join(flags, " ")), sq(strings.Join(s.commandNames(), " ")))
	b.WriteString(`    # bash replaces only the part of the word after its last : or =.
    local head="${cur%"${cur##*[:=]}"}"
    if [[ -n "$head" ]]; then
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]="${COMPREPLY[i]#"$head"}"
        done
    fi
    # A value that goes on (tcp:port=, kdsrv:server=@{) takes no space.
    if (( ${#COMPREPLY[@]} == 1 )) && [[ "${COMPREPLY[0]}" == *[=:{] ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
`)
	fmt.Fprintf(b, "complete -o default -F %s %s\n", fn, s.Program)
}

func zsh(b *strings.Builder, s Spec) {
	p := ident(s.Program)
	fmt.Fprintf(b, "#compdef %[1]s\n# zsh completion for %[1]s. Load it with\n#   source <(%[1]s completion zsh)\n# or save it as _%[1]s in a directory of $fpath.\n\n", s.Program)
	for _, f := range s.Flags {
		if f.Bool || len(f.Values) == 0 {
			continue
		}
		var plain, more []string
		for _, v := range f.Values {
			if noSpace(v) {
				more = append(more, v)
			} else {
				plain = append(plain, v)
			}
		}
		fmt.Fprintf(b, "_%s_flag_%s() {\n", p, ident(f.Name))
		if len(plain) > 0 {
			fmt.Fprintf(b, "    compadd -- %s\n", words(plain, sq))
		}
		if len(more) > 0 {
			fmt.Fprintf(b, "    compadd -S '' -- %s\n", words(more, sq))
		}
		b.WriteString("}\n\n")
	}
	fmt.Fprintf(b, "_%s() {\n    local -a flags cmds\n    local state line\n    flags=(\n", p)
	for _, f := range s.Flags {
		spec := "-" + f.Name + "[" + help(f.Help) + "]"
		switch {
		case f.Bool:
		case f.File:
			spec = "*" + spec + ":file:_files"
		case len(f.Values) > 0:
			spec = "*" + spec + ":" + f.Name + ":_" + p + "_flag_" + ident(f.Name)
		default:
			spec = "*" + spec + ":" + f.Name + ": "
		}
		fmt.Fprintf(b, "        %s\n", sq(spec))
	}
	b.WriteString("    )\n    cmds=(\n")
	for _, c := range s.Commands {
		fmt.Fprintf(b, "        %s\n", sq(c.Name+":"+help(c.Help)))
	}
	b.WriteString(`    )
    _arguments -S $flags '*: :->args' || return
    [[ $state == args ]] || return 0
    if (( ${#line} <= 1 )); then
        _describe command cmds
        return
    fi
    case ${line[1]} in
`)
	for _, c := range s.Commands {
		if len(c.Args) > 0 {
			fmt.Fprintf(b, "        %s) compadd -- %s ;;\n", c.Name, words(c.Args, sq))
		}
	}
	fmt.Fprintf(b, `    esac
}

if [[ "${funcstack[1]}" == "_%[1]s" ]]; then
    _%[1]s "$@"
else
    compdef _%[1]s %[2]s
fi
`, p, s.Program)
}

func fish(b *strings.Builder, s Spec) {
	prog := s.Program
	fmt.Fprintf(b, "# fish completion for %[1]s. Load it with\n#   %[1]s completion fish | source\n# or save it as ~/.config/fish/completions/%[1]s.fish.\n\n", prog)
	fmt.Fprintf(b, "complete -c %s -f\n", prog)
	names := s.commandNames()
	for _, c := range s.Commands {
		fmt.Fprintf(b, "complete -c %s -n %s -a %s -d %s\n", prog, fsq("not __fish_seen_subcommand_from "+strings.Join(names, " ")), fsq(c.Name), fsq(help(c.Help)))
		if len(c.Args) > 0 {
			fmt.Fprintf(b, "complete -c %s -n %s -a %s\n", prog, fsq("__fish_seen_subcommand_from "+c.Name), fsq(words(c.Args, fsq)))
		}
	}
	for _, f := range s.Flags {
		line := fmt.Sprintf("complete -c %s -o %s", prog, f.Name)
		switch {
		case f.Bool:
		case f.File:
			line += " -r -F"
		case len(f.Values) > 0:
			line += " -x -a " + fsq(words(f.Values, fsq))
		default:
			line += " -x"
		}
		if f.Help != "" {
			line += " -d " + fsq(help(f.Help))
		}
		b.WriteString(line + "\n")
	}
}

// Has reports whether shell is one Write knows.
func Has(shell string) bool { return slices.Contains(Shells, shell) }

// Main runs "PROGRAM completion SHELL" for the program s describes: args
// are the words after "completion"; completes says what the script
// completes, for the help (Usage), printed for -h and after a usage error.
// It returns the exit code: 0, 1 when the script cannot be written, 2 for
// a usage error.
func Main(args []string, stdout, stderr io.Writer, s Spec, completes string) int {
	usage := Usage(s.Program, completes)
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		io.WriteString(stdout, usage)
		return 0
	}
	if len(args) != 1 || !Has(args[0]) {
		fmt.Fprintf(stderr, "%s completion: give one shell: bash, zsh or fish\n%s", s.Program, usage)
		return 2
	}
	if err := Write(stdout, args[0], s); err != nil {
		fmt.Fprintf(stderr, "%s completion: %v\n", s.Program, err)
		return 1
	}
	return 0
}

// Usage is the help of "PROGRAM completion": how to load the script in each
// shell; completes says what the script completes ("flags, commands and
// transports").
func Usage(program, completes string) string {
	line := func(shell, load, save string) string {
		return fmt.Sprintf("  %-7s%-37s(or %s)\n", shell+":", load, save)
	}
	return "Usage: " + program + " completion bash|zsh|fish\n\n" +
		"Prints a script that completes " + program + "'s " + completes + ".\n" +
		line("bash", "source <("+program+" completion bash)", "save it in /etc/bash_completion.d/"+program) +
		line("zsh", "source <("+program+" completion zsh)", "save it as _"+program+" in a directory of $fpath") +
		line("fish", program+" completion fish | source", "save it in ~/.config/fish/completions/"+program+".fish")
}
