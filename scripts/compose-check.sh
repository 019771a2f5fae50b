#!/usr/bin/env bash
# Validates docker/compose.yaml with `docker compose config` (no Docker engine needed for that).
# Where the compose plugin is missing, it is built once from the Go module proxy
# (github.com/docker/compose/v2, the plugin's own source) into target/tools.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE_VERSION=v2.40.3

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        "$TOOLS/docker-compose" "$@"
    fi
}

TOOLS="$(pwd)/target/tools"
if ! docker compose version >/dev/null 2>&1 && [ ! -x "$TOOLS/docker-compose" ]; then
    command -v go >/dev/null || { echo "neither docker compose nor go is installed: cannot validate docker/compose.yaml" >&2; exit 1; }
    echo "==> building docker compose $COMPOSE_VERSION from source (once)"
    mkdir -p "$TOOLS"
    WORK="$(mktemp -d)"
    DIR="$(cd "$WORK" && go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    cp -r "$DIR" "$WORK/src" && chmod -R u+w "$WORK/src"
    (cd "$WORK/src" && go build -trimpath -o "$TOOLS/docker-compose" ./cmd)
    rm -rf "$WORK"
fi

echo "==> docker compose config"
out="$(compose -f docker/compose.yaml config)"
# The resolved file names every service, and every bind-mounted provisioning file exists.
for svc in weir kafka rabbitmq scylla prometheus grafana; do
    grep -q "^  $svc:" <<<"$out" || { echo "service $svc missing from the resolved compose file" >&2; exit 1; }
done
for f in docker/Dockerfile docker/prometheus/prometheus.yml docker/grafana/provisioning docker/grafana/dashboards; do
    [ -e "$f" ] || { echo "compose.yaml refers to $f, which does not exist" >&2; exit 1; }
done
echo "docker/compose.yaml is valid"
