// Package systemd holds the appliance's systemd unit (corpintel.service) and embeds it,
// so that `corpintel bundle build` ships exactly the unit this package's tests check
// with `systemd-analyze verify` and `systemd-analyze security --offline` (exposure at
// most MaxExposure). README.md explains the unit line by line; supervisor/systemd.go is
// the daemon's side of Type=notify and the watchdog.
package systemd

import _ "embed"

// Unit is corpintel.service as installed to /etc/systemd/system.
//
//go:embed corpintel.service
var Unit string

// UnitName is the unit's file name.
const UnitName = "corpintel.service"

// MaxExposure is the highest `systemd-analyze security` exposure the tests accept.
const MaxExposure = 2.0
