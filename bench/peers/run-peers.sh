#!/usr/bin/env bash
# Time image builders side by side on the workloads in bench/workloads (the seeds' multi-stage patterns
# plus two stress cases). For each workload and builder:
#   cold   build with the builder's --no-cache (base images already present locally)
#   noop   the same build again, nothing changed (fully cached)
#   incr   after appending one line to one application source file
# and the final image's size and layer count. Median of REPS runs (default 3).
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
build() { # builder tag ctx [--no-cache]
  local b=$1 t=$2 c=$3; shift 3
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
touch_src() { local c=$1 f; for f in app/util.py index.js gen.py; do [ -f "$c/$f" ] && { cp "$c/$f" "$c/$f.bak"; echo "# touched $RANDOM" >> "$c/$f"; [ "$f" = index.js ] && sed -i '$ s|^#|//|' "$c/$f"; return; }; done; }
untouch_src() { local c=$1 f; for f in app/util.py index.js gen.py; do [ -f "$c/$f.bak" ] && mv "$c/$f.bak" "$c/$f"; done; }

printf 'workload\tbuilder\tcold_s\tnoop_s\tincr_s\tsize\tlayers\n' >"$out"
for b in "${builders[@]}"; do prepare "$b"; done
for w in "${workloads[@]}"; do
  ctx="$workloads_dir/$w"
  for b in "${builders[@]}"; do
    tag="bench-$w-$b:latest"; c=(); n=(); i=()
    for _ in $(seq "$reps"); do
      c+=("$(secs build "$b" "$tag" "$ctx" --no-cache)")
      n+=("$(secs build "$b" "$tag" "$ctx")")
      touch_src "$ctx"; i+=("$(secs build "$b" "$tag" "$ctx")"); untouch_src "$ctx"
    done
    read -r sz ly <<<"$(size_layers "$b" "$tag" 2>/dev/null || echo '? ?')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$b" "$(median "${c[@]}")" "$(median "${n[@]}")" "$(median "${i[@]}")" "$sz" "$ly" | tee -a "$out"
  done
done
column -t -s $'\t' "$out"
