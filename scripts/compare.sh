#!/usr/bin/env bash
# Whole-process timings side by side, as a user times them: tocsin (one and
# two workers), rsigma 0.23 in its best mode per data shape, and the JSON
# parse floors (benches/parse_floor.rs), on several data shapes built from
# ../shared. Prints a Markdown table for BENCHMARKS.md.
#
#   scripts/compare.sh [RUNS]        # RUNS per cell, median wall time (3)
#
# Needs ../shared and rsigma on PATH:
#   cargo install rsigma --version 0.23.0 --locked --features daachorse-index
# TOCSIN_COMPARE_DIR keeps the generated data between runs (default: a
# temporary folder, removed at exit). TOCSIN_COMPARE_SHAPES picks shapes
# (default: "mordor regression evtx zeek syslog web").
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
shared="$(cd .. && pwd)/shared"
[[ -d "$shared/sigma" ]] || { echo "compare.sh: needs ../shared" >&2; exit 2; }
command -v rsigma >/dev/null || { echo "compare.sh: needs rsigma on PATH (see the header)" >&2; exit 2; }

data="${TOCSIN_COMPARE_DIR:-}"
if [[ -z "$data" ]]; then
    data="$(mktemp -d)"
    trap 'rm -rf "$data"' EXIT
fi
mkdir -p "$data"

# The same 3,754 rule files for both: rsigma takes one folder.
mkdir -p "$data/corpus"
for d in rules rules-emerging-threats rules-threat-hunting; do
    ln -sfn "$shared/sigma/$d" "$data/corpus/$d"
done
rules=(--rules "$shared/sigma/rules" --rules "$shared/sigma/rules-emerging-threats" --rules "$shared/sigma/rules-threat-hunting")

repeat() { # repeat N FILE... : the files' lines, N times over
    local n="$1"; shift
    for _ in $(seq "$n"); do cat "$@"; done
}
[[ -s "$data/mordor.jsonl" ]] || zcat "$shared/datasets/mordor_windows.jsonl.gz" > "$data/mordor.jsonl"
[[ -s "$data/regression.jsonl" ]] || repeat 100 "$shared/sigma/regression_events.flat.jsonl" > "$data/regression.jsonl"
# The same events as evtx_dump writes them (nested `Event.System`/`Event.EventData`).
[[ -s "$data/evtx.jsonl" ]] || repeat 100 "$shared/sigma/regression_events.jsonl" > "$data/evtx.jsonl"
[[ -s "$data/zeek.jsonl" ]] || for _ in 1 2 3 4 5; do zcat "$shared/datasets/zeek_apt29.jsonl.gz"; done > "$data/zeek.jsonl"
[[ -s "$data/syslog.log" ]] || repeat 25 "$shared/datasets/raw/linux_syslog.log" "$shared/datasets/raw/openssh.log" > "$data/syslog.log"
[[ -s "$data/web.log" ]] || for _ in 1 2; do zcat "$shared/datasets/raw/apache_access_honeynet.log.gz"; done > "$data/web.log"
printf '{"EventID":1}\n' > "$data/one.jsonl"

cargo build --release --quiet
tocsin="target/release/tocsin"

# measure NAME OUT -- COMMAND...: median wall seconds, max RSS MiB, output lines.
measure() {
    local walls=() rss=0 lines=0
    for _ in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$data/time" "$@" > "$data/out" 2>/dev/null || true
        read -r wall kb < "$data/time"
        walls+=("$wall")
        (( kb > rss )) && rss=$kb
        lines=$(wc -l < "$data/out")
    done
    local median
    median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
    printf '%s s, %d MiB, %d alerts' "$median" $(( rss / 1024 )) "$lines"
}

shape_args() { # the input format and rsigma's best mode for each shape
    case "$1" in
        one|one-uncached|mordor|regression|evtx) echo "json|-p sysmon --logsource-routing --event-logsource product=windows" ;;
        zeek) echo "json|--logsource-routing --event-logsource product=zeek" ;;
        syslog) echo "syslog|--input-format syslog --logsource-routing --event-logsource product=linux" ;;
        web) echo "access-log|--input-format plain" ;;
    esac
}
file_of() { case "$1" in syslog) echo "$data/syslog.log" ;; web) echo "$data/web.log" ;; one-uncached) echo "$data/one.jsonl" ;; *) echo "$data/$1.jsonl" ;; esac; }

echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(rustc --version); rsigma $(rsigma --version 2>/dev/null | head -1 | awk '{print $2}')"
echo "Median of $runs runs; wall time and peak RSS from /usr/bin/time; alerts = output lines."
echo "tocsin runs with its rule cache (engine.rule_cache) filled by the first run; one-uncached has it off."
echo
echo "| data | events | tocsin, 1 worker | tocsin, 2 workers | rsigma 0.23 | rsigma / tocsin (1 worker) |"
echo "|---|---:|---|---|---|---:|"
for shape in one one-uncached ${TOCSIN_COMPARE_SHAPES:-mordor regression evtx zeek syslog web}; do
    IFS='|' read -r format rsigma_mode <<< "$(shape_args "$shape")"
    file="$(file_of "$shape")"
    events=$(wc -l < "$file")
    cache=true
    [[ "$shape" == one-uncached ]] && cache=false
    t1=$(measure env TOCSIN_ENGINE__RULE_CACHE=$cache "$tocsin" scan --workers 1 "${rules[@]}" --input-format "$format" "$file")
    t2=$(measure env TOCSIN_ENGINE__RULE_CACHE=$cache "$tocsin" scan --workers 2 "${rules[@]}" --input-format "$format" "$file")
    # shellcheck disable=SC2086 # the mode is several flags
    r=$(measure rsigma engine eval -r "$data/corpus" $rsigma_mode -e "@$file")
    ratio=$(awk -v r="${r%% s*}" -v t="${t1%% s*}" 'BEGIN { if (t > 0) printf "%.1fx", r / t }')
    echo "| $shape | $events | $t1 | $t2 | $r | $ratio |"
done
echo
echo "JSON parse floors (one thread, lines in memory, median of 5):"
echo
json_files=()
for shape in ${TOCSIN_COMPARE_SHAPES:-mordor regression evtx zeek syslog web}; do
    case "$shape" in mordor|regression|evtx|zeek) json_files+=("$(file_of "$shape")") ;; esac
done
if (( ${#json_files[@]} > 0 )); then
    cargo bench --quiet --bench parse_floor -- "${json_files[@]}" 2>/dev/null | grep '^|'
fi
