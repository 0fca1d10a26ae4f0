#!/usr/bin/env bash
# The floor under any builder's cold build: the RUN commands of a workload's longest chain, run
# natively — the base image's files extracted to a directory, the context files copied in as the
# Dockerfile does, each command in a chroot of it (a private mount namespace with /proc and /dev),
# no builder, no runtime, no overlay, no layer. A builder that runs the same commands can only
# add to this. Not a test: figures for docs/benchmarks.md, to compare with BuildKit's cold build
# ÷ 1.1 (issue 23's cold target). Run as root, nothing else running:
#   bench/process-floor.sh [WORKLOAD…]     (default: all it knows: py-wheels py-obfuscate single-stage-fat
#                                           py-venv node-distroless)
#   REPS=5 bench/process-floor.sh          (default 3; the median is printed)
# Where two stages' chains run in parallel (py-obfuscate, py-venv, node-distroless), they run in
# parallel here too. The extracted base is synced to disk before the clock starts: a builder's base
# is long unpacked, and its writeback must not compete with the commands (it did: the floor came out
# above BuildKit's whole build).
# Bases: the same Debian-made tars the peers' registry serves (KILN_TEST_BASES, default
# /var/cache/kiln-test-bases; test/helpers/bases.ts makes them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bases="${KILN_TEST_BASES:-/var/cache/kiln-test-bases}"
reps="${REPS:-3}"
[ "$(id -u)" = 0 ] || { echo "run as root (chroot and mounts need it)" >&2; exit 2; }
for b in python-full python-slim node-full node-slim; do
  [ -f "$bases/$b.tar" ] || { echo "missing $bases/$b.tar: run the tests once (they make the bases)" >&2; exit 2; }
done
work="$(mktemp -d /var/tmp/kiln-floor-XXXXXX)"
trap 'rm -rf "$work"' EXIT
PATHS='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# fresh NAME BASE: the base's files in $work/NAME (untimed).
fresh() {
  rm -rf "${work:?}/$1"
  mkdir -p "$work/$1"
  tar -xf "$bases/$2.tar" -C "$work/$1"
  sync
}
# inroot NAME DIR COMMAND: COMMAND by /bin/sh in DIR of root NAME, as a RUN step's shell form runs it
# (docker's default PATH, HOME=/root, stdin closed).
inroot() {
  local r="$work/$1"
  unshare --mount --propagation private /bin/sh -c '
    mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" &&
    exec chroot "$1" /usr/bin/env -i "$2" HOME=/root /bin/sh -c "cd \"\$0\" && $3" "$4"' \
    - "$r" "$PATHS" "$3" "$2" </dev/null >/dev/null 2>"$work/err" || {
    echo "failed in $1: $3" >&2
    cat "$work/err" >&2
    exit 1
  }
}
ms() { echo $(($(date +%s%N) / 1000000)); }

# Each workload: set-up (untimed), then the chain's commands (timed); prints milliseconds.
floor_single_stage_fat() {
  local w="$here/workloads/single-stage-fat"
  fresh fat python-full
  cp "$w/requirements.txt" "$work/fat/tmp/" && cp -r "$w/vendor" "$work/fat/tmp/vendor"
  local t0
  t0=$(ms)
  inroot fat /tmp 'python3 -m venv --system-site-packages /venv && /venv/bin/pip install --no-index --no-build-isolation -r /tmp/requirements.txt'
  echo $(($(ms) - t0))
}
floor_py_wheels() {
  local w="$here/workloads/py-wheels"
  fresh wb python-full
  fresh wf python-slim
  cp "$w/requirements.txt" "$work/wb/tmp/" && cp -r "$w/vendor" "$work/wb/tmp/vendor"
  local t0 t1 t2
  t0=$(ms)
  inroot wb /tmp 'python3 -m pip wheel --no-index --no-build-isolation -w /tmp/wheels -r /tmp/requirements.txt'
  t1=$(ms)
  cp -a "$work/wb/tmp/wheels" "$work/wf/tmp/wheels" # COPY --from=builder: not timed
  t2=$(ms)
  inroot wf /tmp/wheels 'python3 -m venv /venv && /venv/bin/pip --no-cache-dir install --no-index *.whl'
  echo $((t1 - t0 + $(ms) - t2))
}
floor_py_obfuscate() {
  local w="$here/workloads/py-obfuscate"
  fresh ob python-full
  fresh of python-full
  mkdir -p "$work/ob/usr/src/app" "$work/of/usr/src/app"
  cp -a "$w/." "$work/ob/usr/src/app/"
  cp "$w/requirements.txt" "$work/of/usr/src/app/" && cp -r "$w/vendor" "$work/of/usr/src/app/vendor"
  local t0 pid
  t0=$(ms)
  # the obfuscated-code stage and the final stage's install run side by side, as in any builder
  (inroot ob /usr/src/app './code_obfuscation.py' && inroot ob /usr/src/app 'rm code_obfuscation.py') &
  pid=$!
  inroot of /usr/src/app 'python3 -m venv --system-site-packages /venv && /venv/bin/pip install --no-index --no-build-isolation -r requirements.txt'
  wait "$pid"
  echo $(($(ms) - t0))
}
floor_py_venv() {
  local w="$here/workloads/py-venv"
  fresh va node-full
  fresh vb python-full
  mkdir -p "$work/va/app" "$work/vb/app"
  cp "$w/package.json" "$w/build-assets.js" "$work/va/app/" && cp -r "$w/media" "$work/va/app/media"
  # the builder's COPYs (between its venv and its install) made first: untimed, and the venv's
  # creation does not look at /app
  cp "$w/requirements.txt" "$work/vb/app/" && cp -r "$w/vendor" "$work/vb/app/vendor"
  local t0 pid envs='export LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/venv/bin:$PATH'
  t0=$(ms)
  # the assets stage beside the builder stage (the venv, then the install), as in any builder
  inroot va /app 'export PATH=/app/node_modules/.bin:$PATH && node build-assets.js --production' &
  pid=$!
  inroot vb /app "$envs && python3 -m venv --system-site-packages /venv"
  inroot vb /app "$envs && pip install --no-index --no-build-isolation --no-cache-dir -r requirements.txt"
  wait "$pid"
  echo $(($(ms) - t0))
}
floor_node_distroless() {
  local w="$here/workloads/node-distroless"
  fresh na node-full
  fresh nf node-slim
  mkdir -p "$work/na/app"
  cp "$w"/package*.json "$work/na/app/" && cp -r "$w/vendor" "$work/na/app/vendor"
  local t0 pid
  t0=$(ms)
  # the final stage's useradd beside the npm stage, as in any builder
  inroot nf / 'useradd -u 65532 -M -d /home/nonroot -s /usr/sbin/nologin nonroot' &
  pid=$!
  inroot na /app 'npm install --omit=dev --offline --no-audit --no-fund'
  wait "$pid"
  echo $(($(ms) - t0))
}

known=(py-wheels py-obfuscate single-stage-fat py-venv node-distroless)
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=("${known[@]}")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for wl in "${workloads[@]}"; do
  fn="floor_${wl//-/_}"
  declare -F "$fn" >/dev/null || { echo "no floor defined for $wl (have: ${known[*]})" >&2; exit 2; }
  times=()
  for _ in $(seq "$reps"); do times+=("$("$fn")"); done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$wl: the RUN commands alone, natively: median ${median} ms (${times[*]})"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
