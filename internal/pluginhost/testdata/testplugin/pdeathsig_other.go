//go:build !linux

package main

import "errors"

func parentDeathSignal() (int, error) { return 0, errors.New("no parent-death signal on this system") }
