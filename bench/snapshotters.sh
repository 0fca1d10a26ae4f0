#!/usr/bin/env bash
# Cold builds of a 5-RUN Dockerfile on python-slim with each snapshotter (root): kernel overlay,
# fuse-overlayfs, native. Not a test: figures for docs/rootless.md. Run as root after `npm run build`:
#   bench/snapshotters.sh            REPS (default 3) cold builds of each, interleaved
# Each build starts from a fresh store holding only the base (imported beforehand, not timed).
# Printed per snapshotter: the median wall time and the median CPU time of kiln and every process
# it started, fuse-overlayfs included (it detaches, so GNU time would miss it): a cpuacct cgroup
# (v1) holds the build when there is one, else GNU time's user + system.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cli="$here/dist/bin/kiln.js"
bases="${KILN_TEST_BASES:-/var/cache/kiln-test-bases}"
reps="${REPS:-3}"
kinds="${SNAPSHOTTERS:-overlay fuse-overlayfs native}"
work="$(mktemp -d /tmp/kiln-bench-snap-XXXXXX)"
trap 'rm -rf "$work"' EXIT
[ "$(id -u)" = 0 ] || { echo "run as root (kernel overlay needs it)" >&2; exit 2; }
command -v fuse-overlayfs >/dev/null || { echo "apt-get install fuse-overlayfs" >&2; exit 2; }

mkdir "$work/ctx"
cat > "$work/ctx/Dockerfile" <<'DF'
FROM localhost:5000/python-slim:bookworm
# reads the standard library, writes its bytecode (many small files)
RUN python3 -m compileall -q /usr/local/lib/python3*/ /usr/lib/python3*/ 2>/dev/null || true
# 5,000 new files in 50 directories
RUN python3 -c "import os; [os.makedirs(f'/data/{d}', exist_ok=True) or [open(f'/data/{d}/{i}', 'w').write('x' * 512) for i in range(100)] for d in range(50)]"
# reads every file of the image
RUN find / -xdev -type f -print0 2>/dev/null | xargs -0 cat > /dev/null 2>&1; true
# metadata only: modes of a lower tree (copy-ups), then a delete
RUN chmod -R go-w /usr/share && rm -rf /usr/share/doc
# one 64 MB file written and read back
RUN head -c 67108864 /dev/urandom > /big && sha256sum /big > /big.sum
DF
seed="$work/seed"
node "$cli" --root "$seed" import "$bases/python-slim.tar" localhost:5000/python-slim:bookworm >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for r in $(seq "$reps"); do
  for k in $kinds; do
    store="$work/store-$k-$r"
    cp -a "$seed" "$store"
    cg=/sys/fs/cgroup/cpuacct/kiln-bench-$$-$k-$r
    mkdir "$cg" 2>/dev/null || cg=
    /usr/bin/time -f "%e %U %S" -o "$work/t" sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
      node "$cli" --root "$store" build -q --no-cache --snapshotter "$k" -t app "$work/ctx" >/dev/null
    read -r wall user sys < "$work/t"
    if [ -n "$cg" ]; then
      cpu=$(awk '{printf "%.2f", $1 / 1e9}' "$cg/cpuacct.usage")
      rmdir "$cg" 2>/dev/null || true
    else
      cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
    fi
    echo "$k $wall $cpu" | tee -a "$work/all" >&2
    rm -rf "$store"
  done
done
echo "snapshotter  wall(s)  cpu(s)  (median of $reps; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for k in $kinds; do
  printf '%-14s %6s  %6s\n' "$k" "$(awk -v k="$k" '$1 == k {print $2}' "$work/all" | median)" \
    "$(awk -v k="$k" '$1 == k {print $3}' "$work/all" | median)"
done
