#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain.
#
#   scripts/fuzz.sh build                 builds every target (fuzz/fuzz_targets/)
#   scripts/fuzz.sh run SECONDS [TARGET]  fuzzes each target (or one) for SECONDS
#   scripts/fuzz.sh replay                runs the committed regression inputs once
#   scripts/fuzz.sh ci                    replay, then every target for $FUZZ_SECONDS (default 20)
#
# Hours-long runs: `scripts/fuzz.sh run 3600` (per target), or one target
# with several jobs: `scripts/fuzz.sh run 14400 detect -- -jobs=2 -workers=2`.
#
# Corpora start from the samples, the bundled rules and configs and, when
# ../shared is present, the real logs and the SigmaHQ corpus; they grow in
# target/fuzz/corpus/<target>. A crash is written to
# target/fuzz/artifacts/<target>/ and the run fails; copy the input to
# fuzz/regressions/<target>/ and add a test for the behaviour it found.
#
# No cargo-fuzz and no nightly: SanitizerCoverage comes from stable rustc
# flags and libFuzzer from the libfuzzer-sys crate (built with the C++
# compiler). --target keeps the flags off build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(parse_auto parse_formats event_time rules condition config triage detect evtx)
HOST="$(rustc -vV | sed -n 's/^host: //p')"
OUT="target/fuzz"
BIN="$OUT/build/$HOST/release"

build() {
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    CARGO_TARGET_DIR="$OUT/build" \
        cargo build --manifest-path fuzz/Cargo.toml --locked --release --target "$HOST" --bins >&2
}

# Seeds: a few hundred inputs per target from what the project and ../shared hold.
# Best effort, in a subshell: a grep that finds nothing or a `head` that
# closes its pipe early must not stop the script (set -e, pipefail).
seed() (
    set +e +o pipefail
    local target="$1" dir="$OUT/corpus/$1"
    mkdir -p "$dir"
    [[ -n "$(ls -A "$dir")" ]] && return 0
    local shared=../shared n=0
    put() { printf '%s' "$1" >"$dir/seed-$n"; n=$((n + 1)); }
    lines() { # FILE COUNT: the first COUNT lines of a text or gzip file
        if [[ "$1" == *.gz ]]; then zcat "$1" 2>/dev/null | head -n "$2"; else head -n "$2" "$1"; fi
    }
    case "$target" in
        parse_auto|parse_formats|detect)
            local files=(samples/auth.log samples/access.log samples/syslog-rfc5424.log samples/windows.jsonl)
            if [[ -d "$shared/datasets" ]]; then
                files+=("$shared"/datasets/raw/*.log "$shared"/datasets/raw/*.log.gz
                        "$shared/datasets/mordor_windows.jsonl.gz" "$shared/datasets/zeek_apt29.jsonl.gz"
                        "$shared/sigma/regression_events.jsonl")
            fi
            local f line
            for f in "${files[@]}"; do
                [[ -f "$f" ]] || continue
                while IFS= read -r line; do
                    if [[ "$target" == parse_formats ]]; then
                        # The first byte selects the format; bash strings
                        # cannot hold a NUL, so it is written by printf itself.
                        { printf "\\x0$((n % 5))"; printf '00000000%s' "$line"; } >"$dir/seed-$n"
                        n=$((n + 1))
                    else
                        put "$line"
                    fi
                done < <(lines "$f" 25)
            done ;;
        event_time)
            for v in '"2026-11-20T08:15:00.5+02:00"' 1700000000 1700000000123 '"2025-12-06 21:11:02.632"' '"0000-01-01T00:00:00Z"'; do
                put "$(printf '\n%s' "$v")"
            done
            put "$(printf '%%d/%%m/%%Y %%H:%%M\n"23/11/2026 10:30"')"
            put "$(printf 'unix_ms\n1000')"
            put "$(printf 'rfc3339\n"2026-01-01T00:00:00Z"')" ;;
        rules)
            local r
            for r in $(find rules -name '*.yml' | sort | head -60); do put "$(cat "$r")"; done
            if [[ -d "$shared/sigma" ]]; then
                for r in $(find "$shared/sigma/rules" -name '*.yml' | sort | awk 'NR % 25 == 0' | head -150); do put "$(cat "$r")"; done
                for r in $(find "$shared/sigma-spec/tests" -name '*.yml' 2>/dev/null | sort | head -60); do put "$(cat "$r")"; done
            fi ;;
        condition)
            local r
            for r in $(find rules -name '*.yml' | sort); do
                grep -h 'condition:' "$r" | sed 's/^ *condition: *//' | head -3 | while IFS= read -r c; do printf '%s' "$c" >"$dir/seed-$RANDOM$RANDOM"; done
            done
            put "1 of selection_* and not all of filter*"
            put "(a or b) and not (c and d)" ;;
        config)
            local c
            for c in deploy/*.toml; do put "$(cat "$c")"; done
            put '[incident]
enabled = true
check_interval = "1s"
[[incident.escalation]]
name = "l1"
at = "-2h"
destination = "alerts"
[[incident.silence]]
source = "auth"
max_silence = "15m"' ;;
        evtx)
            # Real logs without their magic (the target puts it back), cut
            # to the input size limit: the header and most of a chunk.
            local f
            for f in $(find "$shared/sigma/regression_data" -name '*.evtx' 2>/dev/null | head -n 40); do
                tail -c +9 "$f" | head -c 65000 >"$dir/seed-$n"; n=$((n + 1))
            done ;;
        triage)
            put '{"alert_id": "6a1b3c4d-0000-4000-8000-000000000001", "status": "triaged", "by": "ana", "at": "2026-01-01T00:00:00Z", "note": "ok"}'
            put '{"alert_id": "x", "status": "false_positive", "by": "b", "at": "2026-01-01T00:00:00+02:00"}' ;;
    esac
    true
)

run_target() {
    local target="$1" seconds="$2"; shift 2
    seed "$target"
    mkdir -p "$OUT/artifacts/$target"
    local log="$OUT/$target.log"
    echo "fuzz: $target for ${seconds}s" >&2
    local status=0
    "$BIN/$target" "$OUT/corpus/$target" -max_total_time="$seconds" -max_len=65536 \
        -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$target/" "$@" >"$log" 2>&1 || status=$?
    local runs crashes
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    crashes="$(find "$OUT/artifacts/$target" -type f | wc -l)"
    echo "fuzz: $target: ${runs:-?} executions, $crashes crash or timeout inputs, exit $status" >&2
    if [[ $status -ne 0 ]]; then
        tail -n 60 "$log" >&2
        return 1
    fi
}

replay() {
    local target failed=0
    for target in "${TARGETS[@]}"; do
        local dir="fuzz/regressions/$target"
        [[ -d "$dir" && -n "$(ls -A "$dir")" ]] || continue
        "$BIN/$target" -runs=0 "$dir" >"$OUT/$target.replay.log" 2>&1 || {
            echo "fuzz: a regression input of $target fails again:" >&2
            tail -n 40 "$OUT/$target.replay.log" >&2
            failed=1
        }
    done
    return $failed
}

case "${1:-}" in
    build) build ;;
    run)
        seconds="${2:?seconds}"; shift 2
        only="${1:-}"; [[ $# -gt 0 ]] && shift
        [[ "${1:-}" == "--" ]] && shift
        build
        for t in "${TARGETS[@]}"; do
            [[ -z "$only" || "$only" == "$t" ]] || continue
            run_target "$t" "$seconds" "$@"
        done ;;
    replay) build; replay ;;
    ci)
        build
        replay
        for t in "${TARGETS[@]}"; do run_target "$t" "${FUZZ_SECONDS:-20}"; done ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
