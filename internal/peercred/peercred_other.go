//go:build !linux && !darwin && !freebsd

package peercred

func read(uintptr) string { return "" }
