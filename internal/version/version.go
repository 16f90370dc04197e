// Package version says which build of a program is running: -version and
// --version of kdsrv, kdclient, kdtarget and kdbench print Get(program).
//
// The version comes from the build: a release stamps it with
//
//	go build -ldflags "-X kdsrv/internal/version.Version=v1.2.3" ./cmd/...
//
// (scripts/release.sh does), otherwise it is the main module's version as
// the go command recorded it (a pseudo-version from the VCS, or "(devel)").
// The commit, its time and whether the tree was modified come from the
// VCS information the go command stamps into binaries built in a checkout.
package version

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version and Commit are stamped at link time with -ldflags -X; they are
// never assigned at run time.
var (
	Version = ""
	Commit  = ""
)

// Info describes a build.
type Info struct {
	Program   string `json:"program"`
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Time      string `json:"commit_time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// Get returns the build information of program.
func Get(program string) Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(program, bi, Version, Commit)
}

// fromBuildInfo is Get with its inputs given (tests).
func fromBuildInfo(program string, bi *debug.BuildInfo, stampedVersion, stampedCommit string) Info {
	i := Info{Program: program, Version: stampedVersion, Commit: stampedCommit,
		GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi != nil {
		if i.Version == "" {
			i.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			case "GOOS":
				i.OS = s.Value
			case "GOARCH":
				i.Arch = s.Value
			}
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

// String is the one line -version prints, e.g.
// "kdsrv v1.2.3 (commit 1a2b3c4d5e6f, 2026-12-06T08:00:00Z) go1.26.8 linux/amd64".
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", i.Program, i.Version)
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		fmt.Fprintf(&b, " (commit %s", c)
		if i.Time != "" {
			fmt.Fprintf(&b, ", %s", i.Time)
		}
		if i.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " %s %s/%s", i.GoVersion, i.OS, i.Arch)
	return b.String()
}

// JSON is the information as one JSON object.
func (i Info) JSON() string {
	b, _ := json.Marshal(i) // plain strings and a bool: cannot fail
	return string(b)
}

// Print writes the build of program to w for -version: one line, or with
// asJSON one JSON object.
func Print(w io.Writer, program string, asJSON bool) {
	if asJSON {
		fmt.Fprintln(w, Get(program).JSON())
		return
	}
	fmt.Fprintln(w, Get(program))
}
