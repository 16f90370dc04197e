// Command mkinitramfs writes an initramfs whose /init is a given program
// (a static kdtarget): scripts/vm-initramfs.sh runs it. Usage:
//
//	go run ./internal/initramfs/mkinitramfs -init PROGRAM -o IMAGE [-gzip=false]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"kdsrv/internal/initramfs"
)

func main() {
	initPath := flag.String("init", "", "the program to install as /init (a static executable)")
	out := flag.String("o", "", "the initramfs file to write")
	compress := flag.Bool("gzip", true, "gzip-compress the image")
	flag.Parse()
	if *initPath == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: mkinitramfs -init PROGRAM -o IMAGE [-gzip=false]")
		os.Exit(2)
	}
	prog, err := os.ReadFile(*initPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
	if !bytes.HasPrefix(prog, []byte("\x7fELF")) {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %s is not an ELF executable; build it with GOOS=linux CGO_ENABLED=0\n", *initPath)
		os.Exit(1)
	}
	var img bytes.Buffer
	if err := initramfs.Kdtarget(&img, prog, *compress); err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, img.Bytes(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "mkinitramfs: %v\n", err)
		os.Exit(1)
	}
}
