package bundles_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/bundles"
	"github.com/corpintel/corpintel/bundles/bundletest"
)

// The cases install.sh is tested with too (installer/installer_test.go).
func TestVerifyRefusesTheHostileCases(t *testing.T) {
	key := bundletest.Key(t)
	pub := bundletest.Public(key)
	if _, err := bundles.Verify(bytes.NewReader(bundletest.New(t, key).Bytes(t)), pub); err != nil {
		t.Fatalf("the good bundle: %v", err)
	}
	for _, c := range bundletest.Hostile(t, key) {
		t.Run(c.Name, func(t *testing.T) {
			_, err := bundles.Verify(bytes.NewReader(c.Build(t, key)), pub)
			if !errors.Is(err, bundles.ErrRefused) || !strings.Contains(err.Error(), c.Want) {
				t.Fatalf("err %v, want a refusal naming %q", err, c.Want)
			}
		})
	}
}
