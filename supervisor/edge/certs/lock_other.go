//go:build !unix

package certs

// dirLock is a no-op where flock(2) does not exist; corpintel runs on Linux.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) unlock() {}
