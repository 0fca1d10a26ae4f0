#!/usr/bin/env bash
# Make Debian-based root filesystem tarballs that stand in for public base images, offline from any
# container registry (only Debian's package mirror is needed). Each tarball is a plain rootfs tar,
# importable with `kiln import`, `docker import` or `buildah`.
#
#   scripts/make-base.sh OUTDIR [NAME...]
#
# NAMEs (default: all):
#   debian-slim  Debian bookworm minbase                       (~ debian:bookworm-slim)
#   python-slim  minbase + python3 + venv                      (~ python:3.11-slim)
#   python-full  python-slim + pip, setuptools, wheel, gcc,    (~ python:3.11, the "full" image)
#                python3-dev, build-essential, git
#   node-slim    minbase + nodejs                              (~ node:18-slim / distroless runtime)
#   node-full    node-slim + npm + build-essential             (~ node:18)
#   cross-gcc    minbase + gcc, libc6-dev, the aarch64 cross     (~ a cross-compiling builder image)
#                compiler (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and file
#
# NAME-ARCH (e.g. python-slim-arm64, debian-slim-amd64) makes the same base for another Debian
# architecture (mmdebstrap --arch ARCH): a foreign one runs its maintainer scripts through QEMU, so it
# needs qemu-user-static registered in binfmt_misc (scripts/setup.sh does that). A NAME without an
# architecture is the machine's own.
#
# Output: OUTDIR/NAME.tar. Existing tarballs are kept (delete one to make it again). Makers of the
# same NAME in OUTDIR take turns (a mkdir lock OUTDIR/.NAME.lock, the one the test helpers use, touched
# every minute while its maker works; one untouched for 15 minutes is taken over), so
# tests, the demo and the benchmark can ask for the same base at once.
# Needs: root, mmdebstrap (apt-get install mmdebstrap), access to Debian's package mirror.
set -euo pipefail
out=${1:?usage: make-base.sh OUTDIR [NAME...]}; shift
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(debian-slim python-slim python-full node-slim node-full)
arches="amd64 arm64 armhf i386 ppc64el s390x riscv64"
# arch_of NAME: the Debian architecture a NAME-ARCH asks for, or nothing for the machine's own.
arch_of() { local a; for a in $arches; do [ "${1%-"$a"}" != "$1" ] && { echo "$a"; return; }; done; }
base_of() { local a; a=$(arch_of "$1"); [ -n "$a" ] && echo "${1%-"$a"}" || echo "$1"; }
pkgs_for() {
  case "$(base_of "$1")" in
    debian-slim) echo "" ;;
    python-slim) echo "python3,python3-venv,ca-certificates" ;;
    python-full) echo "python3,python3-venv,python3-pip,python3-setuptools,python3-wheel,python3-dev,build-essential,git,ca-certificates" ;;
    node-slim)   echo "nodejs,ca-certificates" ;;
    node-full)   echo "nodejs,npm,build-essential,python3,git,ca-certificates" ;;
    cross-gcc)   echo "gcc,libc6-dev,gcc-aarch64-linux-gnu,libc6-dev-arm64-cross,file" ;;
    *) echo "make-base.sh: unknown base \"$1\" (known: debian-slim python-slim python-full node-slim node-full cross-gcc, each also as NAME-ARCH with ARCH one of: $arches)" >&2; return 1 ;;
  esac
}
for n in "${names[@]}"; do pkgs_for "$n" >/dev/null || exit 2; done
mkdir -p "$out"
have() { [ -s "$out/$1.tar" ]; }
todo=(); for n in "${names[@]}"; do have "$n" && echo "have $out/$n.tar" || todo+=("$n"); done
[ ${#todo[@]} -gt 0 ] || exit 0
[ "$(id -u)" = 0 ] || { echo "make-base.sh: making ${todo[*]} needs root (mmdebstrap unpacks packages as their owners)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }

# make_one NAME OUT.tar: mmdebstrap with its temporary chroot in a directory of ours, so that what
# it leaves behind when it fails (a /proc still mounted) can be unmounted and removed.
make_one() {
  local p a inc=() work rc=0
  p=$(pkgs_for "$1")
  [ -n "$p" ] && inc=(--include="$p")
  a=$(arch_of "$1")
  [ -n "$a" ] && inc+=(--arch="$a")
  work="$out/.work.$1.$$"
  mkdir -p "$work"
  # Deterministic enough for fixtures: a fixed mirror snapshot is not reachable, so only the suite
  # and the timestamps are pinned.
  TMPDIR="$work" SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=minbase --format=tar \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "${inc[@]}" bookworm "$2" || rc=$?
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$work" 2>/dev/null || true
  [ "$rc" = 0 ] || rm -f "$2"
  return "$rc"
}

locks=() heartbeat=
cleanup() {
  [ -n "$heartbeat" ] && kill "$heartbeat" 2>/dev/null
  for l in "${locks[@]}"; do rm -rf "$l"; done
  rm -f "$out"/*.tar.tmp.$$
}
trap cleanup EXIT
for n in "${todo[@]}"; do
  t="$out/$n.tar" lock="$out/.$n.lock"
  # Another maker of the same base: wait for it (its heartbeat touches the lock every minute, so a lock
  # untouched for 15 minutes is a dead maker's).
  until mkdir "$lock" 2>/dev/null; do
    have "$n" && break
    [ -n "$(find "$lock" -maxdepth 0 -mmin +15 2>/dev/null)" ] && rm -rf "$lock"
    sleep 1
  done
  if have "$n"; then echo "have $t"; rm -rf "$lock" 2>/dev/null || true; continue; fi
  locks+=("$lock")
  # Heartbeat: a foreign-architecture base takes 30-80 minutes under QEMU, so the lock is touched every
  # minute while we make it; a lock untouched for 15 minutes then really is a dead maker's.
  # (Its sleep is waited for, so that killing the heartbeat ends the sleep too and leaves nothing behind.)
  (
    trap 'kill $! 2>/dev/null; exit 0' TERM
    while :; do
      sleep 60 & wait $!
      touch "$lock" 2>/dev/null || exit 0
    done
  ) &
  heartbeat=$!
  # One retry: mmdebstrap now and then fails to unmount its chroot's /proc ("target is busy") on a
  # busy machine, and gives up; a second run goes through.
  for attempt in 1 2; do
    if make_one "$n" "$t.tmp.$$"; then break; fi
    [ "$attempt" = 2 ] && { echo "make-base.sh: mmdebstrap failed twice for $n" >&2; exit 1; }
    echo "make-base.sh: mmdebstrap failed for $n; trying again" >&2
  done
  mv "$t.tmp.$$" "$t"
  kill "$heartbeat" 2>/dev/null || true; wait "$heartbeat" 2>/dev/null || true; heartbeat=
  rm -rf "$lock"
  echo "made $t ($(du -h "$t" | cut -f1))"
done
