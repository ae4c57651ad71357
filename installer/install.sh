#!/bin/sh
# install.sh — install the corpintel appliance (supervisor, stack images, systemd unit).
#
#   Air-gapped, no network at all:
#     ./install.sh --bundle corpintel-<version>-linux-amd64.tar
#   From a release server:
#     curl -sfL https://<host>/install.sh | INSTALL_CORPINTEL_URL=https://<host>/releases sh -
#
# Before anything from the bundle is unpacked or run, this script verifies it with
# tools every distribution has: the Ed25519 signature of SHA256SUMS against the release
# key pinned below (openssl pkeyutl -verify -rawin, OpenSSL 3), then every file's
# SHA-256 (sha256sum) and the archive's entries (regular files with plain names only).
# The binary inside the bundle cannot vouch for itself, so it is not asked to.
#
# Options:
#   --bundle FILE     install from this bundle (same as INSTALL_CORPINTEL_BUNDLE)
#   --verify-only     verify the bundle (download it first with INSTALL_CORPINTEL_URL)
#                     and exit: nothing is installed or changed
#   --help            this text
#
# Every knob is an environment variable (k3s-style):
#   INSTALL_CORPINTEL_BUNDLE         the bundle file (or --bundle)
#   INSTALL_CORPINTEL_URL            where releases are served: <URL>/latest holds the
#                                    newest version, <URL>/<version>/ the bundle
#   INSTALL_CORPINTEL_VERSION        the version to download (default: <URL>/latest)
#   INSTALL_CORPINTEL_PROFILE        dev, staging or prod (default prod)
#   INSTALL_CORPINTEL_PROJECT        project name; prefixes containers, volumes, paths
#                                    (default corporate-intel)
#   INSTALL_CORPINTEL_DOMAIN         the public name (tls.names); ACME certificates in prod
#   INSTALL_CORPINTEL_ACME_EMAIL     contact address for the ACME account
#   INSTALL_CORPINTEL_DATA_DIR       state dir: secrets, state store, certificates
#                                    (default /var/lib/corpintel/<project>)
#   INSTALL_CORPINTEL_BACKUP_DIR     backup root (default /var/backups/<project>)
#   INSTALL_CORPINTEL_ADMIN_EMAIL    the first admin (default admin@<domain>, else
#                                    admin@localhost)
#   INSTALL_CORPINTEL_SKIP_START     true: install, but do not enable or start the
#                                    service (nor create the admin)
#   INSTALL_CORPINTEL_SKIP_PRECHECK  true: go on although `corpintel check --pre` failed
#   INSTALL_CORPINTEL_WAIT           seconds to wait for a healthy stack (default 900)
#   INSTALL_CORPINTEL_TMPDIR         where the bundle is unpacked (default /var/tmp)
#
# Re-running it is safe: the config, data and secrets are kept; the same version is
# reinstalled in place; a different version is handed over to `corpintel upgrade`.
# It writes /usr/local/bin/corpintel-uninstall.sh, which removes the program and keeps
# the data unless --purge.
set -eu

# The release public key this installer trusts (stamped by `corpintel bundle build`;
# the source tree's copy carries a placeholder and verifies nothing).
RELEASE_KEY='
@@CORPINTEL_RELEASE_KEY@@
'

BIN=/usr/local/bin/corpintel
UNINSTALL=/usr/local/bin/corpintel-uninstall.sh
ETC=/etc/corpintel
UNIT=/etc/systemd/system/corpintel.service
DROPIN_DIR=/etc/systemd/system/corpintel.service.d
# The files of a corpintel-bundle/1 (bundles/format.go), and the most bytes each may have.
BUNDLE_FILES='SHA256SUMS:65536 SHA256SUMS.sig:64 bundle.json:1048576 corpintel:1073741824 install.sh:1048576 corpintel.service:1048576 corpintel.toml.example:1048576 sbom.cdx.json:67108864 images.tar.gz:8589934591'

info() { printf '[corpintel install] %s\n' "$*" >&2; }
warn() { printf '[corpintel install] WARNING: %s\n' "$*" >&2; }
fatal() {
	printf '[corpintel install] ERROR: %s\n' "$*" >&2
	exit 1
}
refuse() { fatal "bundle refused: $*"; }

usage() {
	sed -n '2,/^set -eu/p' "$0" 2>/dev/null | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//' || true
}

WORK=''
cleanup() {
	if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- arguments ---------------------------------------------------------------------
VERIFY_ONLY=false
BUNDLE=${INSTALL_CORPINTEL_BUNDLE:-}
while [ $# -gt 0 ]; do
	case $1 in
	--bundle)
		[ $# -ge 2 ] || fatal "--bundle needs a file"
		BUNDLE=$2
		shift 2
		;;
	--bundle=*)
		BUNDLE=${1#--bundle=}
		shift
		;;
	--verify-only)
		VERIFY_ONLY=true
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) fatal "unknown argument $1 (see --help)" ;;
	esac
done

PROFILE=${INSTALL_CORPINTEL_PROFILE:-prod}
PROJECT=${INSTALL_CORPINTEL_PROJECT:-corporate-intel}
DOMAIN=${INSTALL_CORPINTEL_DOMAIN:-}
ACME_EMAIL=${INSTALL_CORPINTEL_ACME_EMAIL:-}
DATA_DIR=${INSTALL_CORPINTEL_DATA_DIR:-/var/lib/corpintel/$PROJECT}
BACKUP_DIR=${INSTALL_CORPINTEL_BACKUP_DIR:-/var/backups/$PROJECT}
ADMIN_EMAIL=${INSTALL_CORPINTEL_ADMIN_EMAIL:-admin@${DOMAIN:-localhost}}
SKIP_START=${INSTALL_CORPINTEL_SKIP_START:-false}
SKIP_PRECHECK=${INSTALL_CORPINTEL_SKIP_PRECHECK:-false}
WAIT=${INSTALL_CORPINTEL_WAIT:-900}
TMP_ROOT=${INSTALL_CORPINTEL_TMPDIR:-/var/tmp}

case $PROFILE in dev | staging | prod) ;; *) fatal "INSTALL_CORPINTEL_PROFILE must be dev, staging or prod, got '$PROFILE'" ;; esac
case $PROJECT in *[!a-z0-9-]* | '' | -*) fatal "INSTALL_CORPINTEL_PROJECT must be a-z, 0-9 and '-', got '$PROJECT'" ;; esac
case $WAIT in *[!0-9]* | '') fatal "INSTALL_CORPINTEL_WAIT must be a number of seconds, got '$WAIT'" ;; esac
for d in "$DATA_DIR" "$BACKUP_DIR"; do
	case $d in /*) ;; *) fatal "directories must be absolute paths, got '$d'" ;; esac
	case $d in *[!A-Za-z0-9/._-]*) fatal "directory '$d' has characters the installer does not quote; use A-Z a-z 0-9 / . _ -" ;; esac
done
case $DOMAIN in *[!A-Za-z0-9.-]*) fatal "INSTALL_CORPINTEL_DOMAIN must be a DNS name, got '$DOMAIN'" ;; esac
case $ACME_EMAIL in *[\"\\]* | *' '*) fatal "INSTALL_CORPINTEL_ACME_EMAIL must be a plain address" ;; esac
case $ADMIN_EMAIL in *@*) ;; *) fatal "INSTALL_CORPINTEL_ADMIN_EMAIL must be an e-mail address, got '$ADMIN_EMAIL'" ;; esac
case $ADMIN_EMAIL in *[\"\\\ ]*) fatal "INSTALL_CORPINTEL_ADMIN_EMAIL must be a plain address" ;; esac

# --- tools -------------------------------------------------------------------------
need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || fatal "$t is missing: install it from your distribution's packages"
	done
}
need tar sha256sum openssl sed grep awk sort uniq mktemp od tr cut wc head
# -rawin (pure Ed25519 over the message) came with OpenSSL 3.0.
case $(openssl version 2>/dev/null) in
"OpenSSL 1."* | "LibreSSL"*) fatal "the signature check needs OpenSSL 3 (openssl pkeyutl -rawin); this is $(openssl version)" ;;
esac

umask 077
WORK=$(mktemp -d "$TMP_ROOT/corpintel-install.XXXXXX") || fatal "cannot create a work directory in $TMP_ROOT (INSTALL_CORPINTEL_TMPDIR)"

# --- download (no bundle given) ----------------------------------------------------
fetch() { # fetch URL FILE
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 3 -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		fatal "neither curl nor wget is installed; download the bundle yourself and pass --bundle"
	fi
}

arch() {
	case $(uname -m) in
	x86_64 | amd64) echo amd64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) fatal "unsupported architecture $(uname -m)" ;;
	esac
}

if [ -z "$BUNDLE" ]; then
	URL=${INSTALL_CORPINTEL_URL:-}
	[ -n "$URL" ] || fatal "give a bundle (--bundle FILE) or where releases are served (INSTALL_CORPINTEL_URL)"
	URL=${URL%/}
	VERSION=${INSTALL_CORPINTEL_VERSION:-}
	if [ -z "$VERSION" ]; then
		fetch "$URL/latest" "$WORK/latest" || fatal "cannot read $URL/latest"
		VERSION=$(tr -d ' \r\n' <"$WORK/latest")
	fi
	case $VERSION in *[!A-Za-z0-9._+-]* | '') fatal "version '$VERSION' is not a version" ;; esac
	name=corpintel-$VERSION-linux-$(arch).tar
	info "downloading $URL/$VERSION/$name"
	fetch "$URL/$VERSION/$name" "$WORK/$name" || fatal "cannot download $URL/$VERSION/$name"
	BUNDLE=$WORK/$name
fi
[ -f "$BUNDLE" ] || fatal "no bundle at $BUNDLE"
[ -r "$BUNDLE" ] || fatal "cannot read $BUNDLE"

# --- verify ------------------------------------------------------------------------
# verify_bundle FILE: the whole check, before anything is unpacked.
verify_bundle() {
	b=$1
	case $RELEASE_KEY in *@@CORPINTEL_RELEASE_KEY@@*)
		fatal "this install.sh pins no release key (it is the template from the source tree): use the install.sh published next to the bundle"
		;;
	esac
	printf '%s\n' "$RELEASE_KEY" | sed '/^$/d' >"$WORK/release.pub"
	openssl pkey -pubin -in "$WORK/release.pub" -noout 2>/dev/null || fatal "the pinned release key is not a valid public key"

	# Entries: regular files only, plain names, each once, exactly the format's files.
	tar -tvf "$b" >"$WORK/list.v" 2>"$WORK/tar.err" || refuse "the archive is damaged or truncated: $(tr "\n" " " <"$WORK/tar.err" | head -c 300)"
	tar -tf "$b" >"$WORK/list" 2>"$WORK/tar.err" || refuse "the archive is damaged or truncated: $(tr "\n" " " <"$WORK/tar.err" | head -c 300)"
	while IFS= read -r line; do
		case $line in
		-*) ;;
		*) refuse "not a regular file: $line" ;;
		esac
	done <"$WORK/list.v"
	while IFS= read -r n; do
		case $n in
		*/* | *..* | '' | -*) refuse "entry '$n' has a directory part or '..'" ;;
		*[!A-Za-z0-9._-]*) refuse "entry '$n' has characters no bundle file has" ;;
		esac
		found=false
		for f in $BUNDLE_FILES; do
			[ "${f%%:*}" = "$n" ] && found=true
		done
		$found || refuse "$n is not a file of a corpintel bundle (extra file)"
	done <"$WORK/list"
	dup=$(sort "$WORK/list" | uniq -d | head -n 1)
	[ -z "$dup" ] || refuse "$dup appears twice (a second copy would replace the verified one)"
	for f in $BUNDLE_FILES; do
		n=${f%%:*}
		grep -qx "$n" "$WORK/list" || refuse "missing $n (truncated bundle?)"
	done
	# Declared sizes against each file's limit (GNU and busybox tar print the size as
	# the third column).
	for f in $BUNDLE_FILES; do
		n=${f%%:*} max=${f#*:}
		size=$(awk -v n="$n" '$NF == n { print $3 }' "$WORK/list.v")
		case $size in *[!0-9]* | '') refuse "cannot read the size of $n" ;; esac
		if [ ${#size} -gt 12 ] || [ "$size" -gt "$max" ]; then
			refuse "$n declares $size bytes, more than the $max it may have"
		fi
	done

	# The signature over SHA256SUMS, with the pinned key.
	tar -xOf "$b" SHA256SUMS >"$WORK/SHA256SUMS" || refuse "cannot read SHA256SUMS"
	tar -xOf "$b" SHA256SUMS.sig >"$WORK/SHA256SUMS.sig" || refuse "cannot read SHA256SUMS.sig"
	if ! openssl pkeyutl -verify -pubin -inkey "$WORK/release.pub" -rawin -in "$WORK/SHA256SUMS" -sigfile "$WORK/SHA256SUMS.sig" >"$WORK/verify.out" 2>&1; then
		refuse "the signature of SHA256SUMS does not verify with the pinned release key (wrong key, or the checksums were changed)"
	fi
	grep -q 'Signature Verified Successfully' "$WORK/verify.out" || refuse "openssl did not confirm the signature: $(cat "$WORK/verify.out")"

	# Every file's checksum, read straight out of the archive.
	lines=0
	while IFS= read -r line; do
		lines=$((lines + 1))
		sum=${line%%  *} n=${line#*  }
		case $sum in *[!0-9a-f]*) refuse "SHA256SUMS line $lines is malformed" ;; esac
		[ ${#sum} -eq 64 ] || refuse "SHA256SUMS line $lines is malformed"
		case $n in SHA256SUMS | SHA256SUMS.sig | */* | *..*) refuse "SHA256SUMS names '$n'" ;; esac
		grep -qx "$n" "$WORK/list" || refuse "SHA256SUMS names $n, which the bundle lacks"
		got=$(tar -xOf "$b" "$n" | sha256sum | cut -d' ' -f1)
		[ "$got" = "$sum" ] || refuse "$n does not match its checksum in SHA256SUMS (tampered or damaged)"
	done <"$WORK/SHA256SUMS"
	expected=$(($(wc -l <"$WORK/list") - 2))
	[ "$lines" -eq "$expected" ] || refuse "SHA256SUMS lists $lines files, the bundle has $expected"
}

info "verifying $BUNDLE"
verify_bundle "$BUNDLE"
NEW_VERSION=$(tar -xOf "$BUNDLE" bundle.json | sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' | head -n 1)
info "bundle verified: corpintel $NEW_VERSION, signed with the pinned release key"
if $VERIFY_ONLY; then
	exit 0
fi

# --- from here on: installing ------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fatal "run the installer as root (sudo sh install.sh …)"
need install getent id stat
command -v systemctl >/dev/null 2>&1 || fatal "systemctl is missing: corpintel installs as a systemd service"

# Unpack (now that the bundle verified) and check the unpacked files again: the file
# could have changed between the verification and the unpack.
mkdir "$WORK/bundle"
tar -xof "$BUNDLE" -C "$WORK/bundle" || fatal "unpacking the bundle failed"
(cd "$WORK/bundle" && sha256sum -c SHA256SUMS >/dev/null 2>&1) || refuse "the unpacked files do not match SHA256SUMS (the bundle changed while installing?)"
NEW=$WORK/bundle/corpintel

# Docker first: the preflight needs it, and says how to get it.
if ! command -v docker >/dev/null 2>&1 && [ ! -S /var/run/docker.sock ]; then
	fatal "Docker Engine is not installed. Install it from your distribution, then re-run:
    Debian, Ubuntu:      apt-get install -y docker.io
    Fedora:              dnf install -y moby-engine
    RHEL, Rocky, Alma:   Docker's docker-ce repository (https://docs.docker.com/engine/install/)
  and: systemctl enable --now docker"
fi

# A different version installed already: that is an upgrade.
if [ -x "$BIN" ]; then
	OLD_VERSION=$("$BIN" version 2>/dev/null | sed -n 's/^corpintel \([^ ]*\).*/\1/p')
	if [ -n "$OLD_VERSION" ] && [ "$OLD_VERSION" != "$NEW_VERSION" ]; then
		if "$NEW" upgrade --help >/dev/null 2>&1; then
			info "corpintel $OLD_VERSION is installed: handing over to corpintel upgrade"
			exec "$NEW" upgrade --bundle "$BUNDLE"
		fi
		fatal "corpintel $OLD_VERSION is installed and this bundle is $NEW_VERSION; this version has no \`corpintel upgrade\` — uninstall first (corpintel-uninstall.sh keeps the data), then install"
	fi
	info "corpintel $NEW_VERSION is installed already: reinstalling in place (config and data kept)"
fi

# The config, from the template (an existing config is kept).
CONFIG=$ETC/corpintel.toml
render_config() {
	names=''
	[ -z "$DOMAIN" ] || names="\"$DOMAIN\""
	sed -e "s|@PROFILE@|$PROFILE|" -e "s|@PROJECT@|$PROJECT|" -e "s|@STATE_DIR@|$DATA_DIR|" \
		-e "s|@TLS_NAMES@|$names|" -e "s|@ACME_EMAIL@|$ACME_EMAIL|" "$WORK/bundle/corpintel.toml.example"
	# Backups are configured only by a binary that knows them.
	if "$NEW" config keys 2>/dev/null | grep -qx 'backup.root'; then
		printf '\n[backup]\nroot = "%s"\n' "$BACKUP_DIR"
	fi
}
if [ -e "$CONFIG" ]; then
	info "keeping the existing config $CONFIG"
	PRE_CONFIG=$CONFIG
else
	render_config >"$WORK/corpintel.toml"
	PRE_CONFIG=$WORK/corpintel.toml
fi
"$NEW" config check --config "$PRE_CONFIG" >/dev/null || fatal "the config $PRE_CONFIG does not validate (corpintel config check --config $PRE_CONFIG says why)"

info "preflight: corpintel check --pre"
set +e
"$NEW" check --pre --config "$PRE_CONFIG" --backup-dir "$BACKUP_DIR"
pre=$?
set -e
case $pre in
0) ;;
1) warn "the preflight has warnings (above); going on" ;;
*)
	if [ "$SKIP_PRECHECK" = true ]; then
		warn "the preflight failed (above); going on because INSTALL_CORPINTEL_SKIP_PRECHECK=true"
	else
		fatal "the preflight failed (above): fix what it says, or set INSTALL_CORPINTEL_SKIP_PRECHECK=true to install anyway"
	fi
	;;
esac

# User and group: the service runs as corpintel; group corpintel may use the CLI.
if ! getent group corpintel >/dev/null 2>&1; then
	if command -v groupadd >/dev/null 2>&1; then groupadd --system corpintel; else addgroup -S corpintel; fi
fi
if ! id corpintel >/dev/null 2>&1; then
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --gid corpintel --home-dir /var/lib/corpintel --no-create-home --shell /usr/sbin/nologin --comment "corpintel supervisor" corpintel
	else
		adduser -S -D -H -G corpintel -h /var/lib/corpintel -s /sbin/nologin corpintel
	fi
fi
SOCK_GROUP=docker
if [ -S /var/run/docker.sock ]; then
	SOCK_GROUP=$(stat -c %G /var/run/docker.sock)
	[ "$SOCK_GROUP" != root ] || fatal "/var/run/docker.sock belongs to group root: the corpintel user cannot reach Docker (Docker's packages create group docker; check the socket's group)"
fi

# Directories: state and backups belong to the service user, root-only otherwise.
install -d -m 0750 -o root -g corpintel "$ETC"
install -d -m 0700 -o corpintel -g corpintel /var/lib/corpintel
for d in "$DATA_DIR" "$BACKUP_DIR"; do
	install -d -m 0700 -o corpintel -g corpintel "$d"
done
if [ ! -e "$CONFIG" ]; then
	install -m 0640 -o root -g corpintel "$WORK/corpintel.toml" "$CONFIG"
	info "wrote $CONFIG"
fi
printf '%s\n' "$RELEASE_KEY" | sed '/^$/d' >"$WORK/release.pub.out"
install -m 0644 -o root -g root "$WORK/release.pub.out" "$ETC/release.pub"

# The program, the unit, and a drop-in for whatever differs from the unit's defaults.
install -m 0755 -o root -g root "$NEW" "$BIN.new"
mv -f "$BIN.new" "$BIN"
install -m 0644 -o root -g root "$WORK/bundle/corpintel.service" "$UNIT"
dropin=''
case $DATA_DIR in /var/lib/corpintel/*) ;; *) dropin="${dropin}ReadWritePaths=$DATA_DIR
" ;; esac
[ "$BACKUP_DIR" = /var/backups/corporate-intel ] || dropin="${dropin}ReadWritePaths=$BACKUP_DIR
"
[ "$SOCK_GROUP" = docker ] || dropin="${dropin}SupplementaryGroups=
SupplementaryGroups=$SOCK_GROUP
"
if [ -n "$dropin" ]; then
	install -d -m 0755 "$DROPIN_DIR"
	printf '# Written by install.sh: what differs from corpintel.service on this machine.\n[Service]\n%s' "$dropin" >"$WORK/install.conf"
	install -m 0644 "$WORK/install.conf" "$DROPIN_DIR/install.conf"
else
	rm -f "$DROPIN_DIR/install.conf"
fi

info "loading the stack images"
"$BIN" bundle load "$WORK/bundle" --key "$ETC/release.pub"

# The uninstaller, with this install's paths.
IMAGES=$(sed -n 's/^ *"ref": *"\([^"]*\)".*/\1/p' "$WORK/bundle/bundle.json" | tr '\n' ' ')
cat >"$WORK/uninstall.sh" <<EOF
#!/bin/sh
# corpintel-uninstall.sh — written by install.sh for corpintel $NEW_VERSION (project $PROJECT).
# Removes the program: the service, the binary, the unit, the stack's containers and
# images. Keeps the data — $DATA_DIR, $BACKUP_DIR, the data volumes and $ETC —
# unless --purge (asks first; --yes answers for it). Stays after a plain uninstall, so
# that --purge can follow later.
set -eu
PROJECT='$PROJECT'
DATA_DIR='$DATA_DIR'
BACKUP_DIR='$BACKUP_DIR'
IMAGES='$IMAGES'
purge=false
yes=false
for a in "\$@"; do
	case \$a in
	--purge) purge=true ;;
	--yes | -y) yes=true ;;
	-h | --help) sed -n '2,5p' "\$0"; exit 0 ;;
	*) echo "corpintel-uninstall: unknown argument \$a (--purge, --yes)" >&2; exit 2 ;;
	esac
done
[ "\$(id -u)" -eq 0 ] || { echo "corpintel-uninstall: run as root" >&2; exit 1; }
if \$purge && ! \$yes; then
	if [ -t 0 ]; then
		printf 'Delete ALL data of %s: volumes, %s, %s, %s? Type "purge" to confirm: ' "\$PROJECT" "\$DATA_DIR" "\$BACKUP_DIR" '$ETC'
		read -r answer
		[ "\$answer" = purge ] || { echo "corpintel-uninstall: nothing removed" >&2; exit 1; }
	else
		echo "corpintel-uninstall: --purge deletes every backup and the data; add --yes to confirm when not on a terminal" >&2
		exit 1
	fi
fi
systemctl disable --now corpintel.service >/dev/null 2>&1 || true
label="label=io.corpintel.project=\$PROJECT"
if command -v docker >/dev/null 2>&1; then
	ids=\$(docker ps -aq --filter "\$label")
	if [ -n "\$ids" ]; then
		# shellcheck disable=SC2086
		docker stop --time 30 \$ids >/dev/null 2>&1 || true
		# shellcheck disable=SC2086
		docker rm -f \$ids >/dev/null
	fi
	for n in \$(docker network ls -q --filter "\$label"); do docker network rm "\$n" >/dev/null || true; done
	for i in \$IMAGES; do docker image rm "\$i" >/dev/null 2>&1 || true; done
	if \$purge; then
		for v in \$(docker volume ls -q --filter "\$label"); do docker volume rm "\$v" >/dev/null; done
	fi
fi
rm -f '$BIN' '$UNIT'
rm -rf '$DROPIN_DIR'
systemctl daemon-reload >/dev/null 2>&1 || true
if \$purge; then
	rm -rf "\$DATA_DIR" "\$BACKUP_DIR" '$ETC'
	rmdir /var/lib/corpintel 2>/dev/null || true
	userdel corpintel >/dev/null 2>&1 || deluser corpintel >/dev/null 2>&1 || true
	groupdel corpintel >/dev/null 2>&1 || delgroup corpintel >/dev/null 2>&1 || true
	echo "corpintel removed, with all its data."
else
	echo "corpintel removed. Kept: \$DATA_DIR, \$BACKUP_DIR, $ETC and the data volumes (docker volume ls --filter \$label)."
	echo "Installing again uses them; \$0 --purge deletes them."
fi
# Kept after a plain uninstall: it is the way to purge the data it kept.
if \$purge; then rm -f "\$0"; fi
EOF
install -m 0755 -o root -g root "$WORK/uninstall.sh" "$UNINSTALL"

if [ "$SKIP_START" = true ]; then
	info "installed corpintel $NEW_VERSION; not started (INSTALL_CORPINTEL_SKIP_START=true): systemctl enable --now corpintel"
	exit 0
fi
[ -d /run/systemd/system ] || fatal "systemd is not running on this machine: start the supervisor yourself (corpintel supervisor --config $CONFIG)"

info "starting corpintel.service"
systemctl daemon-reload
systemctl enable corpintel.service >/dev/null 2>&1
systemctl restart corpintel.service
# An earlier `corpintel stop` (or uninstall) holds the stack down: bring it up.
i=0
until "$BIN" start --config "$CONFIG" >"$WORK/start.out" 2>&1; do
	i=$((i + 1))
	[ $i -lt 60 ] || fatal "the supervisor does not start the stack: $(tail -n 3 "$WORK/start.out" | tr '\n' ' ')— systemctl status corpintel; journalctl -u corpintel -n 50"
	sleep 1
done

info "waiting up to ${WAIT}s for a healthy stack"
"$BIN" check --config "$CONFIG" --wait-healthy "${WAIT}s" ||
	fatal "the stack did not become healthy within ${WAIT}s (above: what failed); corpintel status and journalctl -u corpintel say more"

# The first admin, once, with a one-time password only root can read.
PWFILE=$ETC/initial-admin-password
if [ ! -e "$ETC/.admin-created" ]; then
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$WORK/pw"
	install -m 0400 -o root -g root "$WORK/pw" "$PWFILE"
	"$BIN" create-admin --config "$CONFIG" --email "$ADMIN_EMAIL" --password-file "$PWFILE" >/dev/null ||
		fatal "creating the admin $ADMIN_EMAIL failed (corpintel create-admin says why)"
	: >"$ETC/.admin-created"
	# The check account of `corpintel check`'s API smoke test (an analyst).
	"$BIN" check --config "$CONFIG" --setup-account --admin-email "$ADMIN_EMAIL" --admin-password-file "$PWFILE" >/dev/null ||
		warn "the check account could not be created; \`corpintel check\` skips its API smoke test"
fi

"$BIN" check --config "$CONFIG" || true
host=${DOMAIN:-$(hostname 2>/dev/null || echo localhost)}
info "corpintel $NEW_VERSION is installed and healthy."
cat >&2 <<EOF

  Console:     https://$host/admin
  Admin:       $ADMIN_EMAIL — one-time password in $PWFILE (root only;
               change it at the first login, then delete the file)
  Status:      corpintel status · systemctl status corpintel · corpintel check
  Config:      $CONFIG (corpintel config check; systemctl reload corpintel)
  Uninstall:   $UNINSTALL (keeps the data; --purge deletes it)

EOF
