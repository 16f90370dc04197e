package main

import "strings"

// initArgs returns the arguments the kernel command line gives init after
// "--" (Linux passes everything after "--" to init untouched), split as
// the kernel splits it: on blanks, with double quotes grouping blanks into
// one argument and removed. ok is false when the command line has no "--".
func initArgs(cmdline string) (args []string, ok bool) {
	words := splitCmdline(cmdline)
	for i, w := range words {
		if w == "--" {
			return words[i+1:], true
		}
	}
	return nil, false
}

// splitCmdline splits a kernel command line into words.
func splitCmdline(s string) []string {
	var words []string
	var b strings.Builder
	inWord, inQuote := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}
