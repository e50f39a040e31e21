#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command and what CI runs.
#
# - Tests that need the reference data in ../shared (SigmaHQ rules, datasets)
#   run when it is present and say so when they skip.
# - The Kafka tests need a real broker: this script installs tansu if absent
#   (first time: 10-15 minutes), starts it on loopback, and stops it at exit.
#   If it cannot start, the script fails.
# - Then every fuzz target runs for FUZZ_SECONDS (20) after replaying the
#   committed crash inputs (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

workdir="$(mktemp -d)"
pidfile="$workdir/tansu.pid"
cleanup() {
    if [[ -f "$pidfile" ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

TEST_TANSU_BIN="$(scripts/kafka-broker.sh install)"
TEST_KAFKA_BROKERS="$(scripts/kafka-broker.sh start "$pidfile")"
export TEST_TANSU_BIN TEST_KAFKA_BROKERS
echo "test broker: tansu at $TEST_KAFKA_BROKERS" >&2

# The fuzz crate has its own lock file (its own workspace): a dependency
# added to the engine must be added there too. Checked first, not after
# the whole suite.
if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
    cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null
fi

cargo test --all-targets --locked "$@"
cargo test --doc --locked

# Coverage-guided fuzzing, bounded: the committed regression inputs, then
# every target for FUZZ_SECONDS (0 skips it).
if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
    scripts/fuzz.sh ci
fi
