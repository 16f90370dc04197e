package kd

import "flag"

// update makes golden-file tests rewrite their files under testdata/ instead
// of comparing against them: go test ./internal/kd -update
var update = flag.Bool("update", false, "rewrite golden files")
