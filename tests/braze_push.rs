//! `sendtime audience push` through the real binary against the `/users/track` emulator
//! (`support/braze_track.rs`): a push killed with SIGKILL and resumed writes every user once
//! (or again with the same value) within the object cap and the rate limit; unchanged scores
//! are not sent again; refused users are named; a bad key stops the push without printing
//! it; bad score lines are reported by number; CDI files validate line by line.

use sendtime_tests::braze_track::{TrackServer, TrackServerConfig};
use sendtime_tests::sendtime_bin;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEY: &str = "test-rest-key";

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sendtime-push-{name}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The score of user `i` (varied, 0–1) and its line.
fn score(i: usize, bump: f64) -> f64 {
    ((i * 37 % 1000) as f64 / 1000.0 + bump).min(1.0)
}

fn score_line(i: usize, bump: f64) -> String {
    format!(
        r#"{{"kind":"score","user_id":"u{i:06}","score":{},"computed_at":"2026-12-01T00:00:00Z","model":"logistic-l2"}}"#,
        score(i, bump)
    )
}

/// A scores file of `n` users as `audience score --out` writes it.
fn write_scores(path: &Path, n: usize) -> HashMap<String, f64> {
    let lines: Vec<String> = (0..n).map(|i| score_line(i, 0.0)).collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    (0..n)
        .map(|i| (format!("u{i:06}"), score(i, 0.0)))
        .collect()
}

fn push_command(server: &TrackServer, scores: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(sendtime_bin());
    cmd.args([
        "audience",
        "push",
        "--to",
        "braze",
        "--endpoint",
        &server.url,
    ])
    .args(["--api-key", KEY, "--scores"])
    .arg(scores)
    .args(extra)
    .env("SENDTIME_LOG", "warn")
    .kill_on_drop(true);
    cmd
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The summary line `audience push` prints on stdout.
    fn summary(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

async fn run(cmd: tokio::process::Command) -> Run {
    run_within(cmd, Duration::from_secs(60)).await
}

async fn run_within(mut cmd: tokio::process::Command, limit: Duration) -> Run {
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .expect("push finished in time")
        .expect("run sendtime");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn state_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_killed_with_sigkill_and_resumed_writes_every_user_once_within_the_cap_and_the_limit(
) {
    // GIVEN 1,500 scored users and a Braze that allows 40 requests a second and 30 objects a
    // request (small, so that the limit bites), answers every 7th request 503 and every 11th 429
    let server = TrackServer::start(TrackServerConfig {
        limit: 40,
        window_secs: 1,
        max_objects: 30,
        fail_every: Some(7),
        throttle_every: Some(11),
        ..TrackServerConfig::default()
    })
    .await;
    killed_and_resumed(&server, "killed", 1_500, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_killed_with_sigkill_and_resumed_under_brazes_default_limit_writes_every_user_once()
{
    // GIVEN 9,000 scored users and a Braze with its documented defaults — 3,000 requests per
    // 3 s with X-RateLimit-* headers, 75 objects a request — answering every 7th request 503
    // and every 40th 429 (each 429 waits for the 3-second window's reset)
    let server = TrackServer::start(TrackServerConfig {
        fail_every: Some(7),
        throttle_every: Some(40),
        ..TrackServerConfig::default()
    })
    .await;
    assert_eq!(
        (
            server.config().limit,
            server.config().window_secs,
            server.config().max_objects
        ),
        (3_000, 3, 75)
    );
    killed_and_resumed(&server, "killed-defaults", 9_000, 75).await;
}

/// Pushes `users` scores in batches of `batch`, SIGKILLs the push once a third is logged,
/// runs the same command again, and checks Braze's log: every user once (or again with the
/// same value), no request over the cap, no window over the limit, update-only objects.
async fn killed_and_resumed(server: &TrackServer, name: &str, users: usize, batch: usize) {
    let (limit, cap) = (server.config().limit, server.config().max_objects);
    let dir = dir(name);
    let scores = dir.join("scores.jsonl");
    let expected = write_scores(&scores, users);
    let state = dir.join("scores.jsonl.braze-state.jsonl");
    let batch_size = batch.to_string();
    let args = ["--batch-size", batch_size.as_str(), "--concurrency", "8"];
    // WHEN the push is killed with SIGKILL once some batches are logged
    let mut child = push_command(server, &scores, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while state_lines(&state) < users / 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let logged_at_kill = state_lines(&state) - 1;
    assert!(logged_at_kill < expected.len(), "killed after the end");
    // AND the same command runs again
    let resumed = run(push_command(server, &scores, &args)).await;
    // THEN it ends well, sending only what the first run had not logged
    assert!(resumed.ok, "{}", resumed.stderr);
    let summary = resumed.summary();
    assert_eq!(summary["unchanged"], logged_at_kill as u64, "{summary}");
    assert_eq!(
        summary["accepted"],
        (expected.len() - logged_at_kill) as u64
    );
    // AND Braze holds every user with their score, any user written twice with the same value
    let log = server.log();
    let mut seen: HashMap<&str, (f64, &str)> = HashMap::new();
    for w in &log.written {
        let value = (
            w.score.expect("score"),
            w.scored_at.as_deref().expect("scored_at"),
        );
        assert_eq!(value.1, "2026-12-01T00:00:00Z");
        assert_eq!(
            Some(&value.0),
            expected.get(&w.external_id),
            "{}",
            w.external_id
        );
        if let Some(before) = seen.insert(&w.external_id, value) {
            assert_eq!(
                before, value,
                "{} rewritten with another value",
                w.external_id
            );
        }
    }
    assert_eq!(seen.len(), expected.len(), "users missing in Braze");
    // AND no request went over the cap, no window over the limit, every object was update-only
    assert_eq!((log.over_cap, log.largest_request), (0, batch.min(cap)));
    assert_eq!(log.limited, 0, "windows: {:?}", log.windows);
    assert!(log.busiest_window() <= limit, "windows: {:?}", log.windows);
    assert_eq!(log.without_update_only, 0);
    assert!(log.injected_5xx > 0 && log.injected_429 > 0, "{log:?}");
    // AND the state names every user once
    let text = std::fs::read_to_string(&state).unwrap();
    let ids: HashSet<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["external_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_push_of_unchanged_scores_sends_nothing_and_a_changed_score_alone_is_sent() {
    // GIVEN Braze's real defaults (3,000 requests per 3 s, 75 objects) and 1,000 scored users
    let server = TrackServer::start(TrackServerConfig::default()).await;
    let dir = dir("unchanged");
    let scores = dir.join("scores.jsonl");
    write_scores(&scores, 1_000);
    // WHEN they are pushed
    let first = run(push_command(&server, &scores, &[])).await;
    assert!(first.ok, "{}", first.stderr);
    let after_first = server.log();
    // THEN 14 requests of at most 75 objects carried every user once
    assert_eq!((after_first.objects, after_first.requests), (1_000, 14));
    assert_eq!(after_first.largest_request, 75);
    // WHEN the same scores are pushed again
    let second = run(push_command(&server, &scores, &[])).await;
    // THEN nothing is sent
    assert!(second.ok, "{}", second.stderr);
    assert_eq!(server.log().requests, after_first.requests);
    assert_eq!(second.summary()["unchanged"], 1_000);
    // WHEN one user's score changes
    let mut lines: Vec<String> = (0..1_000).map(|i| score_line(i, 0.0)).collect();
    lines[7] = score_line(7, 0.01);
    std::fs::write(&scores, lines.join("\n") + "\n").unwrap();
    let third = run(push_command(&server, &scores, &[])).await;
    // THEN exactly that user is written, with the new value
    assert!(third.ok, "{}", third.stderr);
    let log = server.log();
    assert_eq!(log.objects, 1_001);
    let last = log.written.last().unwrap();
    assert_eq!(
        (last.external_id.as_str(), last.score),
        ("u000007", Some(score(7, 0.01)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_braze_refuses_in_a_201_are_named_and_sent_again_by_the_next_push() {
    // GIVEN a Braze that refuses two of 200 users with a non-fatal error
    let blocked: HashSet<String> = ["u000010", "u000150"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let server = TrackServer::start(TrackServerConfig {
        blocklisted: blocked.clone(),
        ..TrackServerConfig::default()
    })
    .await;
    let dir = dir("refused");
    let scores = dir.join("scores.jsonl");
    write_scores(&scores, 200);
    // WHEN the scores are pushed
    let first = run(push_command(&server, &scores, &[])).await;
    // THEN the push ends, naming each refused user with Braze's words
    assert!(first.ok, "{}", first.stderr);
    for user in &blocked {
        assert!(
            first
                .stderr
                .contains(&format!("{user}: provided external_id is blacklisted")),
            "{}",
            first.stderr
        );
    }
    assert_eq!(
        (
            first.summary()["accepted"].as_u64(),
            first.summary()["refused"].as_u64()
        ),
        (Some(198), Some(2))
    );
    // AND the next push sends only those two again
    let second = run(push_command(&server, &scores, &[])).await;
    assert_eq!(second.summary()["unchanged"], 198, "{}", second.stderr);
    assert_eq!(server.log().refused, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_stops_the_push_with_brazes_status_and_message_and_never_prints_the_key() {
    // GIVEN a Braze that does not know the key
    let server = TrackServer::start(TrackServerConfig::default()).await;
    let dir = dir("badkey");
    let scores = dir.join("scores.jsonl");
    write_scores(&scores, 100);
    // WHEN a push uses another key
    let mut cmd = tokio::process::Command::new(sendtime_bin());
    cmd.args([
        "audience",
        "push",
        "--to",
        "braze",
        "--endpoint",
        &server.url,
    ])
    .args(["--api-key", "wrong-secret-key-42", "--scores"])
    .arg(&scores);
    let out = run(cmd).await;
    // THEN it fails naming the status, Braze's message and the flag, without the key
    assert!(!out.ok);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Unknown or missing REST API Key"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--api-key"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("wrong-secret-key-42") && !out.stdout.contains("wrong-secret-key-42")
    );
    assert_eq!(server.log().objects, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_score_lines_are_reported_by_number_and_the_good_ones_pushed() {
    // GIVEN a scores file with a broken line (3) and a score of 1.5 (5)
    let server = TrackServer::start(TrackServerConfig::default()).await;
    let dir = dir("badlines");
    let scores = dir.join("scores.jsonl");
    let mut lines: Vec<String> = (0..6).map(|i| score_line(i, 0.0)).collect();
    lines[2] = r#"{"kind":"score","user_id":"#.into();
    lines[4] = lines[4].replace(&format!("\"score\":{}", score(4, 0.0)), "\"score\":1.5");
    std::fs::write(&scores, lines.join("\n") + "\n").unwrap();
    // WHEN they are pushed
    let out = run(push_command(&server, &scores, &[])).await;
    // THEN lines 3 and 5 are named, the four others written
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("line 3 skipped"), "{}", out.stderr);
    assert!(
        out.stderr.contains("line 5 skipped") && out.stderr.contains("from 0 to 1"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 bad lines skipped"), "{}", out.stderr);
    assert_eq!(server.log().objects, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdi_files_validate_line_by_line_and_stay_under_the_size_cap() {
    // GIVEN 1,000 scored users and a 20,000-byte cap per file
    let dir = dir("cdi");
    let scores = dir.join("scores.jsonl");
    let expected = write_scores(&scores, 1_000);
    let out = dir.join("scores-cdi.jsonl");
    // WHEN they are written for Cloud Data Ingestion
    let mut cmd = tokio::process::Command::new(sendtime_bin());
    cmd.args(["audience", "push", "--to", "cdi", "--scores"])
        .arg(&scores)
        .arg("--out")
        .arg(&out)
        .args(["--max-file-bytes", "20000"]);
    let done = run(cmd).await;
    assert!(done.ok, "{}", done.stderr);
    // THEN several files, each under the cap, every line a JSON object with external_id and
    // a payload string that parses to the attributes, every user once
    let mut files = vec![out.clone()];
    for n in 1.. {
        let part = dir.join(format!("scores-cdi.{n}.jsonl"));
        if !part.exists() {
            break;
        }
        files.push(part);
    }
    assert!(files.len() >= 5, "{files:?}");
    let mut seen = HashSet::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            bytes.len() <= 20_000,
            "{} is {} bytes",
            file.display(),
            bytes.len()
        );
        for (i, line) in String::from_utf8(bytes).unwrap().lines().enumerate() {
            let at = format!("{} line {}", file.display(), i + 1);
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: {e}"));
            let obj = v
                .as_object()
                .unwrap_or_else(|| panic!("{at}: not an object"));
            assert_eq!(
                obj.len(),
                2,
                "{at}: only external_id and payload (no updated_at for S3)"
            );
            let id = obj["external_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: external_id"));
            let payload: serde_json::Value = serde_json::from_str(
                obj["payload"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: payload string")),
            )
            .unwrap_or_else(|e| panic!("{at}: payload: {e}"));
            assert_eq!(
                payload["sendtime_score"].as_f64(),
                expected.get(id).copied(),
                "{at}"
            );
            assert_eq!(
                payload["sendtime_scored_at"], "2026-12-01T00:00:00Z",
                "{at}"
            );
            assert_eq!(payload["_update_existing_only"], true, "{at}");
            assert!(seen.insert(id.to_owned()), "{at}: {id} twice");
        }
    }
    assert_eq!(seen.len(), expected.len());
}

/// The figure of `scripts/bench-push.sh`: users pushed per second under Braze's default
/// limit (3,000 requests per 3 s, 75 objects), `PUSH_BENCH_USERS` users (1,000,000 unless set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by scripts/bench-push.sh"]
async fn bench_push_users_per_second_under_the_default_limit() {
    let users: usize = std::env::var("PUSH_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = TrackServer::start(TrackServerConfig {
        record: false,
        ..TrackServerConfig::default()
    })
    .await;
    let dir = dir("bench");
    let scores = dir.join("scores.jsonl");
    write_scores(&scores, users);
    let started = Instant::now();
    let out = run_within(
        push_command(&server, &scores, &[]),
        Duration::from_secs(900),
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    assert!(out.ok, "{}", out.stderr);
    let log = server.log();
    assert_eq!(log.objects, users as u64);
    assert_eq!(
        (log.limited, log.over_cap),
        (0, 0),
        "windows {:?}",
        log.windows
    );
    let summary = out.summary();
    let secs = summary["seconds"].as_f64().unwrap_or(wall);
    println!(
        "bench-push: {users} users in {} requests, sending {secs:.1} s (process {wall:.1} s): {:.0} users/s, {:.0} requests/s; busiest {}-s window {} requests (limit {})",
        log.requests,
        users as f64 / secs,
        log.requests as f64 / secs,
        server.config().window_secs,
        log.busiest_window(),
        server.config().limit
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_braze_that_never_answers_is_retried_then_the_users_are_counted_as_not_written() {
    // GIVEN an endpoint where nothing listens (a port bound, then freed)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = dir("noanswer");
    let scores = dir.join("scores.jsonl");
    write_scores(&scores, 100);
    // WHEN 100 users are pushed with 2 attempts a batch
    let mut cmd = tokio::process::Command::new(sendtime_bin());
    cmd.args(["audience", "push", "--to", "braze", "--api-key", KEY])
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .args(["--max-attempts", "2", "--scores"])
        .arg(&scores);
    let out = run(cmd).await;
    // THEN the push fails saying how many users were not written, why, and how to resume
    assert!(!out.ok);
    assert!(
        out.stderr.contains("100 users were not written"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("gave up after 2 attempts"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("run the same command again"),
        "{}",
        out.stderr
    );
    // AND the state holds no user, so the next push sends them all
    let state = dir.join("scores.jsonl.braze-state.jsonl");
    assert_eq!(state_lines(&state), 1, "only the header");
}
