#!/usr/bin/env bash
# images/build.sh [IMAGE...] — build corpintel's stack images offline, idempotently.
#
# Images (in dependency order): base postgres redis minio api
#   corpintel/base:bookworm  debootstrap --variant=minbase (rootfs tarball cached), docker import
#   corpintel/postgres:15    images/postgres   (Debian postgresql-15)
#   corpintel/redis:7        images/redis      (Debian redis-server 7.0)
#   corpintel/minio          images/minio      (MinIO from scripts/install-deps.sh's cache)
#   corpintel/api            ./Dockerfile      (bin/corpintel from `make bin`)
# and, only when named (`images/build.sh systemd`; `make images-test` does):
#   corpintel/systemd-test   images/systemd    (systemd + Docker Engine: the installer's
#                            system test machine; `docker save`d to the cache, keyed by
#                            its Dockerfile and the base's inputs, so a fresh engine loads
#                            it instead of running apt again)
#
# An image is rebuilt only when its inputs hash changes: Dockerfile + every file copied
# into its context + labels (not the revision, except for api) + base image ID. The
# hash is stored in the image label io.corpintel.inputs-hash and compared with
# `docker image inspect`.
#
# Knobs (environment variables):
#   CORPINTEL_CACHE         cache root (rootfs tarballs, tools)  default: $HOME/.cache/corpintel
#   CORPINTEL_IMAGES        images to build (or pass them as arguments)  default: all five
#   CORPINTEL_IMAGES_FORCE  =1 rebuilds even when the hash is unchanged
#   VERSION, REVISION       corpintel version / source revision (the Makefile passes them)
#   CORPINTEL_SOURCE_URL    org.opencontainers.image.source  default: https://github.com/corpintel/corpintel
#   CORPINTEL_BIN           the static binary for corpintel/api  default: bin/corpintel
#   DOCKER_BUILDKIT         default 0: the classic builder works on every engine here
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR, BASE_INCLUDE   see images/base/mkrootfs.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE=${CORPINTEL_CACHE:-$HOME/.cache/corpintel}
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
VERSION=${VERSION:-$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)}
SOURCE=${CORPINTEL_SOURCE_URL:-https://github.com/corpintel/corpintel}
BIN=${CORPINTEL_BIN:-$repo/bin/corpintel}
FORCE=${CORPINTEL_IMAGES_FORCE:-}
SCHEMA=corpintel-images/1 # bump to rebuild everything after a change to this script's logic

ALL="base postgres redis minio api"
KNOWN="$ALL systemd"
if [[ $# -gt 0 ]]; then WANT="$*"; else WANT=${CORPINTEL_IMAGES:-$ALL}; fi
for w in $WANT; do
	[[ " $KNOWN " == *" $w "* ]] || { echo "build.sh: unknown image '$w' (have: $KNOWN)" >&2; exit 2; }
done

log() { printf '[images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s; }
# sha FILE: its SHA-256, memoised by device, inode, size and mtime (the MinIO binary is
# 150 MB: hashing it on every no-op run would dominate).
sha() {
	local id memo
	id=$(stat -L -c '%d-%i-%s-%.9Y-%.9Z' "$1")
	memo=$CACHE/.sha/$(printf '%s %s' "$(readlink -f "$1")" "$id" | sha256sum | cut -c1-32)
	if [[ -s $memo ]]; then cat "$memo"; return; fi
	mkdir -p "$CACHE/.sha"
	sha256sum "$1" | cut -d' ' -f1 | tee "$memo.$$" && mv -f "$memo.$$" "$memo"
}
# Modes are normalised (the checkout's umask must not leak into images or hashes).
mode_of() { if [[ -x $1 ]]; then echo 0755; else echo 0644; fi; }

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker Engine is not reachable (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"

mkdir -p "$CACHE/rootfs" "$CACHE/logs" "$CACHE/.sha"
exec 9>"$CACHE/.images.lock"
flock 9

CTX=""
trap '[[ -z $CTX ]] || rm -rf "$CTX"' EXIT

T0=$(now)
declare -A RESULT TIME

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_hash() { docker image inspect -f '{{index .Config.Labels "io.corpintel.inputs-hash"}}' "$1" 2>/dev/null || true; }

# path_rev PATH...: the last commit touching PATHs (+ "-dirty" with local changes).
path_rev() {
	local r
	r=$(git -C "$repo" log -1 --format=%H -- "$@" 2>/dev/null || true)
	[[ -n $r ]] || { echo "$REVISION"; return; }
	if [[ -n $(git -C "$repo" status --porcelain -- "$@" 2>/dev/null) ]]; then r=$r-dirty; fi
	echo "$r"
}

# Common OCI labels: set_labels VERSION REVISION TITLE. The revision goes into
# `labels` (hashed) only for the api image, whose binary changes with every commit
# anyway; for the others it is set at build time but not hashed (`extra`), so a rebase
# or an unrelated commit does not rebuild an image whose inputs are the same.
labels=()
extra=()
set_labels() {
	labels=(
		"org.opencontainers.image.title=$3"
		"org.opencontainers.image.version=$1"
		"org.opencontainers.image.source=$SOURCE"
		"org.opencontainers.image.vendor=corpintel"
	)
	extra=("org.opencontainers.image.revision=$2")
}

# unchanged NAME TAG HASH: true (and records it) if TAG already carries HASH.
unchanged() {
	if [[ -z $FORCE && $(image_hash "$2") == "$3" ]]; then
		log "$1: up to date ($2, inputs ${3:0:12})"
		RESULT[$1]="up to date"
		return 0
	fi
	return 1
}

# Removes the image a rebuild replaced, if nothing uses it any more.
drop_old() {
	local old=$1 tag=$2
	if [[ -n $old && $old != "$(image_id "$tag")" ]]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
}

build_base() {
	local tag=corpintel/base:bookworm t key tar h old
	t=$(now)
	key=$(printf '%s\n' "$(sha "$here/base/mkrootfs.sh")" "${DEBIAN_SUITE:-bookworm}" \
		"${DEBIAN_MIRROR:-}" "${DEBIAN_SECURITY_MIRROR:-}" "${BASE_INCLUDE:-}" | sha256sum | cut -c1-16)
	tar=$CACHE/rootfs/base-bookworm-$key.tar
	if [[ ! -s $tar || ! -s $tar.sha256 ]]; then
		log "base: debootstrap --variant=minbase bookworm (rootfs cache miss, key $key) ..."
		"$here/base/mkrootfs.sh" "$tar.tmp"
		sha "$tar.tmp" >"$tar.sha256.tmp"
		mv -f "$tar.tmp" "$tar"
		mv -f "$tar.sha256.tmp" "$tar.sha256"
		find "$CACHE/rootfs" -maxdepth 1 -name 'base-bookworm-*.tar*' ! -name "base-bookworm-$key.tar*" -delete
		log "base: rootfs $(du -h "$tar" | cut -f1) in $(($(now) - t))s"
	else
		log "base: rootfs cached ($tar)"
	fi
	set_labels bookworm "$(path_rev images/base)" "corpintel base (Debian bookworm minbase)"
	h=$(printf '%s\n' "$SCHEMA" "$tag" "rootfs $(cat "$tar.sha256")" "${labels[@]}" | sha256sum | cut -d' ' -f1)
	unchanged base "$tag" "$h" && { TIME[base]=$(($(now) - t)); return 0; }
	old=$(image_id "$tag")
	local changes=(-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
		-c 'ENV LANG=C.UTF-8' -c 'CMD ["bash"]' -c "LABEL io.corpintel.inputs-hash=\"$h\"")
	local l
	for l in "${labels[@]}" "${extra[@]}"; do changes+=(-c "LABEL ${l%%=*}=\"${l#*=}\""); done
	log "base: docker import ..."
	docker import "${changes[@]}" "$tar" "$tag" >/dev/null
	drop_old "$old" "$tag"
	RESULT[base]=built
	TIME[base]=$(($(now) - t))
	log "base: built $tag in ${TIME[base]}s"
}

# build_docker NAME TAG VERSION REVISION TITLE DOCKERFILE [DEST=SRC ...]
# Stages DOCKERFILE and the files into a fresh context and builds it unless unchanged.
build_docker() {
	local name=$1 tag=$2 version=$3 rev=$4 title=$5 dockerfile=$6
	shift 6
	local t base_id spec h old ctx pair dest src logf
	t=$(now)
	base_id=$(image_id corpintel/base:bookworm)
	[[ -n $base_id ]] || die "$name: corpintel/base:bookworm is missing (build base first)"
	set_labels "$version" "$rev" "$title"
	labels+=("org.opencontainers.image.base.name=corpintel/base:bookworm")
	if [[ $name == api ]]; then
		labels+=("${extra[@]}")
		extra=()
	fi
	spec=$(
		printf '%s\n' "$SCHEMA" "$tag" "base $base_id" "${labels[@]}"
		printf 'file Dockerfile %s\n' "$(sha "$dockerfile")"
		for pair in "$@"; do
			dest=${pair%%=*} src=${pair#*=}
			[[ -f $src ]] || die "$name: missing input $src"
			printf 'file %s %s %s\n' "$dest" "$(mode_of "$src")" "$(sha "$src")"
		done
	)
	h=$(sha256sum <<<"$spec" | cut -d' ' -f1)
	unchanged "$name" "$tag" "$h" && { TIME[$name]=$(($(now) - t)); return 0; }

	old=$(image_id "$tag")
	ctx=$(mktemp -d "$CACHE/.ctx-$name.XXXXXX")
	CTX=$ctx
	# Labels go into one LABEL instruction of the staged Dockerfile: the classic builder
	# would run (and commit) one step per --label flag.
	{
		cat "$dockerfile"
		printf '\nLABEL'
		local l v
		for l in "${labels[@]}" "${extra[@]}" "io.corpintel.inputs-hash=$h"; do
			v=${l#*=}
			v=${v//\\/\\\\}
			printf ' \\\n\t%s="%s"' "${l%%=*}" "${v//\"/\\\"}"
		done
		echo
	} >"$ctx/Dockerfile"
	for pair in "$@"; do
		dest=${pair%%=*} src=${pair#*=}
		mkdir -p "$ctx/$(dirname "$dest")"
		cp "$src" "$ctx/$dest"
		chmod "$(mode_of "$src")" "$ctx/$dest"
	done
	logf=$CACHE/logs/build-$name.log
	log "$name: building $tag (inputs ${h:0:12}; log $logf) ..."
	if ! docker build --rm --force-rm --pull=false -t "$tag" "$ctx" >"$logf" 2>&1; then
		tail -n 40 "$logf" >&2
		die "$name: docker build failed (full log: $logf)"
	fi
	rm -rf "$ctx"
	CTX=""
	grep -E '^Step [0-9]+/[0-9]+ : (RUN|COPY)' "$logf" | sed "s/^/[images]   $name: /" | cut -c1-140 >&2 || true
	drop_old "$old" "$tag"
	RESULT[$name]=built
	TIME[$name]=$(($(now) - t))
	log "$name: built $tag in ${TIME[$name]}s"
}

build_postgres() {
	build_docker postgres corpintel/postgres:15 15 "$(path_rev images/postgres)" "corpintel PostgreSQL 15" \
		"$here/postgres/Dockerfile" \
		"docker-entrypoint.sh=$here/postgres/docker-entrypoint.sh" \
		"healthcheck.sh=$here/postgres/healthcheck.sh"
}

build_redis() {
	build_docker redis corpintel/redis:7 7 "$(path_rev images/redis)" "corpintel Redis 7" \
		"$here/redis/Dockerfile" \
		"docker-entrypoint.sh=$here/redis/docker-entrypoint.sh" \
		"healthcheck.sh=$here/redis/healthcheck.sh"
}

build_minio() {
	local link=$CACHE/bin/minio bin version
	bin=$(readlink -f "$link" 2>/dev/null || true)
	[[ -x $bin ]] || die "minio: no MinIO binary at $link (run scripts/install-deps.sh / make deps)"
	version=$(basename "$(dirname "$bin")")
	version=${version#minio-}
	build_docker minio corpintel/minio:latest "$version" "$(path_rev images/minio)" "corpintel MinIO" \
		"$here/minio/Dockerfile" \
		"minio=$bin" \
		"docker-entrypoint.sh=$here/minio/docker-entrypoint.sh"
}

build_api() {
	[[ -x $BIN ]] || die "api: $BIN is missing (run make bin)"
	build_docker api corpintel/api:latest "$VERSION" "$REVISION" "corpintel API" \
		"$repo/Dockerfile" \
		"bin/corpintel=$BIN"
}

# The system test's machine. Its hash takes the base's inputs hash, not its ID: a base
# re-imported on a fresh engine gets a new ID but the same content, and the image saved
# in the cache still fits on top of it.
build_systemd() {
	local tag=corpintel/systemd-test:bookworm t base_hash h cache ctx logf
	t=$(now)
	base_hash=$(image_hash corpintel/base:bookworm)
	[[ -n $base_hash ]] || die "systemd: corpintel/base:bookworm is missing (build base first)"
	h=$(printf '%s\n' "$SCHEMA" "$tag" "base-inputs $base_hash" "file Dockerfile $(sha "$here/systemd/Dockerfile")" | sha256sum | cut -d' ' -f1)
	unchanged systemd "$tag" "$h" && { TIME[systemd]=$(($(now) - t)); return 0; }
	cache=$CACHE/rootfs/systemd-test-${h:0:16}.tar
	if [[ -s $cache ]]; then
		log "systemd: loading $tag from the cache ($cache) ..."
		docker load -q -i "$cache" >/dev/null
		if [[ $(image_hash "$tag") == "$h" ]]; then
			RESULT[systemd]="from cache"
			TIME[systemd]=$(($(now) - t))
			log "systemd: loaded in ${TIME[systemd]}s"
			return 0
		fi
		log "systemd: the cached image does not carry inputs ${h:0:12}; rebuilding"
	fi
	ctx=$(mktemp -d "$CACHE/.ctx-systemd.XXXXXX")
	CTX=$ctx
	{ cat "$here/systemd/Dockerfile"; printf '\nLABEL io.corpintel.inputs-hash="%s" org.opencontainers.image.title="corpintel system test machine"\n' "$h"; } >"$ctx/Dockerfile"
	logf=$CACHE/logs/build-systemd.log
	log "systemd: building $tag (inputs ${h:0:12}; log $logf) ..."
	if ! docker build --rm --force-rm --pull=false -t "$tag" "$ctx" >"$logf" 2>&1; then
		tail -n 40 "$logf" >&2
		die "systemd: docker build failed (full log: $logf)"
	fi
	rm -rf "$ctx"
	CTX=""
	docker save -o "$cache.tmp" "$tag"
	mv -f "$cache.tmp" "$cache"
	find "$CACHE/rootfs" -maxdepth 1 -name 'systemd-test-*.tar' ! -name "$(basename "$cache")" -delete
	RESULT[systemd]=built
	TIME[systemd]=$(($(now) - t))
	log "systemd: built $tag in ${TIME[systemd]}s (cached as $cache, $(du -h "$cache" | cut -f1))"
}

log "building: $WANT (cache $CACHE, DOCKER_BUILDKIT=$DOCKER_BUILDKIT)"
for name in $KNOWN; do
	[[ " $WANT " == *" $name "* ]] || continue
	"build_$name"
done

# Old builds that could not be removed at once (a container still used them) and are
# unused now: only untagged images that carry this script's label.
docker image prune -f --filter label=io.corpintel.inputs-hash >/dev/null 2>&1 || true

printf '\n%-32s %-11s %6s %9s\n' IMAGE RESULT SECONDS SIZE >&2
for name in $KNOWN; do
	[[ " $WANT " == *" $name "* ]] || continue
	case $name in
	base) tag=corpintel/base:bookworm ;; postgres) tag=corpintel/postgres:15 ;;
	redis) tag=corpintel/redis:7 ;; minio) tag=corpintel/minio:latest ;; api) tag=corpintel/api:latest ;;
	systemd) tag=corpintel/systemd-test:bookworm ;;
	esac
	size=$(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0fMB", $1/1e6}')
	printf '%-32s %-11s %6s %9s\n' "$tag" "${RESULT[$name]}" "${TIME[$name]}" "$size" >&2
done
log "all done in $(($(now) - T0))s"
