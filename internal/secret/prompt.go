package secret

import (
	"context"
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
// for an empty answer. When ctx ends first (Ctrl-C), it restores the
// terminal's echo and returns ctx's error; the read itself cannot be
// interrupted and ends with the process (or when a line is entered).
func Prompt(ctx context.Context, w io.Writer, prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", ErrNoTerminal
	}
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", err)
	}
	fmt.Fprint(w, prompt)
	type answer struct {
		b   []byte
		err error
	}
	got := make(chan answer, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		got <- answer{b, err}
	}()
	var a answer
	select {
	case a = <-got:
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(w)
		return "", ctx.Err()
	}
	fmt.Fprintln(w)
	if a.err != nil {
		return "", fmt.Errorf("reading from the terminal: %w", a.err)
	}
	if len(a.b) == 0 {
		return "", errors.New("nothing was entered")
	}
	return string(a.b), nil
}
