#!/usr/bin/env bash
# Time image builders side by side on the workloads in bench/workloads (the seeds' multi-stage patterns
# plus two stress cases). For each workload and builder:
#   cold   build with the builder's --no-cache (base images already present locally)
#   noop   the same build again, nothing changed (fully cached)
#   incr   after appending one line to one application source file
# and the final image's size and layer count. Median of REPS runs (default 3). For BuildKit and kiln
# also the seconds in their cold builds during which a RUN step's process ran (cold_run_s: the
# union of the RUN steps' intervals, so that stages' RUNs side by side count once): BuildKit's from
# its --progress=plain output (a step's DONE time, ending when its line arrives), kiln's from its
# KILN_PROFILE record ("RUN process" phases). What is left of a cold build is the builder's own.
#
#   run-peers.sh [-r REPS] [-b builders] [-w workloads] [-o out.tsv]
#     builders: comma list of buildkit,classic,buildah,kiln (default: those available)
#     KILN='node /path/to/dist/bin/kiln.js'  enables the kiln column: `$KILN build --no-cache -t T CTX`
#     Start the peers and the registry first: ./peers-up.sh (next to this script). `npm run bench`
#     does both.
#     REGISTRY=localhost:5000 where the base images (debian-slim, python-slim, python-full, node-slim,
#     node-full, tag bookworm) are served; bases are pulled into each builder once before timing.
set -uo pipefail
workloads_dir=$(cd "$(dirname "$0")/../workloads" && pwd)
reps=3; only=""; wl=""; out=/tmp/run-peers.tsv
while getopts r:b:w:o: o; do case $o in r) reps=$OPTARG;; b) only=$OPTARG;; w) wl=$OPTARG;; o) out=$OPTARG;; *) exit 2;; esac; done
export REGISTRY=${REGISTRY:-localhost:5000}
export DOCKER_HOST=${DOCKER_HOST:-unix:///tmp/dockerd.sock}
D=/usr/bin/docker   # Debian's docker.io client: builds with BuildKit without the buildx plugin
builders=()
if [ -n "$only" ]; then IFS=, read -ra builders <<<"$only"; else
  $D version >/dev/null 2>&1 && builders+=(buildkit classic)
  command -v buildah >/dev/null && builders+=(buildah)
  [ -n "${KILN:-}" ] && builders+=(kiln)
fi
workloads=(); if [ -n "$wl" ]; then IFS=, read -ra workloads <<<"$wl"; else
  for d in "$workloads_dir"/*/; do workloads+=("$(basename "$d")"); done; fi
bases=(debian-slim python-slim python-full node-slim node-full)

prepare() { # make the bases present locally in builder $1
  for b in "${bases[@]}"; do case $1 in
    buildkit|classic) $D pull -q "$REGISTRY/$b:bookworm" >/dev/null ;;
    buildah) buildah pull -q --tls-verify=false "$REGISTRY/$b:bookworm" >/dev/null ;;
    kiln) $KILN pull "$REGISTRY/$b:bookworm" >/dev/null ;;
  esac; done
}
runlog=$(mktemp /tmp/run-peers-runs.XXXXXX); trap 'rm -f "$runlog"' EXIT
# stamp: each line of stdin with the time it arrived ("epoch-seconds TAB line").
stamp() { python3 -u -c 'import sys, time
for l in sys.stdin: sys.stdout.write(f"{time.time():.3f}\t{l}")'; }
build() { # builder tag ctx [--no-cache]
  local b=$1 t=$2 c=$3; shift 3
  if [ "${1:-}" = --no-cache ]; then # a cold build: its RUN steps' times go to $runlog
    : >"$runlog"
    case $b in
      buildkit)
        DOCKER_BUILDKIT=1 $D build --progress=plain --network none "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c" 2>&1 | stamp >"$runlog"
        local rc=${PIPESTATUS[0]}
        [ "$rc" = 0 ] || cut -f2- "$runlog" # the error, for secs to show
        return "$rc" ;;
      kiln)
        KILN_PROFILE="$runlog" $KILN build -q "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c"
        local rc=$?
        # npm run bench collects every kiln call's profile in its own KILN_PROFILE file
        [ -n "${KILN_PROFILE:-}" ] && cat "$runlog" >>"$KILN_PROFILE"
        return $rc ;;
    esac
  fi
  case $b in
    # peers-up.sh's dockerd has no bridge (the host's network is left alone): RUN steps get none.
    buildkit) DOCKER_BUILDKIT=1 $D build -q --network none "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c" ;;
    classic)  DOCKER_BUILDKIT=0 $D build -q --network none "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c" ;;
    buildah)  buildah bud -q --layers --tls-verify=false --runtime /usr/sbin/runc "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c" ;;
    kiln)     $KILN build -q "$@" --build-arg REGISTRY="$REGISTRY" -t "$t" "$c" ;;
  esac
}
size_layers() { # builder tag -> "bytes layers"
  case $1 in
    buildkit|classic) echo "$($D image inspect -f '{{.Size}}' "$2") $($D image inspect -f '{{len .RootFS.Layers}}' "$2")" ;;
    buildah) echo "$(buildah inspect -f '{{.FromImage}}' "$2" >/dev/null 2>&1; podman_size=$(buildah images --format '{{.Size}}' --filter reference="$2" | head -1); echo "${podman_size// /}") $(buildah inspect -t image -f '{{len .OCIv1.RootFS.DiffIDs}}' "$2")" ;;
    kiln) $KILN inspect "$2" | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d.get("Size", "?"), len(d.get("RootFS",{}).get("Layers",[])))' ;;
  esac
}
secs() { local s e; s=$(date +%s.%N); "$@" >/tmp/run-peers.last 2>&1; local rc=$?; e=$(date +%s.%N)
  [ $rc = 0 ] || { echo "FAILED($rc)"; tail -5 /tmp/run-peers.last >&2; return 1; }
  python3 -c "print(f'{$e-$s:.2f}')"; }
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x.replace(".","",1).isdigit()]; print(f"{statistics.median(v):.2f}" if v else "FAILED")' "$@"; }
# run_secs BUILDER: the seconds of $runlog's RUN steps (the union of their intervals); "" if none.
run_secs() { python3 - "$1" "$runlog" <<'PY'
import json, re, sys
builder, log = sys.argv[1], sys.argv[2]
spans = []
if builder == "buildkit":
    runs = set()
    for line in open(log, errors="replace"):
        ts, _, text = line.partition("\t")
        m = re.match(r"#(\d+) \[[^\]]*\] RUN ", text)
        if m: runs.add(m.group(1))
        m = re.match(r"#(\d+) DONE (\d+(?:\.\d+)?)s", text)
        if m and m.group(1) in runs:
            end = float(ts)
            spans.append((end - float(m.group(2)), end))
elif builder == "kiln":
    lines = [l for l in open(log) if l.strip()]
    if lines:
        for p in json.loads(lines[-1]).get("phases", []):
            if p["name"].startswith("RUN process"):
                spans.append((p["start"] / 1000, (p["start"] + p["ms"]) / 1000))
total, end = 0.0, None
for a, b in sorted(spans):
    if end is None or a > end: total += b - a; end = b
    elif b > end: total += b - end; end = b
print(f"{total:.2f}" if spans else "")
PY
}
touch_src() { local c=$1 f; for f in app/util.py index.js gen.py; do [ -f "$c/$f" ] && { cp "$c/$f" "$c/$f.bak"; echo "# touched $RANDOM" >> "$c/$f"; [ "$f" = index.js ] && sed -i '$ s|^#|//|' "$c/$f"; return; }; done; }
untouch_src() { local c=$1 f; for f in app/util.py index.js gen.py; do [ -f "$c/$f.bak" ] && mv "$c/$f.bak" "$c/$f"; done; }

printf 'workload\tbuilder\tcold_s\tnoop_s\tincr_s\tsize\tlayers\tcold_run_s\n' >"$out"
for b in "${builders[@]}"; do prepare "$b"; done
for w in "${workloads[@]}"; do
  ctx="$workloads_dir/$w"
  for b in "${builders[@]}"; do
    tag="bench-$w-$b:latest"; c=(); n=(); i=(); r=()
    for _ in $(seq "$reps"); do
      c+=("$(secs build "$b" "$tag" "$ctx" --no-cache)")
      r+=("$(run_secs "$b")")
      n+=("$(secs build "$b" "$tag" "$ctx")")
      touch_src "$ctx"; i+=("$(secs build "$b" "$tag" "$ctx")"); untouch_src "$ctx"
    done
    read -r sz ly <<<"$(size_layers "$b" "$tag" 2>/dev/null || echo '? ?')"
    runs=""; [ -n "${r[*]// /}" ] && runs=$(median "${r[@]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$b" "$(median "${c[@]}")" "$(median "${n[@]}")" "$(median "${i[@]}")" "$sz" "$ly" "$runs" | tee -a "$out"
  done
done
column -t -s $'\t' "$out"
