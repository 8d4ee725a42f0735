#!/usr/bin/env python3
"""Lambda packaging and start-up figures, for docs/benchmarks.md.

Every block function runs the one `blocks` binary, told its block by SENDTIME_BLOCK (as in
template.yaml). Prints, as a Markdown table:
  - the arm64 `bootstrap` every function deploys (`sam build`, i.e. cargo lambda build
    --release --arm64 --bin blocks): size, and zipped size;
  - for each block function, the same binary built for this machine (x86_64 release, since
    arm64 cannot run here) with its SENDTIME_BLOCK: init time under cargo-lambda's emulator,
    from process start until the function logs "init complete" (SDK config + DynamoDB
    connection + warm-up GetItem included), and the init_ms the function measures itself;
  - first-request and warm-request latency through the emulator, with /health (no store
    access) measured in the same run as the baseline, and their ratio.

Needs: scripts/install-tools.sh done, `sam build` (or `cargo lambda build --release --arm64
--bin blocks`) done, and `cargo build --release --bins`. Starts DynamoDB Local and the
emulator itself; loopback only.
Usage: scripts/bench-lambda.py [--runs 5] [--warm 300]
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One binary; each function is it with SENDTIME_BLOCK=<block>.
BINARY = "blocks"
FUNCTIONS = ["recommendations", "cart", "dormancy", "onboarding"]
PATHS = {"recommendations": "/v1/users/u000001/recommendations", "cart": "/v1/users/u000001/cart",
         "dormancy": "/v1/users/u000002/dormancy", "onboarding": "/v1/users/u000003/onboarding"}


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listening on {port}")


def get_ms(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
    return (time.perf_counter() - t) * 1000


def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def sizes():
    # `sam build` and `cargo lambda build` both leave it here (the workspace's target/).
    path = os.path.join(ROOT, "target", "lambda", BINARY, "bootstrap")
    if not os.path.exists(path):
        sys.exit(f"{path} missing: run `sam build` (or `cargo lambda build --release --arm64 --bin {BINARY}`) first")
    with tempfile.TemporaryDirectory() as d:
        z = os.path.join(d, "f.zip")
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, "bootstrap")
        return [(f"{BINARY} (all {len(FUNCTIONS)} functions)", os.path.getsize(path), os.path.getsize(z))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="cold starts per function")
    ap.add_argument("--warm", type=int, default=300, help="warm requests per function")
    args = ap.parse_args()
    env = dict(os.environ, PATH=os.path.join(ROOT, ".tools/venv/bin") + ":" + os.environ["PATH"])
    out = subprocess.run([os.path.join(ROOT, "scripts/dynamodb-local.sh"), "start"], check=True,
                         capture_output=True, text=True).stdout
    endpoint = out.strip().split("=", 1)[1]
    sendtime = os.path.join(ROOT, "target/release/sendtime")
    table = f"bench-{os.getpid()}"
    gen = subprocess.Popen([sendtime, "data", "generate", "--users", "2000", "--items", "500"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    subprocess.run([sendtime, "data", "load", "--table", table, "--dynamodb-endpoint", endpoint],
                   stdin=gen.stdout, check=True, capture_output=True)
    port = free_port()
    emu = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = []
    try:
        wait_port(port)
        for f in FUNCTIONS:
            inits, self_inits, firsts, first_health = [], [], [], []
            warm, health = [], []
            for run in range(args.runs):
                # The emulator only knows the project's binary names: every block's function is
                # `blocks` to it (one at a time here), as each is its own Lambda function.
                fenv = dict(env, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt/{BINARY}",
                            AWS_LAMBDA_FUNCTION_NAME=BINARY, AWS_LAMBDA_FUNCTION_VERSION="1",
                            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", SENDTIME_BLOCK=f, SENDTIME_TABLE=table,
                            SENDTIME_DYNAMODB_ENDPOINT=endpoint, SENDTIME_LOG="info")
                fenv.pop("AWS_ACCESS_KEY_ID", None)
                # The rules file the deployed functions read from the layer (/opt/rules.toml).
                if os.path.exists(os.path.join(ROOT, "config/rules.toml")):
                    fenv["SENDTIME_RULES_FILE"] = os.path.join(ROOT, "config/rules.toml")
                t0 = time.perf_counter()
                p = subprocess.Popen([os.path.join(ROOT, "target/release", BINARY)], env=fenv,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for line in p.stdout:
                    if '"init complete"' in line:
                        inits.append((time.perf_counter() - t0) * 1000)
                        self_inits.append(json.loads(line).get("init_ms", 0))
                        break
                # Keep reading its logs so a full pipe never blocks the function.
                threading.Thread(target=lambda out=p.stdout: [None for _ in out], daemon=True).start()
                base = f"http://127.0.0.1:{port}/lambda-url/{BINARY}"
                # First request after init: the user partition and items are cold; the
                # connection was opened in init.
                firsts.append(get_ms(base + PATHS[f]))
                if run == args.runs - 1:
                    for _ in range(args.warm):
                        warm.append(get_ms(base + PATHS[f]))
                        health.append(get_ms(base + "/health"))
                p.kill(); p.wait()
            results.append((f, inits, self_inits, firsts, warm, health))
    finally:
        emu.kill(); emu.wait()
        subprocess.run([os.path.join(ROOT, "scripts/dynamodb-local.sh"), "stop"])

    print("| function | bootstrap (arm64, stripped) | zipped |")
    print("|---|---|---|")
    for f, raw, z in sizes():
        print(f"| {f} | {raw / 1e6:.2f} MB | {z / 1e6:.2f} MB |")
    print()
    print(f"| function (x86_64 release, emulator) | init to ready, median of {args.runs} | init_ms (self-measured) | first request | warm p50 | warm p99 | /health p50 (baseline) | warm p50 ÷ baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for f, inits, self_inits, firsts, warm, health in results:
        print(f"| {f} | {statistics.median(inits):.1f} ms | {statistics.median(self_inits):.0f} ms | "
              f"{statistics.median(firsts):.2f} ms | {pct(warm, 50):.2f} ms | {pct(warm, 99):.2f} ms | "
              f"{pct(health, 50):.2f} ms | {pct(warm, 50) / pct(health, 50):.2f}× |")


if __name__ == "__main__":
    main()
