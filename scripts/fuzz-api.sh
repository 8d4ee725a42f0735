#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API (Schemathesis, PyPI): starts `sendtime serve` on the
# embedded demo data with an API key and a write key, points Schemathesis at its /openapi.json
# with the API key (and the write key for POST /v1/events: scripts/schemathesis.toml), and
# runs every check (no 5xx, statuses, content types, headers and bodies as the
# description says, bad input rejected, valid input accepted, auth not ignored) for a time
# budget: FUZZ_SECONDS (default 60). A failure prints a curl line that reproduces it.
# Needs `cargo build --bins` first and .tools/st-venv (scripts/install-tools.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_BUDGET="${FUZZ_SECONDS:-60}"
ST="$ROOT/.tools/st-venv/bin/schemathesis"
BIN="${SENDTIME_BIN:-$ROOT/target/debug/sendtime}"
[[ -x "$ST" ]] || { echo "fuzz-api: $ST missing (run scripts/install-tools.sh)" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "fuzz-api: $BIN missing (run cargo build --bins)" >&2; exit 1; }

KEY="fuzz-$(date +%s%N)"
HASH="$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)"
# The write path's key, read by scripts/schemathesis.toml for POST /v1/events only.
export SENDTIME_FUZZ_WRITE_KEY="fuzz-write-$(date +%s%N)"
WRITE_HASH="$(printf %s "$SENDTIME_FUZZ_WRITE_KEY" | sha256sum | cut -d' ' -f1)"
WORK="$(mktemp -d)"
trap 'kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Made before serve starts: the wait below reads it at once (the background job's redirect
# may not have run yet).
: > "$WORK/serve.out"
SENDTIME_LOG=warn "$BIN" serve --addr 127.0.0.1:0 --api-key-sha256 "$HASH" --write-key-sha256 "$WRITE_HASH" \
  > "$WORK/serve.out" 2> "$WORK/serve.err" &
SERVE_PID=$!
URL=""
for _ in $(seq 1 600); do
  URL="$(sed -n 's/^sendtime listening on \(http[^ ]*\).*/\1/p' "$WORK/serve.out" | head -1)"
  [[ -n "$URL" ]] && break
  kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "fuzz-api: serve did not start" >&2; exit 1; }
echo "fuzz-api: Schemathesis against $URL/openapi.json for ${SECONDS_BUDGET}s" >&2
cd "$WORK"
"$ST" --config-file "$ROOT/scripts/schemathesis.toml" run "$URL/openapi.json" \
  --header "x-sendtime-key: $KEY" \
  --checks all \
  --max-time "$SECONDS_BUDGET" \
  --workers 2 \
  --seed 20261123 \
  --suppress-health-check too_slow
echo "fuzz-api: ok" >&2
