#!/usr/bin/env bash
# Cold and no-op builds of py-wheels and many-files (full size), three ways: root on the host,
# rootless (a bench user with subordinate ids, its own store), and root inside an unprivileged
# container (the kiln image under a Docker engine, no --privileged; the store a volume).
# Not a test: figures for the README's table. Run as root after `npm run build`:
#   bench/rootless.sh                      root and rootless
#   KILN_IMAGE=REG/kiln:tag DOCKER_HOST=unix:///…/d.sock bench/rootless.sh   the container too
#   MODES="box" REPS=1 …                   only some of root, user, box
# Each cold build starts from a store holding only the bases (imported beforehand, not timed); the
# no-op build follows it on the same store. REPS (default 3) runs of each; the median is printed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cli="$here/dist/bin/kiln.js"
bases="${KILN_TEST_BASES:-/var/cache/kiln-test-bases}"
reps="${REPS:-3}"
workloads="${WORKLOADS:-py-wheels many-files}"
user=kilnbench
work="$(mktemp -d /tmp/kiln-bench-rootless-XXXXXX)"
chmod 755 "$work"
cleanup() { userdel -r -f "$user" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (it makes the bench user)" >&2; exit 2; }
command -v newuidmap >/dev/null || { echo "apt-get install uidmap" >&2; exit 2; }
userdel -r -f "$user" >/dev/null 2>&1 || true
useradd -m -K SUB_UID_COUNT=65536 -K SUB_GID_COUNT=65536 "$user"
home="$(getent passwd "$user" | cut -d: -f6)"
cp -r "$here/bench/workloads" "$work/workloads"
chmod -R a+rX "$work/workloads"

names=(python-full python-slim node-full node-slim debian-slim)
# One archive of the bases, loaded into every store (the same images everywhere).
seed="$work/seed-store"
for b in "${names[@]}"; do node "$cli" --root "$seed" import "$bases/$b.tar" "localhost:5000/$b:bookworm" >/dev/null; done
node "$cli" --root "$seed" save -o "$work/bases.tar" $(for b in "${names[@]}"; do echo "localhost:5000/$b:bookworm"; done)
chmod 644 "$work/bases.tar"

as_user() { runuser -u "$user" -- env -i HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_DATA_HOME="$home/.local/share" "$@"; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@" >&2 || true; exit 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.2f\n", e - s}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

fresh_root() { rm -rf "$work/root-store"; node "$cli" --root "$work/root-store" load -q -i "$work/bases.tar"; }
# The user's store holds files of its subordinate ids: removed from inside its user namespace.
fresh_user() { as_user unshare --user --map-auto --map-root-user rm -rf "$home/.local/share/kiln"; as_user node "$cli" load -q -i "$work/bases.tar"; }
fresh_box() { rm -rf "$work/box-store"; mkdir -p "$work/box-store"; node "$cli" --root "$work/box-store" load -q -i "$work/bases.tar"; }

root_build() { node "$cli" --root "$work/root-store" build -q -t "bench/$1" "$work/workloads/$1"; }
user_build() { as_user node "$cli" build -q -t "bench/$1" "$work/workloads/$1"; }
box_build() { docker run --rm --network host -v "$work/box-store:/var/lib/kiln" -v "$work/workloads/$1:/workspace:ro" "$KILN_IMAGE" build -q -t "bench/$1" /workspace; }

modes=(root user)
[ -n "${KILN_IMAGE:-}" ] && modes+=(box)
# MODES="box" (any of root, user, box) measures only those.
[ -n "${MODES:-}" ] && read -r -a modes <<< "$MODES"
printf 'workload\tmode\tcold_s\tnoop_s\n'
for w in $workloads; do
  for m in "${modes[@]}"; do
    cold=(); noop=()
    for _ in $(seq "$reps"); do
      "fresh_$m" >/dev/null
      cold+=("$(secs "${m}_build" "$w")")
      noop+=("$(secs "${m}_build" "$w")")
    done
    printf '%s\t%s\t%s\t%s\n' "$w" "$m" "$(printf '%s\n' "${cold[@]}" | median)" "$(printf '%s\n' "${noop[@]}" | median)"
  done
done
