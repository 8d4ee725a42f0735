#!/usr/bin/env bash
# The ingest figures of docs/benchmarks.md ## [ingest]: events per second one process applies
# to DynamoDB Local — a day's mix of events over INGEST_BENCH_USERS (default 2,000) users
# loaded as `data load` writes them, in batches of 100 each applied APPLY_CONCURRENCY (16,
# crates/api/src/ingest.rs) at a time, as one POST /v1/events or one SQS batch is — and the
# read and write units each event type costs (DynamoDB's ReturnConsumedCapacity), with the
# profile item sizes that drive them. Bounded: ~1 minute with the defaults.
#
# Needs DynamoDB Local: SENDTIME_TEST_DYNAMODB_ENDPOINT (scripts/dynamodb-local.sh start).
#
# Usage: scripts/bench-ingest.sh                  # debug build (what the tests use)
#        PROFILE=release scripts/bench-ingest.sh
#        INGEST_BENCH_EVENTS=20000 INGEST_BENCH_USERS=5000 scripts/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SENDTIME_TEST_DYNAMODB_ENDPOINT:?set it to DynamoDB Local (eval \$(scripts/dynamodb-local.sh start))}"
profile=()
if [[ "${PROFILE:-dev}" == "release" ]]; then profile=(--release); fi
export INGEST_BENCH_USERS="${INGEST_BENCH_USERS:-2000}"
export INGEST_BENCH_EVENTS="${INGEST_BENCH_EVENTS:-6000}"
export INGEST_BENCH_PER_TYPE="${INGEST_BENCH_PER_TYPE:-200}"
timeout 900 nice cargo test "${profile[@]}" -p sendtime-tests --test ingest_store -- \
  --ignored --exact bench::bench_ingest_events_per_second_and_units_per_event_type --nocapture 2>&1 \
  | grep -E "bench-ingest:|test result|panicked|error"
