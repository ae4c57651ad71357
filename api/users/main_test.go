package users_test

import (
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
