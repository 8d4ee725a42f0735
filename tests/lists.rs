//! A real model's lists in, through the real binary: Amazon Personalize batch inference output
//! (read unchanged, from a local file and from `s3://` on moto's S3 server) and a
//! `user_id,item_id,rank` CSV, loaded into DynamoDB Local and into a dataset file for the
//! embedded store; `serve` over either answers each list in the file's order minus what the
//! block's rules filter (sold out, unknown to the catalog), the job's error lines and repeated
//! users reported by file and line.

use sendtime_tests::s3::S3Emulator;
use sendtime_tests::*;
use std::path::Path;
use std::process::Command;

/// Personalize's documented output shape (https://docs.aws.amazon.com/personalize/latest/dg/batch-inference-job-output-examples.html):
/// `{"input": {"userId": …}, "output": {"recommendedItems": […], "scores": […]}, "error": null}`.
fn personalize_line(user: &str, items: &[&str]) -> String {
    let scores: Vec<f64> = (0..items.len()).map(|i| 1.0 / (i as f64 + 2.0)).collect();
    serde_json::json!({"input": {"userId": user}, "output": {"recommendedItems": items, "scores": scores}, "error": null}).to_string()
}

/// Two output files of one job: an error line, a user listed twice (the later line wins),
/// unknown items and a sold-out one.
fn personalize_files() -> [String; 2] {
    [
        [
            personalize_line("alice", &["k05", "s4", "no-such-item", "b1", "t1", "k07", "k08"]),
            r#"{"input": {"userId": "zed"}, "output": null, "error": "User zed is not in the solution version's training data"}"#.to_owned(),
            personalize_line("bob", &["s1", "s2"]),
        ]
        .join("\n")
            + "\n",
        [
            personalize_line("carol", &["no-such-1", "no-such-2"]),
            personalize_line("bob", &["b3", "s2", "t1", "b1"]),
        ]
        .join("\n")
            + "\n",
    ]
}

/// (path, user, what the block must answer): the lists in file order minus sold-out `s4`,
/// unknown items and bob's bought `b1`; carol's list had nothing known (popular items).
const EXPECTED: [(&str, &[&str]); 3] = [
    (
        "/v1/users/alice/recommendations?limit=4",
        &["k05", "b1", "t1", "k07"],
    ),
    (
        "/v1/users/alice/recommendations?limit=5",
        &["k05", "b1", "t1", "k07", "k08"],
    ),
    ("/v1/users/bob/recommendations?limit=3", &["b3", "s2", "t1"]),
];

fn write_fixture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("base.jsonl");
    let lines: Vec<String> = fixture()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn sendtime(args: &[&str]) -> (bool, String) {
    let out = Command::new(sendtime_bin())
        .args(args)
        .output()
        .expect("run sendtime");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn answer(server: &ServeProcess, path: &str) -> serde_json::Value {
    reqwest::get(format!("{}{path}", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn item_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personalize_output_from_s3_and_from_a_file_is_served_in_its_order_minus_what_the_rules_filter(
) {
    // GIVEN the fixture's catalog and users, and a Personalize job's two output files, both
    // on an S3 emulator under one prefix and concatenated in a local file
    let dir = std::env::temp_dir().join(unique_table("sendtime-lists"));
    std::fs::create_dir_all(&dir).unwrap();
    let base = write_fixture(&dir);
    let files = personalize_files();
    let local = dir.join("batch.json.out");
    std::fs::write(&local, files.concat()).unwrap();
    let s3 = S3Emulator::start().await;
    s3.put(
        "ml-output",
        "personalize/2026-12-07/users.json.1.out",
        files[0].clone(),
    )
    .await;
    s3.put(
        "ml-output",
        "personalize/2026-12-07/users.json.2.out",
        files[1].clone(),
    )
    .await;
    s3.put("ml-output", "other/ignored.json.out", "not json\n")
        .await;
    let generated_at = (now() - chrono::Duration::hours(1)).to_rfc3339();
    let table = unique_table("lists");
    let endpoint = dynamodb_endpoint();

    // WHEN the catalog is loaded into DynamoDB Local, then the lists straight from S3
    let (ok, log) = sendtime(&[
        "data",
        "load",
        base.to_str().unwrap(),
        "--table",
        &table,
        "--dynamodb-endpoint",
        &endpoint,
    ]);
    assert!(ok, "{log}");
    let (ok, log) = sendtime(&[
        "data",
        "load",
        "--format",
        "personalize",
        "s3://ml-output/personalize/",
        "--s3-endpoint",
        &s3.endpoint,
        "--generated-at",
        &generated_at,
        "--ttl",
        "7d",
        "--table",
        &table,
        "--dynamodb-endpoint",
        &endpoint,
    ]);
    // THEN the job's error line does not fail the load, and is reported by object and line
    assert!(ok, "{log}");
    assert!(
        log.contains("read 2 file(s) from s3://ml-output/personalize/"),
        "{log}"
    );
    assert!(log.contains("3 list(s) from 5 line(s)"), "{log}");
    assert!(log.contains("1 line(s) the batch job failed for"), "{log}");
    assert!(log.contains("1 duplicate(s)"), "{log}");
    assert!(
        log.contains("s3://ml-output/personalize/2026-12-07/users.json.1.out:2: the batch job's error for user 'zed'"),
        "{log}"
    );
    assert!(
        log.contains("verified: every written key reads back"),
        "{log}"
    );

    // AND the local file, made into a dataset for the embedded store, holds the same lists
    let recs = dir.join("recs.jsonl");
    let (ok, log) = sendtime(&[
        "data",
        "load",
        "--format",
        "personalize",
        local.to_str().unwrap(),
        "--generated-at",
        &generated_at,
        "--out",
        recs.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let written = std::fs::read_to_string(&recs).unwrap();
    let lists: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lists.len(), 3, "alice, bob (once), carol: {written}");
    assert!(lists.iter().all(|l| l["kind"] == "recs"));
    assert_eq!(lists[1]["user_id"], "bob");
    assert_eq!(
        lists[1]["items"],
        serde_json::json!(["b3", "s2", "t1", "b1"]),
        "the later line wins"
    );

    // AND serve over the table and over the files answers the lists in order, filtered
    let as_of = now().to_rfc3339();
    let over_table = ServeProcess::start(&[
        "--table",
        &table,
        "--dynamodb-endpoint",
        &endpoint,
        "--now",
        &as_of,
    ])
    .await;
    let over_files = ServeProcess::start(&[
        "--data",
        base.to_str().unwrap(),
        "--data",
        recs.to_str().unwrap(),
        "--now",
        &as_of,
    ])
    .await;
    for (path, expected) in EXPECTED {
        for server in [&over_table, &over_files] {
            let a = answer(server, path).await;
            assert_eq!(item_ids(&a), expected, "{path}: {a}");
            assert_eq!(a["stage"], "personalized", "{path}: {a}");
            assert!(
                a["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["source"] == "personalized"),
                "{a}"
            );
        }
    }
    for path in [
        "/v1/users/carol/recommendations",
        "/v1/users/zed/recommendations",
        "/v1/users/alice/recommendations?limit=8",
    ] {
        let a = answer(&over_table, path).await;
        let b = answer(&over_files, path).await;
        assert_eq!(a, b, "{path}");
        assert_eq!(a["eligible"], true, "{path}: {a}");
    }
    let carol = answer(&over_table, "/v1/users/carol/recommendations").await;
    assert!(
        carol["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["source"] != "personalized"),
        "nothing of carol's list is in the catalog: {carol}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_item_rank_csv_loads_by_rank_and_an_unreadable_row_fails_the_load_naming_it() {
    // GIVEN a CSV with a header, rows out of rank order, and one row whose rank is not a number
    let dir = std::env::temp_dir().join(unique_table("sendtime-csv"));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("lists.csv");
    std::fs::write(
        &csv,
        "user_id,item_id,rank\nalice,t1,3\nalice,k05,1\nbob,b3,1\nalice,b1,2\nbob,s2,two\n",
    )
    .unwrap();
    let out = dir.join("recs.jsonl");

    // WHEN it is loaded into a dataset file
    let (ok, log) = sendtime(&[
        "data",
        "load",
        "--format",
        "csv",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);

    // THEN the good lists are written in rank order, and the load fails naming the bad row
    assert!(!ok, "an unreadable row must fail the load: {log}");
    assert!(
        log.contains(&format!("{}:6: rank 'two' is not a number", csv.display())),
        "{log}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let lists: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lists[0]["items"], serde_json::json!(["k05", "b1", "t1"]));
    assert_eq!(lists[1]["items"], serde_json::json!(["b3"]));
    let _ = std::fs::remove_dir_all(&dir);
}
