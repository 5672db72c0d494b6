//go:build !linux

package pluginhost

import "syscall"

// procAttr: no parent-death signal here; the SDK's parent watch ends an
// orphaned plugin.
func procAttr() *syscall.SysProcAttr { return nil }
