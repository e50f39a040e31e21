#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command and what CI runs.
# Tests that need the reference data in ../shared (SigmaHQ rules, datasets) run
# when it is present and say so when they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets --locked "$@"
cargo test --doc --locked
