#!/usr/bin/env bash
# Multi-platform builds (issue 20): what a second, emulated platform costs.
#  1. py-wheels cold, from a store holding only its bases (two-platform indexes of python-full and
#     python-slim, amd64 + arm64): --platform linux/amd64 alone (this machine's own platform: the
#     single-platform build), linux/arm64 alone (its RUN steps under QEMU), and both at once.
#  2. One compile-heavy RUN step (gcc -O2 of a generated C file, ~5 s of CPU natively) for
#     linux/amd64 (native) and linux/arm64 (the arm64 gcc under QEMU): the step's own time, from
#     the step-done event of --progress=json, with its base in the store and no cache.
# Not a test: figures for docs/benchmarks.md. Run as root after `npm run build`:
#   bench/multi-platform.sh                 REPS=3 runs of each, the median printed
#   REPS=1 PARTS=compile GEN_FUNCS=400 …    only some of: wheels compile; the C file's size
# Needs the arm64 bases (scripts/make-base.sh OUTDIR python-full-arm64 python-slim-arm64: ~30-40
# min each under QEMU, once) and QEMU in binfmt_misc with the F flag (scripts/setup.sh). Prints the
# load average and the CPU time of each run beside it: the machine may be shared.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cli="$here/dist/bin/kiln.js"
bases="${KILN_TEST_BASES:-/var/cache/kiln-test-bases}"
reps="${REPS:-3}"
parts="${PARTS:-wheels compile}"
funcs="${GEN_FUNCS:-400}"
work="$(mktemp -d /tmp/kiln-bench-mp-XXXXXX)"
trap 'rm -rf "$work"' EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (the sandbox and the bases need it)" >&2; exit 2; }
[ -f "$cli" ] || { echo "build first: npm run build" >&2; exit 2; }
grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "QEMU for arm64 is not registered with the F flag in binfmt_misc: scripts/setup.sh" >&2
  exit 2
}

# The store every cold run starts from: each base as an index of its amd64 and arm64 images, under
# the names the workloads use (REGISTRY=localhost:5000).
seed="$work/seed-store"
kiln() { node "$cli" --root "$1" "${@:2}"; }
for b in python-full python-slim; do
  bash "$here/scripts/make-base.sh" "$bases" "$b" "$b-arm64" >/dev/null
  kiln "$seed" import --platform linux/amd64 "$bases/$b.tar" "localhost:5000/$b:bookworm-amd64" >/dev/null
  kiln "$seed" import --platform linux/arm64 "$bases/$b-arm64.tar" "localhost:5000/$b:bookworm-arm64" >/dev/null
  kiln "$seed" manifest create "localhost:5000/$b:bookworm" \
    "localhost:5000/$b:bookworm-amd64" "localhost:5000/$b:bookworm-arm64" >/dev/null
done
fresh() { rm -rf "$work/store"; cp -a "$seed" "$work/store"; }

# The C file: $funcs functions of loops and branches (work for gcc's optimizers), and a main.
ctx="$work/compile"
mkdir -p "$ctx"
{
  echo '#include <stdint.h>'
  for i in $(seq 1 "$funcs"); do
    echo "uint64_t f$i(uint64_t x, uint64_t y) { uint64_t a = x * $i + y; for (int k = 0; k < 16; k++) {" \
      "a = (a << 7) ^ (a >> 3) ^ (y + k * $i); if (a % 7 == $((i % 7))) y += a / 3; else y ^= a * 5;" \
      "switch ((a + k) & 7) { case 0: a += 1; break; case 1: a *= 3; break; case 2: a ^= y; break;" \
      "case 3: a -= k; break; case 4: a += y >> 2; break; case 5: a |= $i; break; case 6: a &= ~y; break;" \
      "default: a = a * a; } } return a ^ y; }"
  done
  echo 'int main(void) { uint64_t s = 0;'
  for i in $(seq 1 "$funcs"); do echo "  s += f$i(s, $i);"; done
  echo '  return (int)(s & 1); }'
} >"$ctx/gen.c"
cat >"$ctx/Dockerfile" <<'EOF'
FROM localhost:5000/python-full:bookworm
COPY gen.c /src/gen.c
RUN gcc -O2 -o /gen /src/gen.c
EOF

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# `time` of a build: wall, user and system seconds of kiln and the processes it waited for.
TIMEFORMAT='%R %U %S'
load() { cut -d' ' -f1 /proc/loadavg; }

# One cold build of py-wheels for the platforms $1: "wall_s cpu_s load".
wheels_once() {
  local l
  fresh
  l=$(load)
  { time kiln "$work/store" build -q --platform "$1" -t bench/wheels "$here/bench/workloads/py-wheels" >"$work/out" 2>&1; } \
    2>"$work/time" || { cat "$work/out" >&2; exit 1; }
  awk -v l="$l" '{printf "%.1f %.1f %s\n", $1, $2 + $3, l}' "$work/time"
}

# The compile step's time for platform $1 (no cache, its base in the store), and the CPU time of
# the whole build (the step's gcc is nearly all of it): "step_s cpu_s load".
compile_once() {
  local l
  fresh
  l=$(load)
  { time kiln "$work/store" build --progress=json --no-cache --platform "$1" -t bench/compile "$ctx" >"$work/events" 2>"$work/err"; } \
    2>"$work/time" || { cat "$work/err" >&2; exit 1; }
  node -e '
    const ev = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const run = ev.find((e) => e.type === "step-start" && /^RUN gcc/.test(e.text ?? ""));
    const done = run && ev.find((e) => e.type === "step-done" && e.stage === run.stage && e.step === run.step);
    if (!done) { console.error("no RUN gcc step-done event"); process.exit(1); }
    const [, user, sys] = require("fs").readFileSync(process.argv[2], "utf8").trim().split(" ").map(Number);
    console.log((done.ms / 1000).toFixed(1), (user + sys).toFixed(1), process.argv[3]);
  ' "$work/events" "$work/time" "$l"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg); REPS=$reps"
if [[ " $parts " == *" wheels "* ]]; then
  printf 'py-wheels cold\tplatforms\twall_s (median)\tcpu_s (each run)\tload (each run)\n'
  for p in linux/amd64 linux/arm64 linux/amd64,linux/arm64; do
    walls=() cpus=() loads=()
    for _ in $(seq "$reps"); do
      r=$(wheels_once "$p")
      read -r w c l <<<"$r"
      walls+=("$w") cpus+=("$c") loads+=("$l")
    done
    printf 'py-wheels\t%s\t%s\t%s\t%s\n' "$p" "$(printf '%s\n' "${walls[@]}" | median)" "${cpus[*]}" "${loads[*]}"
  done
fi
if [[ " $parts " == *" compile "* ]]; then
  printf 'gcc -O2 step (%s functions)\tplatform\tstep_s (median)\tstep_s (each run)\tcpu_s (each build)\tload (each run)\n' "$funcs"
  for p in linux/amd64 linux/arm64; do
    steps=() cpus=() loads=()
    for _ in $(seq "$reps"); do
      r=$(compile_once "$p")
      read -r t c l <<<"$r"
      steps+=("$t") cpus+=("$c") loads+=("$l")
    done
    printf 'compile\t%s\t%s\t%s\t%s\t%s\n' "$p" "$(printf '%s\n' "${steps[@]}" | median)" "${steps[*]}" "${cpus[*]}" "${loads[*]}"
  done
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
