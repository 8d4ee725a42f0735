#!/usr/bin/env bash
# The one test command (README, CI): installs what it needs, starts DynamoDB Local, then
# checks formatting and lints, lints template.yaml (both front doors), runs every test of the
# workspace, fuzzes the API from its OpenAPI description (Schemathesis, time-bounded), and
# builds the Lambda functions for arm64 with `sam build` (cargo-lambda).
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

step "cfn-lint template.yaml (with the serverless rules), FrontDoor http-api and function-url"
scripts/lint-template.sh

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --workspace --bins (tests run the real binaries)"
cargo build --workspace --bins --locked

# --all-targets: the Criterion micro-benchmarks (crates/bench) are built with the tests and
# each run once (test mode: nothing timed; `cargo bench -p sendtime-bench` and
# scripts/bench.sh give the figures).
step "cargo test --workspace --all-targets (the micro-benchmarks each run once)"
cargo test --workspace --all-targets --locked

step "Schemathesis against serve's /openapi.json (bounded: FUZZ_SECONDS, default 60)"
scripts/fuzz-api.sh

step "sam build (the deployable arm64 bootstraps, one release build for every function)"
# rust-cargolambda is a beta build method (also set in samconfig.toml). SAM groups functions
# with the same CodeUri, runtime, architecture and Metadata into one build definition: the
# `blocks` binary is compiled once (cargo lambda build --release --arm64 --bin blocks, in
# the workspace's target/) and, with beta features on, put in one shared artifact directory
# that every function's CodeUri points at. No Docker and no AWS credentials are needed.
[[ -f config/rules.toml ]] || { echo "missing config/rules.toml (the rules layer)" >&2; exit 1; }
SAM_CLI_TELEMETRY=0 sam build --beta-features --template-file template.yaml
# Each function's artifact, wherever the built template points it; each must be an arm64 ELF.
python3 - .aws-sam/build <<'PY'
import os, sys, yaml
build = sys.argv[1]
with open(os.path.join(build, "template.yaml")) as f:
    resources = yaml.safe_load(f)["Resources"]
# Every function the template defines (one per block; tests/blocks.rs checks them against
# the block registry), so a new block's function is checked without editing this script.
functions = [n for n, r in resources.items() if r.get("Type") == "AWS::Serverless::Function"]
assert functions, "no functions in the built template"
for name in functions:
    path = os.path.join(build, resources[name]["Properties"]["CodeUri"], "bootstrap")
    assert os.access(path, os.X_OK), f"{name}: missing {path}"
    with open(path, "rb") as f:
        head = f.read(20)
    # ELF e_machine at offset 18: 0xB7 = AArch64
    assert head[:4] == b"\x7fELF" and head[18] == 0xB7, f"{path} is not an aarch64 ELF"
    print(f"ok: {name}: {path} ({os.path.getsize(path)} bytes, aarch64)", file=sys.stderr)
PY
