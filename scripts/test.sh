#!/usr/bin/env bash
# The one test command (README, CI): installs what it needs, starts DynamoDB Local, then
# checks formatting and lints, lints template.yaml, runs every test of the workspace, and
# builds the Lambda functions for arm64 with cargo-lambda.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.tools/venv/bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing test tools"
scripts/install-tools.sh

step "starting DynamoDB Local"
eval "$(scripts/dynamodb-local.sh start)"
trap 'scripts/dynamodb-local.sh stop' EXIT

step "cargo fmt --check"
cargo fmt --all --check

step "cfn-lint template.yaml (with the serverless rules)"
cfn-lint template.yaml -a cfn_lint_serverless.rules

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --workspace --bins (tests run the real binaries)"
cargo build --workspace --bins --locked

step "cargo test --workspace"
cargo test --workspace --locked

step "cargo lambda build --release --arm64 (the deployable bootstraps)"
cargo lambda build --release --arm64 --locked --bin recommendations --bin cart --bin dormancy
for f in recommendations cart dormancy; do
  bootstrap="target/lambda/$f/bootstrap"
  [[ -x "$bootstrap" ]] || { echo "missing $bootstrap" >&2; exit 1; }
  python3 - "$bootstrap" <<'PY'
import sys
with open(sys.argv[1], "rb") as f:
    head = f.read(20)
# ELF e_machine at offset 18: 0xB7 = AArch64
assert head[:4] == b"\x7fELF" and head[18] == 0xB7, f"{sys.argv[1]} is not an aarch64 ELF"
PY
  echo "ok: $bootstrap ($(stat -c %s "$bootstrap") bytes, aarch64)" >&2
done
