#!/usr/bin/env bash
# Builds the workloads image with podman, offline from any image registry: first a minimal
# Debian base image with Python, made from Debian's packages (mmdebstrap into a tarball,
# then `podman import`), then workloads/Dockerfile on top of it (BASE_IMAGE build argument).
# Each image carries a label with the hash of what it was made from; an image whose label
# matches is not built again, so a second run takes about a second. docs/images.md.
usage() {
  cat <<'USAGE'
usage: images/build.sh [--force] [--base-only]

  --force      build both images again even when their content hash is unchanged
  --base-only  build (or keep) the base image only

Environment:
  MESHGATE_BASE_IMAGE       the base image's name (default localhost/meshgate/python:3.11-bookworm)
  MESHGATE_WORKLOADS_IMAGE  the workloads image's name (default ghcr.io/meshgate/workloads:0.1.0)
  MESHGATE_DEBIAN_MIRROR    where mmdebstrap takes Debian's packages: a URL, or a deb822
                            .sources file (default: this machine's
                            /etc/apt/sources.list.d/debian.sources when it exists, else
                            http://deb.debian.org/debian)
  MESHGATE_BUILD_CA_BUNDLE  the CA bundle the RUN steps trust, mounted read-only for the
                            build only (default: $PIP_CERT, $SSL_CERT_FILE, or
                            /etc/ssl/certs/ca-certificates.crt: this machine's trust)
  MESHGATE_OCI_RUNTIME      podman's OCI runtime (default runc when installed: crun cannot
                            run containers on a cgroup v1/hybrid host)
Needs root, podman and mmdebstrap (./dev images installs them).
USAGE
}
set -euo pipefail
cd "$(dirname "$0")/.."

FORCE="" BASE_ONLY=""
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --base-only) BASE_ONLY=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "images/build.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

BASE_IMAGE=${MESHGATE_BASE_IMAGE:-localhost/meshgate/python:3.11-bookworm}
WORKLOADS_IMAGE=${MESHGATE_WORKLOADS_IMAGE:-ghcr.io/meshgate/workloads:0.1.0}
SUITE=bookworm
LABEL=io.meshgate.content-hash
say() { printf 'images: %s\n' "$*" >&2; }

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { say "$tool is not installed (./dev images installs it)"; exit 1; }
done
if [[ $(id -u) -ne 0 ]]; then
  say "building needs root (mmdebstrap's root mode and podman's root store)"; exit 1
fi

# podman's own flags for this machine, the same as localmesh's podman runtime uses
# (localmesh/kubelet/podman.py): runc, and the caller's own hard limits for open files and
# processes; podman would otherwise ask for more than an unprivileged sandbox may set.
PODMAN=(podman)
runtime=${MESHGATE_OCI_RUNTIME:-$(command -v runc >/dev/null && echo runc || true)}
[[ -n $runtime ]] && PODMAN+=(--runtime "$runtime")
ULIMITS=()
nofile=$(ulimit -Hn)
[[ $nofile != unlimited ]] && ULIMITS+=(--ulimit "nofile=$nofile:$nofile")
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
if [[ $nproc == unlimited || $nproc -gt $pid_max ]]; then nproc=$pid_max; fi
ULIMITS+=(--ulimit "nproc=$nproc:$nproc")

id_of() { "${PODMAN[@]}" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# The image a rebuild replaced keeps its layers under no name; remove it (by its ID) unless
# something still uses it.
drop_replaced() {
  [[ -n $1 && $1 != "$(id_of "$2")" ]] && "${PODMAN[@]}" rmi "$1" >/dev/null 2>&1 || true
}

label_of() {  # the content-hash label of image $1, empty when it does not exist
  "${PODMAN[@]}" image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null || true
}

# ---- the base image: Debian's python3 and pip, no registry ---------------------------------
if [[ -n ${MESHGATE_DEBIAN_MIRROR:-} ]]; then
  mirror=$MESHGATE_DEBIAN_MIRROR
elif [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  mirror=/etc/apt/sources.list.d/debian.sources
else
  mirror=http://deb.debian.org/debian
fi
# merged-usr hook: /usr merged by symlinks (usr-is-merged), without usrmerge and the Perl
# it pulls in. python-is-python3 gives `python`, as python:3.11-slim has it. Debian marks
# its Python as externally managed (PEP 668); in an image whose Python is the image's own,
# as in python:3.11-slim, pip installs into it, so the marker goes. As in Debian's own
# images, apt keeps no package caches: an `apt-get install` in a Dockerfile adds only the
# packages to its layer (the caches are 80 MB).
MMDEBSTRAP=(mmdebstrap --variant=apt --mode=root --format=tar
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --include=python3,python3-pip,python-is-python3,ca-certificates,netbase,tzdata
  --aptopt='Acquire::Check-Valid-Until "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
  --customize-hook='printf "%s\n" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" \
    "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb || true\"; };" \
    >"$1"/etc/apt/apt.conf.d/docker-clean'
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log')
CHANGES=(--change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]')
base_hash=$({ printf '%s\n' "${MMDEBSTRAP[@]}" "$SUITE" "${CHANGES[@]}";
              if [[ -f $mirror ]]; then cat "$mirror"; else echo "$mirror"; fi; } |
            sha256sum | cut -c1-16)

if [[ -z $FORCE && $(label_of "$BASE_IMAGE") == "$base_hash" ]]; then
  say "$BASE_IMAGE is up to date ($LABEL=$base_hash)"
else
  work=$(mktemp -d /var/tmp/meshgate-base.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  say "building $BASE_IMAGE from Debian $SUITE's packages ($mirror); about a minute"
  t0=$SECONDS old=$(id_of "$BASE_IMAGE")
  "${MMDEBSTRAP[@]}" "$SUITE" "$work/rootfs.tar" "$mirror" >"$work/mmdebstrap.log" 2>&1 || {
    tail -20 "$work/mmdebstrap.log" >&2; say "mmdebstrap failed (its last lines above)"; exit 1; }
  "${PODMAN[@]}" import --quiet "${CHANGES[@]}" --change "LABEL $LABEL=$base_hash" \
    "$work/rootfs.tar" "$BASE_IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  drop_replaced "$old" "$BASE_IMAGE"
  say "built $BASE_IMAGE in $((SECONDS - t0)) s ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
fi
[[ -n $BASE_ONLY ]] && exit 0

# ---- the workloads image: workloads/Dockerfile on the base ----------------------------------
base_id=$("${PODMAN[@]}" image inspect --format '{{.Id}}' "$BASE_IMAGE")
content_hash=$({ echo "$base_id"; cd workloads; for f in Dockerfile .dockerignore *.py; do
                   echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-16)
if [[ -z $FORCE && $(label_of "$WORKLOADS_IMAGE") == "$content_hash" ]]; then
  say "$WORKLOADS_IMAGE is up to date ($LABEL=$content_hash)"
  exit 0
fi
say "building $WORKLOADS_IMAGE from workloads/Dockerfile on $BASE_IMAGE"
t0=$SECONDS old=$(id_of "$WORKLOADS_IMAGE")
# Host networking: the RUN steps reach Debian's and PyPI's servers from this machine's own
# network, never through a bridge. --pull=never: the base is local, nothing is pulled.
# podman hands the host's proxy variables to the RUN steps without storing them in the image,
# and the RUN steps trust what this machine trusts: its CA bundle is mounted over the image's
# for the build only (a machine whose TLS to PyPI is re-signed by a local CA needs that),
# never copied into a layer.
ca=${MESHGATE_BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
MOUNTS=()
[[ -f $ca ]] && MOUNTS+=(--volume "$(readlink -f "$ca"):/etc/ssl/certs/ca-certificates.crt:ro")
"${PODMAN[@]}" build --quiet --network host --pull=never "${ULIMITS[@]}" "${MOUNTS[@]}" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$content_hash" \
  -t "$WORKLOADS_IMAGE" workloads/ >/dev/null
drop_replaced "$old" "$WORKLOADS_IMAGE"
say "built $WORKLOADS_IMAGE in $((SECONDS - t0)) s ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$WORKLOADS_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
