// Package azihsmemulator holds only the Go test that drives the emulated
// Azure Integrated HSM device, a C library (README.md; built by `make
// emulator` into build/emulator/libazihsm_api_native.so): it builds the C
// test program tests/emu_test.c, runs it against the library, and runs it
// again under valgrind when valgrind is installed. Nothing here is imported.
//
// The emulator's .c files start with a "//go:build ignore" line so the Go
// tool does not take them for this package's cgo sources.
package azihsmemulator
