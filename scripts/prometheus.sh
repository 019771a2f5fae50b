#!/usr/bin/env bash
# Real Prometheus tools for tests/prometheus.rs: Debian's `promtool` (the client that queries
# Weir's Prometheus-compatible API) and `prometheus` (a server that scrapes Weir's /metrics).
# Installs the Debian package when either is missing, then exports their paths as
# WEIR_TEST_PROMTOOL and WEIR_TEST_PROMETHEUS. Source it from bash (scripts/test.sh does).

weir_find_prom() {
    command -v "$1" 2>/dev/null || { [ -x "/usr/bin/$1" ] && echo "/usr/bin/$1"; } || true
}

if [ -z "$(weir_find_prom promtool)" ] || [ -z "$(weir_find_prom prometheus)" ]; then
    echo "prometheus.sh: installing the Debian package 'prometheus' (promtool + server)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || echo "prometheus.sh: apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus \
        || echo "prometheus.sh: apt-get install prometheus failed"
    # The package starts a system service on some hosts; the tests run their own server.
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop prometheus 2>/dev/null || true; fi
fi

WEIR_TEST_PROMTOOL="$(weir_find_prom promtool)"
WEIR_TEST_PROMETHEUS="$(weir_find_prom prometheus)"
if [ -n "$WEIR_TEST_PROMTOOL" ] && [ -n "$WEIR_TEST_PROMETHEUS" ]; then
    export WEIR_TEST_PROMTOOL WEIR_TEST_PROMETHEUS
    echo "prometheus.sh: promtool at $WEIR_TEST_PROMTOOL, prometheus at $WEIR_TEST_PROMETHEUS"
else
    echo "prometheus.sh: promtool/prometheus unavailable; tests/prometheus.rs will fail saying so"
fi
unset -f weir_find_prom
