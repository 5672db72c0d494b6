package pluginhost

import "syscall"

// procAttr has the kernel SIGKILL a plugin the moment hsmhost ends, however
// it ends (SIGKILL and crashes included), so a plugin is never orphaned.
// Linux sends the signal when the OS thread that started the child exits,
// not the process; Go ends a thread only when a goroutine locked to it
// returns, and nothing that launches plugins locks one. The SDK's parent
// watch (plugins/sdk) backs this up, and covers other systems.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
