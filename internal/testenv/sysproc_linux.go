//go:build linux

package testenv

import "syscall"

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	// SIGKILL when the test process dies, so no server outlives the test binary. Go sets
	// the death signal after switching credentials, so it survives the switch.
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
