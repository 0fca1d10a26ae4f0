#!/usr/bin/env bash
# The main job, end to end on a machine with no public registry: make Python base images from
# Debian packages, import them into kiln's store, build the multi-stage wheels pattern of
# bench/workloads/py-wheels (C extension compiled in the full image, installed into
# the slim one) and run the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bases=${KILN_TEST_BASES:-/var/cache/kiln-test-bases}
kiln() { node dist/bin/kiln.js "$@"; }

./scripts/make-base.sh "$bases" python-full python-slim
for b in python-full python-slim; do
  kiln images -q "localhost:5000/$b:bookworm" 2>/dev/null | grep -q . ||
    kiln import "$bases/$b.tar" "localhost:5000/$b:bookworm"
done
kiln build -t py-wheels:demo bench/workloads/py-wheels
kiln images
kiln run --rm py-wheels:demo
