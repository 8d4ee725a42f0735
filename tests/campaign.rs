//! `campaign send` against an in-process fault server: pacing holds the rate, concurrency
//! shrinks under 429s and recovers, `Retry-After` is honoured, retries stop at the bound with
//! the failure recorded, and every recipient ends up in the output exactly once — including
//! across a `kill -9` and `--resume` of the real binary.

use sendtime_campaign::audience::synthetic;
use sendtime_campaign::output::{self, ResultRecord};
use sendtime_campaign::send::{self, Progress, SendConfig, Summary};
use sendtime_domain::UserId;
use sendtime_tests::fault::{max_in_window, FaultServer, Faults};
use sendtime_tests::*;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn out_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_table("sendtime-campaign"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn read_results(path: &PathBuf) -> Vec<ResultRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// Every (user, block) exactly once.
fn assert_exactly_once(records: &[ResultRecord], users: &[UserId], blocks: &[&str]) {
    let mut count: HashMap<(String, String), usize> = HashMap::new();
    for r in records {
        *count
            .entry((r.user_id.clone(), r.block.clone()))
            .or_default() += 1;
    }
    for u in users {
        for b in blocks {
            let n = count.remove(&(u.to_string(), b.to_string())).unwrap_or(0);
            assert_eq!(n, 1, "{u}/{b} appears {n} times");
        }
    }
    assert!(count.is_empty(), "unexpected keys: {count:?}");
}

async fn send_to(
    server: &FaultServer,
    users: &[UserId],
    blocks: &[&str],
    tweak: impl FnOnce(&mut SendConfig),
) -> (Summary, Vec<ResultRecord>) {
    let mut config = SendConfig::new(
        server.url.clone(),
        blocks.iter().map(|b| b.to_string()).collect(),
        60_000.0,
    );
    config.backoff_base = Duration::from_millis(10);
    config.backoff_cap = Duration::from_millis(100);
    tweak(&mut config);
    let path = out_path("results.jsonl");
    let (log, done) = output::open(&path, false).unwrap();
    let summary = send::run(config, users, &done, log, Arc::new(Progress::default()))
        .await
        .unwrap();
    let records = read_results(&path);
    (summary, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_rate_stays_within_5_percent_of_the_target_in_every_second() {
    // GIVEN a healthy server and a target of 12,000 msgs/min × 1 block = 200 requests/s
    let server = FaultServer::start(Faults {
        latency: Duration::from_millis(2),
        ..Faults::default()
    })
    .await;
    let users = synthetic(700).users;
    // WHEN 700 recipients are sent
    let (summary, records) =
        send_to(&server, &users, &["cart"], |c| c.rate_per_minute = 12_000.0).await;
    // THEN no 1 s window holds more than 210 requests
    let hits = server.hits();
    assert_eq!(hits.len(), 700);
    let peak = max_in_window(&hits, Duration::from_secs(1));
    assert!(
        peak <= 210,
        "{peak} requests in one second against a target of 200"
    );
    assert_exactly_once(&records, &users, &["cart"]);
    assert!(
        summary.requests_per_second <= 210.0,
        "{}",
        summary.requests_per_second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_count_against_the_rate_too() {
    let server = FaultServer::start(Faults {
        p500: 0.3,
        p503: 0.2,
        latency: Duration::from_millis(2),
        ..Faults::default()
    })
    .await;
    let users = synthetic(400).users;
    let (summary, records) = send_to(&server, &users, &["cart"], |c| {
        c.rate_per_minute = 12_000.0;
        c.max_attempts = 6;
    })
    .await;
    let hits = server.hits();
    assert!(hits.len() > 500, "retries happened: {}", hits.len());
    assert!(max_in_window(&hits, Duration::from_secs(1)) <= 210);
    assert_eq!(summary.attempts as usize, hits.len());
    assert_exactly_once(&records, &users, &["cart"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_shrinks_under_429s_and_recovers_after() {
    // GIVEN answers taking 20 ms, and half of them 429 between 1.0 s and 2.0 s
    let server = FaultServer::start(Faults {
        p429: 0.5,
        retry_after: Some("0".into()),
        latency: Duration::from_millis(20),
        window: Some((Duration::from_millis(1_000), Duration::from_millis(2_000))),
        ..Faults::default()
    })
    .await;
    let users = synthetic(1_800).users;
    // WHEN sent at 400 requests/s, starting with 16 in flight
    let (summary, records) = send_to(&server, &users, &["cart"], |c| {
        c.rate_per_minute = 24_000.0;
        // Each attempt in the window is a fair coin: with 10 attempts one key in ~1,000
        // failed, and a run has hundreds of keys in the window (CI saw it). 40 makes it
        // ~1e-12 per key; with `Retry-After: 0` the extra attempts cost no time.
        c.max_attempts = 40;
        c.initial_concurrency = 16;
    })
    .await;
    let t = &summary.concurrency_timeline;
    let limit_at = |secs: f64| {
        t.iter()
            .take_while(|(at, _)| *at <= secs)
            .last()
            .map(|p| p.1)
            .unwrap_or(16.0)
    };
    let before = limit_at(1.0);
    let during_min = t
        .iter()
        .filter(|(at, _)| (1.0..2.3).contains(at))
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    let after = summary.concurrency_final;
    // THEN the window halves under the 429s and grows back once they stop
    assert!(
        during_min <= before / 4.0,
        "before {before}, lowest during {during_min}: {t:?}"
    );
    assert!(
        after >= during_min * 4.0,
        "lowest {during_min}, final {after}: {t:?}"
    );
    assert!(server.hits().iter().any(|h| h.answer == 429));
    assert_exactly_once(&records, &users, &["cart"]);
    let failed: Vec<_> = records.iter().filter(|r| r.outcome != "ok").collect();
    assert!(
        failed.is_empty(),
        "429s were retried to success: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let server = FaultServer::start(Faults {
        first_attempt_429: true,
        retry_after: Some("1".into()),
        latency: Duration::from_millis(1),
        ..Faults::default()
    })
    .await;
    let users = synthetic(10).users;
    let (_, records) = send_to(&server, &users, &["cart"], |_| {}).await;
    let mut by_key: HashMap<String, Vec<Duration>> = HashMap::new();
    for h in server.hits() {
        by_key.entry(h.user).or_default().push(h.at);
    }
    for (user, times) in by_key {
        assert_eq!(times.len(), 2, "{user}: one 429 then one success");
        assert!(
            times[1] - times[0] >= Duration::from_millis(950),
            "{user} retried after {:?}",
            times[1] - times[0]
        );
    }
    assert!(records.iter().all(|r| r.outcome == "ok" && r.attempts == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_bound_and_every_failure_is_recorded() {
    // GIVEN 10 users whose calls always fail, and a mix of every fault for the rest
    let doomed: HashSet<String> = synthetic(10).users.iter().map(|u| u.to_string()).collect();
    let server = FaultServer::start(Faults {
        always_500: doomed.clone(),
        p500: 0.15,
        p503: 0.1,
        p_reset: 0.05,
        p_slow: 0.05,
        slow: Duration::from_millis(600),
        latency: Duration::from_millis(2),
        ..Faults::default()
    })
    .await;
    let users = synthetic(300).users;
    let blocks = ["recommendations", "cart"];
    // WHEN sent with 3 attempts and a 200 ms timeout
    let (summary, records) = send_to(&server, &users, &blocks, |c| {
        c.rate_per_minute = 30_000.0;
        c.max_attempts = 3;
        c.timeout = Duration::from_millis(200);
    })
    .await;
    // THEN every key is in the output once, none tried more than 3 times
    assert_exactly_once(&records, &users, &blocks);
    assert!(records.iter().all(|r| (1..=3).contains(&r.attempts)));
    let hits = server.hits();
    for r in records.iter().filter(|r| doomed.contains(&r.user_id)) {
        assert_eq!(
            (r.outcome.as_str(), r.status, r.attempts),
            ("failed", Some(500), 3),
            "{r:?}"
        );
        let tries = hits
            .iter()
            .filter(|h| h.user == r.user_id && h.block == r.block)
            .count();
        assert_eq!(
            tries, 3,
            "{}/{} was tried {tries} times",
            r.user_id, r.block
        );
    }
    // AND the other faults were met and mostly retried away
    let kinds: HashSet<u16> = hits.iter().map(|h| h.answer).collect();
    assert!(kinds.contains(&0) && kinds.contains(&503), "{kinds:?}");
    let ok = summary.outcomes.get("ok").copied().unwrap_or(0);
    let failed = summary.outcomes.get("failed").copied().unwrap_or(0);
    assert_eq!(ok + failed, 600);
    assert!(failed >= 20, "the doomed keys failed: {failed}");
    assert!(ok >= 540, "transient faults retried to success: {ok}");
    assert!(records
        .iter()
        .filter(|r| r.outcome == "failed")
        .all(|r| r.error.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_killed_with_sigkill_resumes_to_exactly_once() {
    // GIVEN a slow-ish server and a send of 3,000 recipients at 1,000 requests/s
    let server = FaultServer::start(Faults {
        latency: Duration::from_millis(5),
        ..Faults::default()
    })
    .await;
    let out = out_path("killed.jsonl");
    let args = |resume: bool| {
        let mut cmd = std::process::Command::new(sendtime_bin());
        cmd.args([
            "campaign",
            "send",
            "--base-url",
            &server.url,
            "--synthetic",
            "3000",
            "--blocks",
            "cart",
            "--rate",
            "60000",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        if resume {
            cmd.arg("--resume");
        }
        cmd
    };
    let mut child = args(false).spawn().unwrap();
    // WHEN it is killed with SIGKILL once some results are written
    let started = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&out)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 600 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "send made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&out).unwrap().lines().count();
    assert!(partial < 3_000, "killed before the end ({partial} lines)");
    // THEN --resume finishes it
    let resumed = args(true).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    // AND the merged output has every recipient exactly once
    let records = read_results(&out);
    assert_exactly_once(&records, &synthetic(3_000).users, &["cart"]);
    assert!(records.iter().all(|r| r.outcome == "ok"));
    // Calls in flight at the kill were sent again (at-least-once calls, exactly-once results).
    let calls = server.hits().len();
    assert!(calls >= 3_000, "{calls}");
}

#[test]
fn flags_and_audience_errors_name_what_to_fix() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(sendtime_bin())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let out = out_path("never.jsonl");
    let o = out.to_str().unwrap();
    assert!(run(&[
        "campaign",
        "send",
        "--base-url",
        "http://127.0.0.1:9",
        "--synthetic",
        "1",
        "--rate",
        "0",
        "--out",
        o
    ])
    .contains("--rate"));
    assert!(run(&[
        "campaign",
        "send",
        "--base-url",
        "ftp://x",
        "--synthetic",
        "1",
        "--rate",
        "10",
        "--out",
        o
    ])
    .contains("--base-url"));
    assert!(run(&[
        "campaign",
        "send",
        "--base-url",
        "http://127.0.0.1:9",
        "--rate",
        "10",
        "--out",
        o
    ])
    .contains("--audience"));
    let audience = out_path("audience.csv");
    std::fs::write(&audience, "user_id\nu1\nu2\nnot valid!\nu4\n../etc\n").unwrap();
    let err = run(&[
        "campaign",
        "send",
        "--base-url",
        "http://127.0.0.1:9",
        "--audience",
        audience.to_str().unwrap(),
        "--rate",
        "10",
        "--out",
        o,
    ]);
    assert!(err.contains("line 4") && err.contains("line 6"), "{err}");
    assert!(run(&[
        "campaign",
        "plan",
        "--audience",
        "100",
        "--rate",
        "10",
        "--channel",
        "email=0.5"
    ])
    .contains("--channel"));
    assert!(run(&[
        "campaign",
        "plan",
        "--audience",
        "100",
        "--rate",
        "10",
        "--channel",
        "fax=1"
    ])
    .contains("--channel"));
    assert!(run(&["campaign", "plan", "--audience", "0", "--rate", "10"]).contains("--audience"));
}

#[test]
fn plan_prints_a_table_or_json() {
    let out = std::process::Command::new(sendtime_bin())
        .args([
            "campaign",
            "plan",
            "--audience",
            "10000000",
            "--rate",
            "100000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["burst_rps"], 10_000.0);
    assert_eq!(v["recommended_rate_per_minute"], 100_000.0);
    let table = std::process::Command::new(sendtime_bin())
        .args([
            "campaign",
            "plan",
            "--audience",
            "10000000",
            "--window-hours",
            "1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("FAIL") && text.contains("recommended Braze rate limit"),
        "{text}"
    );
}

#[test]
fn plan_prices_both_front_doors_through_the_binary() {
    // 10M email recipients at 100,000 msgs/min: 30M calls (README's worked example).
    let plan = |front: &str| -> serde_json::Value {
        let out = std::process::Command::new(sendtime_bin())
            .args([
                "campaign",
                "plan",
                "--audience",
                "10000000",
                "--channel",
                "email=1",
                "--rate",
                "100000",
                "--json",
                "--front",
                front,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let close = |v: &serde_json::Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-6;
    let api = plan("http-api");
    assert!(close(&api["cost_api_gateway"], 30.0), "{api}");
    assert_eq!(api["checks"][0]["name"], "API Gateway 10,000 rps");
    // By hand: no front-door charge; Lambda 30 × $0.20 + 45,000 GB-s × $0.0000133334 (the
    // default duration, 5.52 ms, billed as 6 ms: 30M × 0.006 s × 0.25 GB); DynamoDB 15M RRU ×
    // $0.125/M.
    let url = plan("function-url");
    assert_eq!(url["input"]["front"], "function-url");
    assert!(close(&url["cost_api_gateway"], 0.0), "{url}");
    assert!(
        close(&url["cost_total"], 6.0 + 45_000.0 * 0.000_013_333_4 + 1.875),
        "{url}"
    );
    assert_eq!(
        url["checks"][0]["name"],
        "Lambda 10,000 rps (10 × concurrency)"
    );
    assert_eq!(url["checks"][0]["ok"], true);

    let out = std::process::Command::new(sendtime_bin())
        .args([
            "campaign",
            "plan",
            "--audience",
            "10",
            "--rate",
            "10",
            "--front",
            "alb",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--front") && stderr.contains("function-url"),
        "{stderr}"
    );
}

#[test]
fn send_refuses_an_unknown_block_before_sending_anything() {
    let out = std::process::Command::new(sendtime_bin())
        .args([
            "campaign",
            "send",
            "--base-url",
            "http://127.0.0.1:9",
            "--synthetic",
            "3",
            "--blocks",
            "recommendations,recs",
            "--rate",
            "60",
            "--out",
        ])
        .arg(out_path("unknown-block.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'recs'") && stderr.contains("onboarding"),
        "{stderr}"
    );
}

#[test]
fn a_send_to_a_closed_port_exits_non_zero_naming_the_url_and_the_os_error() {
    // GIVEN a port where nothing listens
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = |max_failure_rate: &str, name: &str| {
        let summary = out_path(&format!("{name}.summary.json"));
        let out = std::process::Command::new(sendtime_bin())
            .args(["campaign", "send", "--base-url", &url, "--synthetic", "3"])
            .args(["--rate", "600", "--max-attempts", "1"])
            .args(["--max-failure-rate", max_failure_rate, "--summary"])
            .arg(&summary)
            .arg("--out")
            .arg(out_path(&format!("{name}.jsonl")))
            .output()
            .unwrap();
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        (out, summary)
    };
    // WHEN every key fails and no failure is allowed (the default is 0)
    let (out, summary) = run("0", "closed-port");
    // THEN it exits non-zero, and says where it sent and what the OS said
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("connection refused"),
        "{stderr}"
    );
    assert_eq!(summary["base_url"], url.as_str());
    assert_eq!(summary["os_errors"]["connection refused"], 3);
    assert_eq!(summary["statuses"]["connect_error"], 3);
    // and a campaign that tolerates failures still exits 0
    let (out, _) = run("1", "closed-port-tolerated");
    assert!(out.status.success());
}
