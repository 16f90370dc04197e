//go:build !linux

package main

import (
	"io"
	"os"
)

// asInit is false outside Linux: kdtarget is the init of Linux guests only.
func asInit() bool { return false }

func initSetup(args []string, _ io.Writer) []string { return args }

func initExit(code int, _ io.Writer) { os.Exit(code) }
