//! The real binary, end to end: `sendtime data generate | sendtime data load` into DynamoDB
//! Local, then `sendtime serve --table` answers exactly what `sendtime serve` on the embedded
//! store answers for the same dataset; send scores loaded the same way are answered and
//! honoured (`min_score`) by both.

use sendtime_tests::*;
use std::process::{Command, Stdio};

/// The data's and the servers' "now": today at midnight UTC, not a fixed date. The lists
/// live 7 days and their `ttl` attribute is real epoch time: DynamoDB Local deletes them once
/// the calendar passes it (in the background, a few at a time), so with a fixed date the
/// table lost lists the embedded store still had, from a week after that date on.
static AS_OF: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("{}T00:00:00Z", chrono::Utc::now().date_naive()));
const USERS: usize = 300;

fn generate_args() -> Vec<String> {
    [
        "data",
        "generate",
        "--users",
        &USERS.to_string(),
        "--items",
        "150",
        "--seed",
        "7",
        "--as-of",
        AS_OF.as_str(),
    ]
    .map(String::from)
    .to_vec()
}

/// `serve` over `table` in DynamoDB Local and `serve` over the dataset `file` on the
/// embedded store, both with the clock pinned to [`AS_OF`]: (table, file).
async fn serve_table_and_file(table: &str, file: &str) -> (ServeProcess, ServeProcess) {
    let dynamo = ServeProcess::start(&[
        "--table",
        table,
        "--dynamodb-endpoint",
        &dynamodb_endpoint(),
        "--now",
        AS_OF.as_str(),
    ])
    .await;
    let embedded = ServeProcess::start(&["--data", file, "--now", AS_OF.as_str()]).await;
    (dynamo, embedded)
}

fn load(table: &str, extra: &[&str], stdin: Stdio) -> std::process::Output {
    Command::new(sendtime_bin())
        .args([
            "data",
            "load",
            "--table",
            table,
            "--dynamodb-endpoint",
            &dynamodb_endpoint(),
        ])
        .args(extra)
        .stdin(stdin)
        .output()
        .expect("run sendtime data load")
}

/// `sendtime data generate | sendtime data load --table TABLE <extra>`: the load's output.
fn generate_into(table: &str, extra: &[&str]) -> std::process::Output {
    let mut generate = Command::new(sendtime_bin())
        .args(generate_args())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let piped = Stdio::from(generate.stdout.take().unwrap());
    let loaded = load(table, extra, piped);
    assert!(generate.wait().unwrap().success());
    loaded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_load_serve_matches_the_embedded_store() {
    let dir = std::env::temp_dir().join(unique_table("sendtime-roundtrip"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.jsonl");
    let table = unique_table("roundtrip");

    // GIVEN generate piped into load
    let loaded = generate_into(&table, &[]);
    let stderr = String::from_utf8_lossy(&loaded.stderr);
    assert!(loaded.status.success(), "load failed: {stderr}");
    assert!(stderr.contains("verified"), "{stderr}");

    // AND the same dataset in a file for the embedded store
    let written = Command::new(sendtime_bin())
        .args(generate_args())
        .args(["--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(written.status.success());

    // WHEN both servers run with the same pinned clock
    let (dynamo, embedded) = serve_table_and_file(&table, file.to_str().unwrap()).await;

    // THEN every block of every user, and the edge cases, answer identically
    let client = reqwest::Client::new();
    let mut paths: Vec<String> = Vec::new();
    for n in 1..=USERS {
        for block in sendtime_domain::BlockKind::ALL {
            paths.push(format!("/v1/users/u{n:06}/{block}"));
        }
    }
    paths.extend(
        [
            "/v1/users/u000001/recommendations?limit=30",
            "/v1/users/u000002/cart?limit=1",
            "/v1/users/not-in-dataset/recommendations",
            "/v1/users/not-in-dataset/cart",
            "/v1/users/not-in-dataset/dormancy",
            "/v1/users/not-in-dataset/onboarding",
            "/v1/users/..%2F/cart",
            "/v1/users/u000001/nope",
            "/v1/users/u000001/cart?limit=0",
        ]
        .map(String::from),
    );
    let mut stages = std::collections::BTreeSet::new();
    for path in &paths {
        let a = client
            .get(format!("{}{path}", embedded.base_url))
            .send()
            .await
            .unwrap();
        let b = client
            .get(format!("{}{path}", dynamo.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), b.status(), "{path}");
        let a: serde_json::Value = a.json().await.unwrap();
        let b: serde_json::Value = b.json().await.unwrap();
        assert_eq!(a, b, "{path}");
        if let Some(stage) = a.get("stage").and_then(|s| s.as_str()) {
            stages.insert(format!(
                "{}:{stage}",
                a["block"].as_str().unwrap_or_default()
            ));
        }
    }
    // The generated data exercises every stage, so the comparison covers every code path.
    for expected in [
        "recommendations:personalized",
        "recommendations:fallback",
        "cart:reminder",
        "cart:social_proof",
        "cart:urgency",
        "cart:alternatives",
        "dormancy:last_interest",
        "dormancy:personal_offer",
        "dormancy:feedback",
        "onboarding:welcome",
        "onboarding:guide",
        "onboarding:incentive",
    ] {
        assert!(stages.contains(expected), "no {expected} in {stages:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_reports_unreadable_lines_by_number_loads_the_rest_and_fails() {
    let table = unique_table("badlines");
    let good = r#"{"kind":"popular","scope":"global","items":["i1"]}"#;
    let item = r#"{"kind":"item","item_id":"i1","title":"러닝화","category":"shoes","url":"u","image_url":"i","price":1000,"currency":"KRW","stock":3}"#;
    let input = format!(
        "{good}\n{item}\nnot json at all\n\n{{\"kind\":\"user\",\"user_id\":\"../etc\"}}\n"
    );
    let mut child = Command::new(sendtime_bin())
        .args([
            "data",
            "load",
            "--table",
            &table,
            "--dynamodb-endpoint",
            &dynamodb_endpoint(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "bad lines must fail the load: {stderr}"
    );
    assert!(stderr.contains("standard input:3: unreadable"), "{stderr}");
    assert!(stderr.contains("standard input:5: unreadable"), "{stderr}");
    assert!(stderr.contains("loaded 2 of 2 records"), "{stderr}");
    assert!(stderr.contains("2 unreadable line(s)"), "{stderr}");
}

#[test]
fn reloading_the_same_dataset_is_idempotent() {
    let dir = std::env::temp_dir().join(unique_table("sendtime-reload"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.jsonl");
    let out = Command::new(sendtime_bin())
        .args([
            "data",
            "generate",
            "--users",
            "40",
            "--items",
            "30",
            "--seed",
            "3",
            "--as-of",
            AS_OF.as_str(),
        ])
        .args(["--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = unique_table("reload");
    for _ in 0..2 {
        let out = load(&table, &["--file", file.to_str().unwrap()], Stdio::null());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("verified"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn load_without_a_table_names_the_flag() {
    let out = Command::new(sendtime_bin())
        .args(["data", "load"])
        .env_remove("SENDTIME_TABLE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--table"));
}

fn copy_cli(args: &[&str]) -> std::process::Output {
    Command::new(sendtime_bin())
        .arg("copy")
        .args(args)
        .output()
        .expect("run sendtime copy")
}

/// `sendtime copy put` into DynamoDB Local changes what a running `serve` renders once its
/// copy cache expires — no restart; a record with a placeholder its slot lacks is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_record_put_in_dynamodb_changes_the_rendered_block_after_the_copy_ttl() {
    let table = unique_table("copy");
    assert!(generate_into(&table, &["--no-verify"]).status.success());
    let endpoint = dynamodb_endpoint();
    let serve = ServeProcess::start(&[
        "--table",
        &table,
        "--dynamodb-endpoint",
        &endpoint,
        "--now",
        AS_OF.as_str(),
        "--cache-copy-ttl-secs",
        "1",
    ])
    .await;
    let client = reqwest::Client::new();
    // a user whose recommendations are personalized
    let mut user = None;
    for n in 1..=USERS {
        let url = format!("{}/v1/users/u{n:06}/recommendations", serve.base_url);
        let v: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        if v["stage"] == "personalized" {
            user = Some(format!("u{n:06}"));
            break;
        }
    }
    let user = user.expect("a personalized user");
    let push = format!(
        "{}/v1/users/{user}/recommendations?channel=push&locale=ko",
        serve.base_url
    );
    let title = |v: serde_json::Value| v["message"]["title"].as_str().unwrap().to_owned();
    let before = title(
        client
            .get(&push)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(before, "회원님을 위한 추천 상품");

    let target = ["--table", &table, "--dynamodb-endpoint", &endpoint];
    let refused = copy_cli(
        &[
            &[
                "put",
                "recommendations.personalized",
                "--locale",
                "ko",
                "--title",
                "{rating}점 상품",
            ][..],
            &target[..],
        ]
        .concat(),
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("{rating} is not available in recommendations.personalized"),
        "{said}"
    );

    let put = copy_cli(
        &[
            &[
                "put",
                "recommendations.personalized",
                "--channel",
                "push",
                "--locale",
                "ko",
                "--title",
                "{item} 외 {count}개, 오늘만 특가",
            ][..],
            &target[..],
        ]
        .concat(),
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let listed = copy_cli(&[&["list"][..], &target[..]].concat());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("오늘만 특가"));
    let got = copy_cli(
        &[
            &[
                "get",
                "recommendations.personalized",
                "--channel",
                "push",
                "--locale",
                "ko",
            ][..],
            &target[..],
        ]
        .concat(),
    );
    let got = String::from_utf8_lossy(&got.stdout).into_owned();
    assert!(
        got.contains("record") && got.contains("{item} 외 {count}개, 오늘만 특가"),
        "{got}"
    );

    // within the copy TTL (1 s here) the running server shows the new words
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let v: serde_json::Value = client
            .get(&push)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let now = title(v.clone());
        if now != before || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let first = after["items"][0]["title"].as_str().unwrap().to_owned();
    let shown = title(after);
    // the push title is cut at 50 characters; the words are the record's
    assert!(
        shown.starts_with(&first.chars().take(10).collect::<String>()),
        "{shown}"
    );
    assert!(
        shown.contains("오늘만 특가") || shown.ends_with('…'),
        "{shown}"
    );
    // other channels keep the built-in words
    let email = format!(
        "{}/v1/users/{user}/recommendations?format=text&locale=ko",
        serve.base_url
    );
    let text = client
        .get(&email)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("회원님을 위한 추천 상품"), "{text}");
}

/// A generated dataset of `users` users with these send scores in place of any it had, as a
/// file: (user id, score) pairs, each computed at [`SCORED_AT`].
fn dataset_with_scores(dir: &std::path::Path, users: usize, scores: &[(&str, f64)]) -> String {
    let out = Command::new(sendtime_bin())
        .args(["data", "generate", "--users", &users.to_string()])
        .args(["--items", "60", "--seed", "11", "--as-of", AS_OF.as_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text: String = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.contains(r#""kind":"score""#))
        .map(|line| format!("{line}\n"))
        .collect();
    for (user, score) in scores {
        let record = serde_json::json!({
            "kind": "score", "user_id": user, "score": score,
            "computed_at": SCORED_AT, "model": "logistic-l2",
        });
        text.push_str(&format!("{record}\n"));
    }
    let file = dir.join("scored.jsonl");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

/// When the scores of [`dataset_with_scores`] were computed.
const SCORED_AT: &str = "2026-11-21T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_load_into_dynamodb_and_the_embedded_store_and_serve_answers_and_honours_them() {
    // GIVEN a dataset file with score lines: u000001 likely to open, u000002 not, u000003
    // without a score
    let dir = std::env::temp_dir().join(unique_table("sendtime-scores"));
    std::fs::create_dir_all(&dir).unwrap();
    let users = 30;
    let file = dataset_with_scores(&dir, users, &[("u000001", 0.9), ("u000002", 0.05)]);
    // WHEN it is loaded into DynamoDB Local with the real binary
    let table = unique_table("scores");
    let loaded = load(&table, &["--file", &file], Stdio::null());
    let stderr = String::from_utf8_lossy(&loaded.stderr);
    assert!(loaded.status.success(), "load failed: {stderr}");
    assert!(stderr.contains("verified"), "{stderr}");
    // AND served from that table, and from the file on the embedded store
    let (dynamo, embedded) = serve_table_and_file(&table, &file).await;
    let client = reqwest::Client::new();
    for serve in [&dynamo, &embedded] {
        let get = |path: &str| {
            let url = format!("{}{path}", serve.base_url);
            let client = client.clone();
            async move {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                response.json::<serde_json::Value>().await.unwrap()
            }
        };
        // THEN blocks answer each user's score
        let high = get("/v1/users/u000001/recommendations").await;
        assert_eq!(high["send_score"], 0.9, "{}: {high}", serve.base_url);
        assert_eq!(high["send_score_at"], SCORED_AT);
        // AND min_score keeps the high scorer's answer as it is
        let passed = get("/v1/users/u000001/recommendations?min_score=0.2").await;
        assert_eq!(passed, high);
        // AND drops the low scorer: not eligible, low_engagement, score given
        let low = get("/v1/users/u000002/recommendations?min_score=0.2").await;
        assert_eq!(
            (&low["eligible"], &low["reason"], &low["send_score"]),
            (&false.into(), &"low_engagement".into(), &0.05.into()),
            "{}: {low}",
            serve.base_url
        );
        // AND leaves the unscored user unchanged
        let plain = get("/v1/users/u000003/recommendations").await;
        assert_eq!(plain["send_score"], serde_json::Value::Null);
        assert_eq!(
            get("/v1/users/u000003/recommendations?min_score=0.9").await,
            plain
        );
    }
    // AND both stores answer every block of every user alike, with and without min_score
    for n in 1..=users {
        for block in sendtime_domain::BlockKind::ALL {
            for query in ["", "?min_score=0.5"] {
                let path = format!("/v1/users/u{n:06}/{block}{query}");
                let [a, b] = [&dynamo, &embedded].map(|s| format!("{}{path}", s.base_url));
                let a: serde_json::Value =
                    client.get(a).send().await.unwrap().json().await.unwrap();
                let b: serde_json::Value =
                    client.get(b).send().await.unwrap().json().await.unwrap();
                assert_eq!(a, b, "{path}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
