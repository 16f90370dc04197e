//go:build darwin

package serial_test

// inqRequest is FIONREAD (_IOR('f', 127, int)), which x/sys/unix does not export for darwin.
const inqRequest = 0x4004667f
