//go:build linux || darwin

package serial

// IoctlGetTermios is the request the package reads a terminal's settings
// with, for the tests to read them back the same way.
const IoctlGetTermios = ioctlGetTermios
