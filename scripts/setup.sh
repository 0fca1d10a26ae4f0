#!/usr/bin/env bash
# Everything kiln and its tests need on a fresh Debian 12 machine: system packages, npm packages,
# and the TypeScript build. Idempotent; run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js: the LTS lines 24 and 22 (tested), or 20.15+ (the floor: zlib.crc32). Node 20 reached its
# end of life in April 2026; kiln still runs on it, without what newer lines add (zstd in node:zlib,
# the module compile cache). Say so now rather than fail at the first build.
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 15) ? 0 : 1)' \
  || { echo "kiln needs Node.js 20.15 or newer; 22 or 24 (LTS) recommended (this is $(node --version))" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' \
  || echo "note: Node.js $(node --version) is past its end of life (April 2026); kiln supports it, but 22 or 24 (LTS) are recommended" >&2

# System packages:
#   runc, crun        OCI runtimes for RUN steps and `kiln run` (kiln probes which one works)
#   util-linux        unshare/mount for the chroot sandbox backend
#   uidmap            newuidmap/newgidmap: rootless builds map the user's subordinate ids (/etc/subuid)
#   fuse-overlayfs    rootless overlay where the kernel refuses overlayfs in a user namespace
#   acl               setfacl: the fuse-overlayfs test gives a test user /dev/fuse for its run only
#   zstd, pigz        zstd layer compression; pigz as a benchmark reference
#   skopeo, umoci     interop tests: other tools must read what kiln writes
#   docker-registry   the real distribution registry, for registry tests
#   docker.io         a real Docker engine with BuildKit, for interop and differential tests
#   mmdebstrap        makes the Debian base images the tests import (no public registry here)
#   openssl           test CAs and token-signing keys
#   apache2-utils     htpasswd (bcrypt) for the registry's Basic-auth tests
#   chromium          headless browser tests of the HTML report
#   git               ADD of git repositories (its tests serve one with git daemon)
#   qemu-user-static  RUN steps for a foreign architecture (multi-platform builds) through binfmt_misc;
#   binfmt-support    update-binfmts registers its interpreters; arch-test lets mmdebstrap make the
#   arch-test         arm64 test bases on an x86-64 machine
#   file              the multi-platform tests check which architecture every ELF file was built for
#   python3, make, g++  node-gyp builds the native addons at npm ci (fs-xattr; kiln's own native/)
pkgs=(runc crun util-linux uidmap fuse-overlayfs acl zstd pigz skopeo umoci docker-registry docker.io mmdebstrap openssl apache2-utils ca-certificates git python3 make g++ libdeflate-dev chromium qemu-user-static binfmt-support arch-test file)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Foreign-architecture RUN steps: the kernel's binfmt_misc must be mounted and QEMU's aarch64 (and
# x86-64, on an arm64 machine) interpreter registered with the F flag (the kernel opens the static
# interpreter now, so it works inside a sandbox's root where /usr/libexec/qemu-binfmt is absent).
# Debian's qemu-user-static registers them with F through binfmt-support; a container or a machine
# without systemd may not have run that, so do it here.
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
[ -e /proc/sys/fs/binfmt_misc/status ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
for q in qemu-aarch64 qemu-x86_64; do
  [ -e "/usr/share/binfmts/$q" ] || continue   # the machine's own architecture has none
  [ -e "/proc/sys/fs/binfmt_misc/$q" ] || $SUDO update-binfmts --enable "$q" || $SUDO update-binfmts --import "$q"
  grep -q '^flags:.*F' "/proc/sys/fs/binfmt_misc/$q" \
    || { echo "binfmt_misc: $q is registered without the F flag; run: update-binfmts --disable $q && update-binfmts --enable $q" >&2; exit 1; }
done

npm ci --no-audit --no-fund
npm run build
echo "kiln is set up: try 'npx kiln --help'"
