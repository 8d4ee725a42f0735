#!/usr/bin/env bash
# What gzip saves and costs (docs/benchmarks.md, [channels]): the body size of each block's
# answer with and without `Accept-Encoding: gzip` (as Braze sends it) over 200 users — JSON
# and the email HTML fragment — and the rate of repeat calls for one user with and without
# it (oha, 5 s each, 16 connections; the server on core 0, oha on core 1). Release build,
# generated data pinned to a date; keep the machine otherwise idle.
#   scripts/bench-compression.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
AS_OF="2026-11-20T12:00:00Z"
OHA="$ROOT/.tools/oha/bin/oha"
[[ -x "$OHA" ]] || cargo install oha --locked --version '^1.14' --root .tools/oha
cargo build --quiet --release --bin sendtime
WORK="$(mktemp -d)"
trap 'kill $SERVE 2>/dev/null || true; rm -rf "$WORK"' EXIT
target/release/sendtime data generate --users 2000 --items 2000 --seed 42 --as-of "$AS_OF" --out "$WORK/data.jsonl" 2>/dev/null
PIN0="" PIN1=""
if [[ "$(nproc)" -ge 2 ]]; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi
SENDTIME_LOG=warn $PIN0 target/release/sendtime serve --addr 127.0.0.1:0 --data "$WORK/data.jsonl" --now "$AS_OF" >"$WORK/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/serve.log" && break; sleep 0.1; done
BASE="$(sed -n 's/^sendtime listening on \([^ ]*\).*/\1/p' "$WORK/serve.log")"

echo "| block | format | mean bytes | gzipped | saved |"
echo "|---|---|---:|---:|---:|"
for block in recommendations cart dormancy onboarding; do
  for format in json html; do
    plain=0 zipped=0 n=0
    for i in $(seq 1 200); do
      url="$BASE/v1/users/$(printf 'u%06d' "$i")/$block?format=$format"
      p=$(curl -s -o /dev/null -w '%{size_download}' "$url")
      [[ "$p" -gt 0 ]] || continue  # not eligible (html): nothing to send
      z=$(curl -s -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' "$url")
      plain=$((plain + p)) zipped=$((zipped + z)) n=$((n + 1))
    done
    [[ $n -gt 0 ]] || continue
    awk -v b="$block" -v f="$format" -v p="$plain" -v z="$zipped" -v n="$n" \
      'BEGIN { printf "| %s | %s | %d | %d | %.0f %% |\n", b, f, p/n, z/n, 100*(1-z/p) }'
  done
done

echo
echo "| repeat calls, one user, 16 connections, 5 s | requests/s |"
echo "|---|---:|"
URL="$BASE/v1/users/u000001/recommendations"
for enc in identity gzip; do
  rate=$($PIN1 "$OHA" -z 5s -c 16 --no-tui --output-format json -H "Accept-Encoding: $enc" "$URL" \
    | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["summary"]["requestsPerSec"]))')
  echo "| Accept-Encoding: $enc | $rate |"
done
