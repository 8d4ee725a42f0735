#!/usr/bin/env bash
# Scoring at the size of a real audience (issue 12, docs/benchmarks.md [targeting]): generates
# engagement events for USERS users (default 1,000,000; 16 campaigns over 120 days), then
# times `sendtime audience score` over them — two streaming passes, training on at most
# 400,000 sampled sends, one score record a user — and `audience select`, with the peak
# memory of each (GNU time). Release build. Files go to a temporary directory (WORK= to keep
# them), about 2 GB of events per million users.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
USERS="${USERS:-1000000}"
WORK="${WORK:-$(mktemp -d)}"
cd "$ROOT"
cargo build --release --locked -p sendtime-cli >&2
BIN="$ROOT/target/release/sendtime"
mkdir -p "$WORK"
measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" 2> "$WORK/stderr.txt" || { cat "$WORK/stderr.txt" >&2; exit 1; }
  read -r secs kib < "$WORK/time.txt"
  printf '%-22s %8.1f s  %8.0f MiB peak\n' "$label" "$secs" "$((kib / 1024))"
  grep -v '^  ' "$WORK/stderr.txt" | sed 's/^/    /' >&2
}
echo "users: $USERS  (work: $WORK)"
measure "data generate --events" "$BIN" data generate --users "$USERS" --seed 42 \
  --as-of 2026-12-01T00:00:00Z --out /dev/null --events "$WORK/events.jsonl"
ls -l "$WORK/events.jsonl" | awk '{printf "events file: %.0f MB, ", $5/1e6}'
wc -l < "$WORK/events.jsonl" | awk '{printf "%d events\n", $1}'
measure "audience score" "$BIN" audience score --events "$WORK/events.jsonl" --out "$WORK/scores.jsonl"
measure "audience select" "$BIN" audience select --scores "$WORK/scores.jsonl" --target-opens 0.95 \
  --out "$WORK/audience.csv"
[[ -n "${KEEP:-}" ]] || rm -f "$WORK/events.jsonl"
