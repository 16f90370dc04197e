//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// asInit reports whether kdtarget is the system's init (process 1), as
// the /init of an initramfs that makes it the "kernel" of a VM.
func asInit() bool { return os.Getpid() == 1 }

// initSetup prepares a bare initramfs for kdtarget: /dev (devtmpfs, for
// the serial device and the console) and /proc mounted where missing,
// standard output and error on the console, and kernel console messages
// turned down so that they do not cut into KD packets on a serial port the
// console shares. It returns the arguments to run with: those the kernel
// command line gives after "--", or args (what the kernel passed) when it
// has none. Each problem is reported on w and skipped: kdtarget then fails
// later with a precise error (for example a missing device) rather than
// here.
func initSetup(args []string, w io.Writer) []string {
	for _, m := range []struct{ dir, fstype, probe string }{
		{"/dev", "devtmpfs", "/dev/null"},
		{"/proc", "proc", "/proc/self"},
	} {
		if _, err := os.Stat(m.probe); err == nil {
			continue
		}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			fmt.Fprintf(w, "kdtarget: as init: cannot create %s: %v\n", m.dir, err)
			continue
		}
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			fmt.Fprintf(w, "kdtarget: as init: cannot mount %s on %s: %v\n", m.fstype, m.dir, err)
		}
	}
	// Without /dev/console in the initramfs the kernel starts init with no
	// standard descriptors: give it the console now that /dev exists.
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err != nil {
		if fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0); err == nil {
			for i := 0; i <= 2; i++ {
				if i != fd {
					_ = unix.Dup2(fd, i)
				}
			}
			if fd > 2 {
				unix.Close(fd)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		if a, ok := initArgs(string(b)); ok {
			args = a
		}
	} else {
		fmt.Fprintf(w, "kdtarget: as init: cannot read the kernel command line (%v); using the arguments the kernel passed\n", err)
	}
	// Console log level 1: only emergencies reach the console from now on.
	if err := os.WriteFile("/proc/sys/kernel/printk", []byte("1"), 0); err != nil {
		fmt.Fprintf(w, "kdtarget: as init: cannot turn kernel console messages down (%v); they may interleave with KD packets on a serial console\n", err)
	}
	fmt.Fprintf(w, "kdtarget: running as init; kernel console messages are now off; arguments %q\n", args)
	return args
}

// initExit ends kdtarget as init. Process 1 must not exit (the kernel
// panics with only "Attempted to kill init"), so it says why it stops and
// powers the machine off, or waits for a reset if even that fails.
func initExit(code int, w io.Writer) {
	fmt.Fprintf(w, "kdtarget: stopped with exit status %d while running as init (process 1); powering the machine off\n", code)
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(w, "kdtarget: cannot power off (%v); waiting for the machine to be reset or turned off\n", err)
	for {
		_ = unix.Pause()
	}
}
