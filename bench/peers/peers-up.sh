#!/usr/bin/env bash
# Bring up, idempotently, the peers that the benchmarks and differential tests compare kiln against:
#   - Debian's Docker engine (BuildKit embedded) at unix:///tmp/dockerd.sock
#   - Debian's docker-registry at 127.0.0.1:5000 holding the stand-in base images
#   - buildah, skopeo, umoci, crun, runc
# Base rootfs tarballs come from scripts/make-base.sh, cached in $KILN_TEST_BASES
# (default /var/cache/kiln-test-bases, the tests' cache).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bases=${KILN_TEST_BASES:-/var/cache/kiln-test-bases}
need=()
for b in dockerd:docker.io docker-registry:docker-registry buildah:buildah skopeo:skopeo umoci:umoci crun:crun runc:runc mmdebstrap:mmdebstrap; do
  command -v "${b%%:*}" >/dev/null || need+=("${b##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export DOCKER_HOST=unix:///tmp/dockerd.sock
if ! docker version >/dev/null 2>&1; then
  # No bridge, no iptables rules: the host's network is left alone (no docker0); builds need no network.
  (setsid dockerd --host "$DOCKER_HOST" --data-root /tmp/docker-data --exec-root /tmp/docker-exec \
     --pidfile /tmp/dockerd.pid --bridge none --iptables=false --ip6tables=false >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
fi
if ! curl -sf http://127.0.0.1:5000/v2/ >/dev/null; then
  mkdir -p /tmp/registry-data
  cat >/tmp/registry.yml <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /tmp/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YML
  (setsid docker-registry serve /tmp/registry.yml >/tmp/registry.log 2>&1 &)
  for _ in $(seq 30); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 1; done
fi
"$repo/scripts/make-base.sh" "$bases" >/dev/null
for n in debian-slim python-slim python-full node-slim node-full; do
  if ! curl -sf -o /dev/null "http://127.0.0.1:5000/v2/$n/manifests/bookworm" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json'; then
    docker import "$bases/$n.tar" "localhost:5000/$n:bookworm" >/dev/null
    docker push -q "localhost:5000/$n:bookworm" >/dev/null
  fi
done
echo "peers up: dockerd $(docker version -f '{{.Server.Version}}'), registry 127.0.0.1:5000, buildah $(buildah --version | awk '{print $3}')"
