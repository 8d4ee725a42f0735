#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and the serverless rules under both front doors:
#   1. as it is (FrontDoor default http-api);
#   2. a temporary copy whose FrontDoor default is function-url;
# then checks the IAM every function gets, on the template as SAM transforms it: the ingest
# function may only GetItem/PutItem user and item rows, consume its queue and read the
# credentials parameter; every block function keeps exactly its read-only policy.
# cfn-lint checks every resource whatever its Condition, but the serverless rules and the
# SAM transform see the template as written; the copy makes the function-url variant an
# explicit, separately reported run. (cfn-lint's --parameters only feeds values to Ref
# resolution, it does not fix which Conditions hold, so a copy is the reliable way.)
# Needs cfn-lint and cfn-lint-serverless on PATH (scripts/install-tools.sh, .tools/venv/bin).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TEMPLATE="${1:-$ROOT/template.yaml}"

lint() {
  echo "cfn-lint $2 (FrontDoor=$1)" >&2
  cfn-lint "$2" -a cfn_lint_serverless.rules
}

lint http-api "$TEMPLATE"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
COPY="$TMP/template-function-url.yaml"
# Change only the Default line inside the FrontDoor parameter.
sed '/^  FrontDoor:$/,/^  [A-Za-z0-9]*:$/ s/^    Default: http-api$/    Default: function-url/' \
  "$TEMPLATE" > "$COPY"
if [[ "$(diff "$TEMPLATE" "$COPY" | grep -c '^>')" != 1 ]] \
   || ! grep -q '^    Default: function-url$' "$COPY"; then
  echo "lint-template: could not set the FrontDoor default to function-url in a copy" >&2
  exit 1
fi
lint function-url "$COPY"
echo "ok: template lints clean under both FrontDoor settings" >&2

# The interpreter cfn-lint runs on has the SAM translator (cfn-lint's own dependency).
PYTHON="$(dirname "$(command -v cfn-lint)")/python3"
AWS_DEFAULT_REGION=us-east-1 "$PYTHON" - "$TEMPLATE" <<'PY'
"""Least privilege, checked on what CloudFormation would deploy (the SAM transform's roles)."""
import json, sys
from cfnlint.decode import decode
from samtranslator.translator.transform import transform

template, problems = decode(sys.argv[1])
assert not problems, problems
template = json.loads(json.dumps(template))
for resource in template["Resources"].values():
    props = resource.get("Properties", {})
    # The translator wants packaged code; only the roles matter here.
    for uri in ("CodeUri", "ContentUri"):
        if uri in props:
            props[uri] = "s3://placeholder/code.zip"

class NoManagedPolicyLookups:
    def load(self):
        return {}

resources = transform(template, {}, NoManagedPolicyLookups())["Resources"]
SSM_READ = {"Fn::If": ["HasAuthParameter", {
    "Effect": "Allow", "Action": "ssm:GetParameter",
    "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${AuthParameter}"}},
    {"Ref": "AWS::NoValue"}]}
# Every block function's policy as it is on main (read-only: the three read ports).
BLOCK_STATEMENTS = [
    {"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:GetItem"],
     "Resource": {"Fn::GetAtt": ["Table", "Arn"]}},
    SSM_READ,
]
# The ingest function: the DynamoDB adapter's EventsApply calls on user and item rows, its
# queue, the credentials parameter.
INGEST_STATEMENTS = [
    {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
     "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
     "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["USER#*", "ITEM#*"]}}},
    {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
     "Resource": {"Fn::GetAtt": ["IngestQueue", "Arn"]}},
    SSM_READ,
]
MANAGED = ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
           "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"]

def role_of(function):
    props = resources[function]["Properties"]
    role = resources[props["Role"]["Fn::GetAtt"][0]]["Properties"]
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return statements, role.get("ManagedPolicyArns", [])

functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
blocks = [n for n in functions
          if "SENDTIME_BLOCK" in resources[n]["Properties"]["Environment"]["Variables"]]
assert len(blocks) == 4 and "IngestFunction" in functions, functions
for name in functions:
    statements, managed = role_of(name)
    expected = INGEST_STATEMENTS if name == "IngestFunction" else BLOCK_STATEMENTS
    assert statements == expected, f"{name}'s policy changed:\n{json.dumps(statements, indent=1)}"
    assert managed == MANAGED, f"{name}'s managed policies changed: {managed}"
    print(f"ok: {name}: {'writes events only' if name == 'IngestFunction' else 'read-only'}",
          file=sys.stderr)
# No other role or policy in the stack may write the table.
WRITES = ("dynamodb:Put", "dynamodb:Update", "dynamodb:Delete", "dynamodb:BatchWrite",
          "dynamodb:PartiQL", "dynamodb:Transact", "dynamodb:*", "*")
ingest_role = resources["IngestFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
for name, resource in resources.items():
    if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") \
            and name != ingest_role:
        text = json.dumps(resource)
        assert not any(f'"{w}' in text for w in WRITES), f"{name} may write: {text}"
print("ok: only the ingest function may write, and only what events write", file=sys.stderr)
PY
