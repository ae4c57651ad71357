package users_test

import (
	"github.com/corpintel/corpintel/internal/password"
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) {
	// Integration tests log in hundreds of times; the production cost is tested in
	// package password.
	password.Default = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	testenv.Main(m)
}
