//go:build !unix

package server

// fdLimit returns 0: this system has no per-process descriptor limit that
// the connection caps need to stay under.
func fdLimit() int { return 0 }
