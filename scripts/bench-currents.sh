#!/usr/bin/env bash
# Braze Currents import at the size of a real export (issue 22, docs/benchmarks.md
# [currents]): generates engagement events for USERS users (default 250,000: about 5.5
# million events), writes them as Currents Avro files (6-hour queue blocks, null/deflate/
# snappy in turn, 2 % late, 1 % redelivered, machine opens and bot clicks injected:
# crates/braze/examples/currents_files.rs), then times `sendtime events import --from
# currents` over them, and a second run over the same files (nothing new: the incremental
# path), with the peak memory of each (GNU time). Release build. Files go to a temporary
# directory (WORK= to keep them); SORT_MB= sets --sort-memory-mb (default 256).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
USERS="${USERS:-250000}"
SORT_MB="${SORT_MB:-256}"
WORK="${WORK:-$(mktemp -d)}"
cd "$ROOT"
cargo build --release --locked -p sendtime-cli -p sendtime-braze --bins --examples >&2
BIN="$ROOT/target/release/sendtime"
FILES="$ROOT/target/release/examples/currents_files"
mkdir -p "$WORK"
measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/stdout.txt" 2> "$WORK/stderr.txt" || {
    cat "$WORK/stdout.txt" "$WORK/stderr.txt" >&2; exit 1; }
  read -r secs kib < "$WORK/time.txt"
  printf '%-26s %8.1f s  %8.0f MiB peak\n' "$label" "$secs" "$((kib / 1024))"
  sed 's/^/    /' "$WORK/stdout.txt" >&2
  echo "$secs" > "$WORK/last-secs.txt"
}
echo "users: $USERS  sort memory: $SORT_MB MiB  (work: $WORK)"
"$BIN" data generate --users "$USERS" --seed 42 --as-of 2026-12-01T00:00:00Z --out /dev/null \
  --events "$WORK/events.jsonl" 2>&1 | tail -1
rm -rf "$WORK/currents" "$WORK/imported.jsonl"*
measure "write Currents files" "$FILES" "$WORK/events.jsonl" "$WORK/currents"
du -sh "$WORK/currents" | awk '{printf "Currents files: %s, ", $1}'
find "$WORK/currents" -name '*.avro' | wc -l | awk '{printf "%d files\n", $1}'
measure "events import (first run)" "$BIN" events import --from currents "$WORK/currents" \
  --out "$WORK/imported.jsonl" --sort-memory-mb "$SORT_MB"
records=$(grep -o 'read [0-9]* file(s), [0-9]* record' "$WORK/stdout.txt" | awk '{print $4}')
awk -v r="$records" -v s="$(cat "$WORK/last-secs.txt")" \
  'BEGIN { printf "  %d records read: %.0f records/s\n", r, r / s }'
measure "events import (re-run)" "$BIN" events import --from currents "$WORK/currents" \
  --out "$WORK/imported.jsonl" --sort-memory-mb "$SORT_MB"
[[ -n "${KEEP:-}" ]] || rm -rf "$WORK/events.jsonl" "$WORK/currents" "$WORK/imported.jsonl"*
