// Package installer holds the appliance's installer (install.sh, POSIX sh) and the
// config template it fills in, and embeds both so that `corpintel bundle build` ships
// exactly what this package's tests run: install.sh verifies a bundle's signature and
// checksums with openssl and sha256sum before it unpacks anything, installs the binary,
// the unit, the config and the images, starts the service, waits for a healthy stack,
// creates the first admin and writes corpintel-uninstall.sh.
package installer

import _ "embed"

// Script is install.sh as in the source tree: its release key is a placeholder that
// `corpintel bundle build` replaces with the signing key's public half.
//
//go:embed install.sh
var Script []byte

// ConfigTemplate is corpintel.toml.example: install.sh replaces @PROFILE@,
// @PROJECT@, @STATE_DIR@, @TLS_NAMES@ and @ACME_EMAIL@.
//
//go:embed corpintel.toml.example
var ConfigTemplate []byte
