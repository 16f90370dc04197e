package version

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "kdsrv", Version: "v0.0.0-20261206080000-1a2b3c4d5e6f"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d"},
			{Key: "vcs.time", Value: "2026-12-06T08:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		},
	}
	i := fromBuildInfo("kdsrv", bi, "", "")
	if got, want := i.String(), "kdsrv v0.0.0-20261206080000-1a2b3c4d5e6f (commit 1a2b3c4d5e6f, 2026-12-06T08:00:00Z, modified) go1.26.8 linux/arm64"; got != want {
		t.Errorf("String:\n got %s\nwant %s", got, want)
	}
	// A stamped version wins over the module's.
	i = fromBuildInfo("kdclient", bi, "v1.2.3", "")
	if !strings.HasPrefix(i.String(), "kdclient v1.2.3 (commit 1a2b3c4d5e6f") {
		t.Errorf("stamped: %s", i)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(i.JSON()), &m); err != nil || m["program"] != "kdclient" || m["version"] != "v1.2.3" || m["os"] != "linux" {
		t.Errorf("JSON %s: %v", i.JSON(), err)
	}
}

func TestNoBuildInfo(t *testing.T) {
	i := fromBuildInfo("kdtarget", nil, "", "")
	if i.Version != "(devel)" || i.GoVersion != runtime.Version() || i.OS != runtime.GOOS || i.Commit != "" {
		t.Errorf("%+v", i)
	}
	if got := i.String(); got != "kdtarget (devel) "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("String %q", got)
	}
}

func TestPrint(t *testing.T) {
	var text, js strings.Builder
	Print(&text, "kdprog", false)
	Print(&js, "kdprog", true)
	if text.String() != Get("kdprog").String()+"\n" {
		t.Errorf("Print = %q, want the Info line", text.String())
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(js.String()), &v); err != nil || !strings.HasSuffix(js.String(), "}\n") {
		t.Errorf("Print with JSON = %q (%v), want one JSON object on a line", js.String(), err)
	}
}
