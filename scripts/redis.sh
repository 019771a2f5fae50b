# A real Redis server for the alert sink's tests; sourced by scripts/test.sh (bash).
#
# Installs redis-server with apt-get when it is missing, starts it on a free loopback port
# with its own dir and no persistence, and exports WEIR_TEST_REDIS=redis://127.0.0.1:PORT.
# weir_redis_cleanup stops it and removes its dir (call it from your EXIT trap).

weir_redis_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing Redis"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
WEIR_REDIS_DIR="$(mktemp -d)"
WEIR_REDIS_PORT="$(weir_redis_free_port)"
redis-server --port "$WEIR_REDIS_PORT" --bind 127.0.0.1 --dir "$WEIR_REDIS_DIR" \
    --save '' --appendonly no --daemonize yes --databases 16 \
    --pidfile "$WEIR_REDIS_DIR/redis.pid" --logfile "$WEIR_REDIS_DIR/redis.log"
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$WEIR_REDIS_PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$WEIR_REDIS_PORT") 2>/dev/null \
    || { echo "Redis did not come up; see $WEIR_REDIS_DIR/redis.log" >&2; return 1; }
export WEIR_TEST_REDIS="redis://127.0.0.1:$WEIR_REDIS_PORT"
echo "==> Redis on $WEIR_TEST_REDIS"

weir_redis_cleanup() {
    if [ -f "$WEIR_REDIS_DIR/redis.pid" ]; then
        kill "$(cat "$WEIR_REDIS_DIR/redis.pid")" 2>/dev/null || true
        sleep 0.2
    fi
    rm -rf "$WEIR_REDIS_DIR"
}
