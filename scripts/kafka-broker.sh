#!/usr/bin/env bash
# The Kafka-protocol test broker: tansu (crates.io), in memory, on loopback.
#
#   scripts/kafka-broker.sh install        installs tansu 0.6.0 if absent; prints its path
#   scripts/kafka-broker.sh start PIDFILE  starts it on a free port; prints host:port
#
# The first install builds tansu from source (10-15 minutes on 2 cores); it is
# reused afterwards. Exits non-zero when the broker cannot be installed or started:
# the Kafka tests must fail then, not skip.
set -euo pipefail

TANSU_VERSION=0.6.0

tansu_path() {
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        echo "$bin"
        return 0
    fi
    if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
        command -v tansu
        return 0
    fi
    return 1
}

install() {
    if ! tansu_path >/dev/null; then
        echo "installing tansu $TANSU_VERSION (first time only: 10-15 minutes)..." >&2
        cargo install tansu --version "$TANSU_VERSION" --features dynostore >&2
    fi
    tansu_path
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local pidfile="$1" bin port
    bin="$(install)"
    for port in $(seq 19092 19192); do
        port_open "$port" || break
    done
    local url="tcp://127.0.0.1:$port"
    "$bin" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine memory://tansu/ >"${pidfile}.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 200); do
        if port_open "$port"; then
            echo "127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "tansu exited:" >&2
            cat "${pidfile}.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "tansu did not listen on $port within 20s" >&2
    return 1
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?pidfile}" ;;
    *) echo "usage: $0 install | start PIDFILE" >&2; exit 2 ;;
esac
