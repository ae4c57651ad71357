#!/usr/bin/env bash
# mkrootfs.sh OUT.tar — debootstrap a minimal Debian bookworm root filesystem for
# corpintel/base:bookworm and write it as a tar archive (numeric owners).
#
# Knobs: DEBIAN_SUITE (bookworm), DEBIAN_MIRROR (http://deb.debian.org/debian),
#        DEBIAN_SECURITY_MIRROR (http://deb.debian.org/debian-security),
#        BASE_INCLUDE (extra packages, comma separated: ca-certificates,tzdata).
# images/build.sh keys its cache of the result on this file's content and the knobs,
# so change this file whenever the result should change.
set -euo pipefail

out=${1:?usage: mkrootfs.sh OUT.tar}
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
include=${BASE_INCLUDE:-ca-certificates,tzdata}

[[ $(id -u) -eq 0 ]] || { echo "mkrootfs: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "mkrootfs: debootstrap missing (make deps)" >&2; exit 1; }

work=$(mktemp -d "$(dirname "$out")/.rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=${work:?}/root

debootstrap --variant=minbase --components=main --include="$include" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -n 40 "$work/debootstrap.log" >&2
	[[ -f $root/debootstrap/debootstrap.log ]] && tail -n 40 "$root/debootstrap/debootstrap.log" >&2
	exit 1
}

# Package sources for images built FROM this base: the release, its updates and security.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

# Container conventions (as Debian's own images): no service starts during package
# installs, no recommends, no caches or docs left in layers.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cat >"$root/etc/apt/apt.conf.d/90corpintel" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
cat >"$root/etc/dpkg/dpkg.cfg.d/90corpintel-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
DPKG

# Apply the same slimming to what debootstrap already installed.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "${root:?}"/usr/share/man/* "${root:?}"/usr/share/info/* "${root:?}"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -rf "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/* "${root:?}"/var/cache/debconf/*-old \
	"${root:?}"/var/log/* "${root:?}"/tmp/* "${root:?}"/var/tmp/* "${root:?}"/debootstrap
# Docker provides /dev, /proc, /sys, hostname, hosts and resolv.conf at run time.
rm -rf "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/*
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf" "$root/etc/machine-id"
: >"$root/etc/machine-id"
echo 'Etc/UTC' >"$root/etc/timezone"
ln -sfn /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"

tar --numeric-owner -C "$root" -cf "$work/rootfs.tar" .
mv "$work/rootfs.tar" "$out"
