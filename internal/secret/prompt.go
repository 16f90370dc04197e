package secret

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ErrNoTerminal is returned by Prompt when standard input is not a
// terminal, so there is nobody to ask.
var ErrNoTerminal = errors.New("standard input is not a terminal")

// Prompt asks for a secret on the terminal: it writes prompt to w (the
// program's standard error, so that output redirection does not hide the
// question) and reads a line from standard input without echoing it. It
// returns ErrNoTerminal when standard input is not a terminal, and an error
// for an empty answer.
func Prompt(w io.Writer, prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", ErrNoTerminal
	}
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("nothing was entered")
	}
	return string(b), nil
}
