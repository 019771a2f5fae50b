# Broker setup for the integration tests; sourced by scripts/test.sh (not run on its own).
#
# - RabbitMQ on 127.0.0.1:5672 (guest/guest): used if reachable, else started with
#   `rabbitmq-server -detached` and waited for.
# - tansu, a Kafka-compatible broker: found as $TANSU, `tansu` on PATH, or a prebuilt one beside
#   the checkout (../shared/tools/tansu), else installed with cargo; started on a free loopback port with durable sqlite storage in a temp dir.
#
# Exports for the tests:
#   WEIR_TEST_AMQP       amqp URL of the RabbitMQ broker
#   WEIR_TEST_KAFKA      host:port of the running tansu broker
#   WEIR_TEST_TANSU      the tansu binary (tests create topics and start their own brokers)
#   WEIR_TEST_TANSU_DIR  the running broker's data dir
#   WEIR_TEST_PYTHON_KAFKA  a Python with confluent-kafka (a virtualenv under target/), the
#                        cluster tests' independent producer
# A trap stops the broker and removes its dir when the calling script exits.

weir_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

weir_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

weir_wait_port() { # host port seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        weir_port_open "$1" "$2" && return 0
        sleep 0.1
    done
    return 1
}

# --- RabbitMQ -----------------------------------------------------------------------------
if ! weir_port_open 127.0.0.1 5672; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "==> installing RabbitMQ"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    echo "==> starting RabbitMQ"
    rabbitmq-server -detached
    weir_wait_port 127.0.0.1 5672 90 || { echo "RabbitMQ did not come up" >&2; exit 1; }
    rabbitmqctl await_startup >/dev/null
fi
export WEIR_TEST_AMQP="amqp://guest:guest@127.0.0.1:5672/%2f"

# --- tansu (Kafka) ------------------------------------------------------------------------
if [ -z "${TANSU:-}" ]; then
    TANSU="$(command -v tansu || true)"
fi
# A prebuilt broker kept beside the checkout (../shared/tools/tansu) saves the long build.
if [ -z "$TANSU" ] && [ -x "$(pwd)/../shared/tools/tansu" ]; then
    TANSU="$(cd "$(pwd)/../shared/tools" && pwd)/tansu"
fi
if [ -z "$TANSU" ]; then
    echo "==> installing tansu (once; this takes a while)"
    cargo install tansu --locked --features dynostore,libsql
    TANSU="$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")"
fi
WEIR_TANSU_DIR="$(mktemp -d)"
WEIR_TANSU_PORT="$(weir_free_port)"
(
    cd "$WEIR_TANSU_DIR" &&
        exec "$TANSU" broker \
            --listener-url "tcp://127.0.0.1:$WEIR_TANSU_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$WEIR_TANSU_PORT" \
            --storage-engine sqlite://tansu.db >tansu.log 2>&1
) &
WEIR_TANSU_PID=$!

weir_brokers_cleanup() {
    kill "$WEIR_TANSU_PID" 2>/dev/null || true
    wait "$WEIR_TANSU_PID" 2>/dev/null || true
    rm -rf "$WEIR_TANSU_DIR"
}
trap weir_brokers_cleanup EXIT

weir_wait_port 127.0.0.1 "$WEIR_TANSU_PORT" 30 || {
    echo "tansu did not come up:" >&2
    cat "$WEIR_TANSU_DIR/tansu.log" >&2
    exit 1
}
export WEIR_TEST_KAFKA="127.0.0.1:$WEIR_TANSU_PORT"
export WEIR_TEST_TANSU="$TANSU"
export WEIR_TEST_TANSU_DIR="$WEIR_TANSU_DIR"
echo "==> brokers: RabbitMQ 127.0.0.1:5672, tansu $WEIR_TEST_KAFKA"

# --- confluent-kafka, an independent producer for the cluster tests --------------------------
WEIR_PY_KAFKA=target/py-kafka
if [ ! -x "$WEIR_PY_KAFKA/bin/python" ] || ! "$WEIR_PY_KAFKA/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    echo "==> confluent-kafka for the cluster tests (once)"
    python3 -m venv "$WEIR_PY_KAFKA"
    "$WEIR_PY_KAFKA/bin/pip" install -q 'confluent-kafka==2.16.2'
fi
export WEIR_TEST_PYTHON_KAFKA="$(pwd)/$WEIR_PY_KAFKA/bin/python"
