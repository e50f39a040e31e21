#!/usr/bin/env bash
# Renders `tocsin report --format html` as a PNG with headless Chromium, to
# look at the review as a reader will (Debian: apt-get install chromium).
#
#   scripts/report-picture.sh STATE.jsonl FROM TO [CONFIG] [OUT.png]
#
# The page is taken at 1100 px wide and as tall as needed for the tables and
# charts; check that no label is clipped and percentages read on 0-100%.
set -euo pipefail
cd "$(dirname "$0")/.."
state="$1" from="$2" to="$3" config="${4:-}" out="${5:-target/report.png}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
[[ -n "$browser" ]] || { echo "no headless Chromium found (apt-get install chromium)" >&2; exit 2; }
html="$(mktemp --suffix .html)"
trap 'rm -f "$html"' EXIT
cargo run --quiet --release -- report ${config:+--config "$config"} \
    --state "$state" --from "$from" --to "$to" --format html -o "$html"
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1100,7000 --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
