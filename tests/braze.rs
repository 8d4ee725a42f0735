//! Every template in `docs/braze/` rendered as Braze would send it — a Liquid engine with
//! Braze's `connected_content` (real HTTP calls to a running `sendtime serve`, 5-minute URL
//! cache, 2 s give-up, `:save` of 2xx JSON only, a text body inserted at the tag, `:retry`),
//! `abort_message` and `message_extras` — for a user in every stage of every block, a user
//! per not-eligible reason, an unknown user, an empty catalog and an endpoint answering 503,
//! on a catalog whose every title holds `"`, `&`, `<script>` and Korean; each sent message's
//! extras against the answer it showed; the `min_score` template for a low-scored, a
//! high-scored and an unscored user; and the emulator's own rules (`emulator_rules`).

/// The emulator's own rules, each against Braze's documentation.
#[path = "braze/emulator_rules.rs"]
mod emulator_rules;

use sendtime_tests::braze_liquid::{Braze, MessageExtras, Outcome, MESSAGE_EXTRAS_LIMIT};
use sendtime_tests::{sendtime_bin, ServeProcess};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KEY: &str = "braze-test-key";
const SECRET: &str = "SIGNING_SECRET";
const AS_OF: &str = "2026-11-22T00:00:00Z";
const BLOCKS: [&str; 4] = ["recommendations", "cart", "dormancy", "onboarding"];
/// Users in the generated data.
const USERS: usize = 600;
const EVIL: &str = "\"Best\" & <script>alert(1)</script> 신상";

fn braze_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/braze")
}

/// Every template but the signing snippet: (file name, block, channel).
fn templates() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(braze_dir()).expect("docs/braze") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".liquid") else {
            continue;
        };
        let Some((block, channel)) = stem.split_once('.') else {
            continue;
        };
        out.push((name.clone(), block.to_owned(), channel.to_owned()));
    }
    out.sort();
    assert_eq!(
        out.len(),
        4 * 5,
        "a template per block and channel, plus the HTML fetch: {out:?}"
    );
    out
}

fn template(name: &str, base_url: &str) -> String {
    std::fs::read_to_string(braze_dir().join(name))
        .expect("template")
        .replace("https://sendtime.example.com", base_url)
}

/// A dataset whose every item title is `EVIL` after its own (a directory of its own per call:
/// the tests of this file run at once).
fn evil_data() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("sendtime-braze-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("plain.jsonl");
    let users = USERS.to_string();
    let status = std::process::Command::new(sendtime_bin())
        .args([
            "data",
            "generate",
            "--users",
            users.as_str(),
            "--items",
            "200",
            "--seed",
            "7",
            "--as-of",
            AS_OF,
            "--out",
        ])
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    let evil: String = std::fs::read_to_string(&plain)
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if record["kind"] == "item" {
                let title = format!("{} {EVIL}", record["title"].as_str().unwrap());
                record["title"] = Value::String(title);
            }
            record.to_string() + "\n"
        })
        .collect();
    let data = dir.join("evil.jsonl");
    std::fs::write(&data, evil).unwrap();
    data
}

/// The evil dataset served with a key and a signing secret, as deployed.
async fn evil_serve() -> ServeProcess {
    evil_serve_of(&evil_data()).await
}

async fn evil_serve_of(data: &Path) -> ServeProcess {
    let digest = sendtime_api::auth::sha256(KEY)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    ServeProcess::start(&[
        "--data",
        data.to_str().unwrap(),
        "--now",
        AS_OF,
        "--api-key-sha256",
        &digest,
        "--signing-secret",
        SECRET,
    ])
    .await
}

/// The API's answer to `url` with the key: status and body.
fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("x-sendtime-key", KEY)
        .call()
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

fn json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// A user per stage of each block, and one per reason it is not eligible
/// (`not_eligible:<reason>`): asked of the API itself, over every generated user.
fn users_by_stage(base: &str) -> BTreeMap<(String, String), String> {
    let mut found = BTreeMap::new();
    for block in BLOCKS {
        for n in 1..=USERS {
            let user = format!("u{n:06}");
            let v = json(&format!("{base}/v1/users/{user}/{block}"));
            let stage = match v["stage"].as_str() {
                Some(stage) => stage.to_owned(),
                None => format!("not_eligible:{}", v["reason"].as_str().unwrap_or("none")),
            };
            found.entry((block.to_owned(), stage)).or_insert(user);
        }
    }
    found
}

/// HTML-escaped as Liquid's `escape` and our renderer write it.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn braze() -> Braze {
    Braze::new().with_credential("sendtime", "x-sendtime-key", KEY)
}

/// The answer behind a send: the one URL the emulator called, asked again of the API (a
/// signed URL is judged by its signature alone, the key header ignored).
fn answer_behind(name: &str, braze: &Braze) -> Value {
    let calls = braze.calls();
    assert_eq!(calls.len(), 1, "{name}: one call per send: {calls:?}");
    let (status, body) = get(&calls[0].url);
    assert_eq!(status, 200, "{name}: {}: {body}", calls[0].url);
    serde_json::from_str(&body).unwrap_or_else(|e| {
        panic!(
            "{name}: {} answered no JSON ({e}): Braze saves only JSON, and inserts any other \
             body at the tag, so a template cannot test it",
            calls[0].url
        )
    })
}

/// Sends template `name` to `user` through a fresh emulator and checks it against the
/// answer it was rendered from: aborted as not eligible when the answer says so, else the
/// message (`check_sent`) with the extras the answer implies (`check_extras`). Returns
/// whether it was sent.
fn send_and_check(base: &str, name: &str, block: &str, channel: &str, user: &str) -> bool {
    let mut braze = braze();
    let outcome = braze.send(&template(name, base), &[("user_id", user)]);
    let answer = answer_behind(name, &braze);
    if answer["eligible"] != true {
        assert_eq!(
            outcome,
            Outcome::Aborted(format!("{block}: not eligible")),
            "{name} {user}: {answer}"
        );
        return false;
    }
    let Outcome::Sent(message) = outcome else {
        panic!("{name} {user}: {outcome:?}\n{answer}");
    };
    check_sent(base, name, block, channel, user, &answer, &message.body);
    check_extras(name, user, &answer, &message.extras);
    true
}

/// The `message_extras` every template records: the answer's rec_id, block, stage, source,
/// each item's source by position, degraded — in that order, under Braze's 1,000 bytes.
fn check_extras(name: &str, user: &str, answer: &Value, extras: &MessageExtras) {
    let text = |field: &str| answer[field].as_str().unwrap_or_default().to_owned();
    let sources: Vec<&str> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| item["source"].as_str().expect("an item's source"))
        .collect();
    let expected: Vec<(String, String)> = [
        ("sendtime_rec_id", text("rec_id")),
        ("sendtime_block", text("block")),
        ("sendtime_stage", text("stage")),
        ("sendtime_source", text("source")),
        ("sendtime_sources", sources.join(",")),
        ("sendtime_degraded", answer["degraded"].to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert!(
        !expected[0].1.is_empty(),
        "{name} {user}: no rec_id in {answer}"
    );
    assert_eq!(extras.pairs(), &expected[..], "{name} {user}");
    assert!(
        !extras.truncated() && extras.bytes() <= MESSAGE_EXTRAS_LIMIT,
        "{name} {user}: {} bytes of extras",
        extras.bytes()
    );
    let event_field: serde_json::Map<String, Value> =
        serde_json::from_str(&extras.to_json()).expect("the Send event's message_extras");
    assert_eq!(event_field.len(), 6, "{name} {user}");
}

/// What the message of `channel` for this user and block must be, given the `answer` it was
/// rendered from (and the API's own renderings).
fn check_sent(
    base: &str,
    name: &str,
    block: &str,
    channel: &str,
    user: &str,
    answer: &Value,
    sent: &str,
) {
    let first_title = answer["items"][0]["title"].as_str();
    if channel.starts_with("email") {
        assert!(
            !sent.contains("<script"),
            "{name} {user}: a script got through:\n{sent}"
        );
    }
    assert_eq!(
        sent,
        sent.trim(),
        "{name} {user}: blank lines around the message"
    );
    match channel {
        "email" => {
            if let Some(title) = first_title {
                assert!(
                    sent.contains(&escaped(title)),
                    "{name} {user}: no escaped title:\n{sent}"
                );
            }
            assert!(
                !sent.contains("<h2></h2>"),
                "{name} {user}: empty heading:\n{sent}"
            );
            for bad in ["Now .", "rated  by", "by 0 buyers", "off  for", "% off ,"] {
                assert!(!sent.contains(bad), "{name} {user}: {bad:?} in\n{sent}");
            }
            // every item link tells its position to a Currents click
            for item in answer["items"].as_array().into_iter().flatten() {
                let url = item["url"].as_str().expect("an item's url");
                let sep = if url.contains('?') { '&' } else { '?' };
                let link = format!("{url}{sep}sendtime_pos={}", item["position"]);
                assert!(
                    sent.contains(&format!("href=\"{}\"", escaped(&link))),
                    "{name} {user}: no link to {link}:\n{sent}"
                );
            }
        }
        "email-fetch" => {
            let (status, html) = get(&format!("{base}/v1/users/{user}/{block}?format=html"));
            assert_eq!(status, 200);
            assert_eq!(
                sent,
                html.trim(),
                "{name} {user}: the API's ?format=html, byte for byte"
            );
            assert_eq!(sent, answer["message"]["html"], "{name} {user}");
            assert_eq!(
                sent.matches("data-sendtime-rec-id=").count(),
                1,
                "{name} {user}: the fragment once"
            );
            if let Some(title) = first_title {
                assert!(sent.contains(&escaped(title)), "{name} {user}:\n{sent}");
            }
        }
        "push" | "sms" | "kakao" => {
            let rendered = json(&format!("{base}/v1/users/{user}/{block}?channel={channel}"));
            let field = if channel == "push" { "body" } else { "text" };
            assert_eq!(
                sent,
                rendered["message"][field].as_str().unwrap(),
                "{name} {user}"
            );
            assert!(!sent.is_empty());
            match channel {
                "push" => assert!(sent.chars().count() <= 150, "{name}: {sent}"),
                "sms" => {
                    let bytes = sendtime_render::text::euc_kr_bytes(sent);
                    let kind = rendered["message"]["kind"].as_str().unwrap();
                    assert!(
                        bytes <= if kind == "sms" { 90 } else { 2000 },
                        "{name}: {bytes} bytes"
                    );
                    assert!(!sent.contains('\u{FFFD}'));
                }
                _ => {
                    assert!(sent.chars().count() <= 1000);
                    // a text channel shows titles as they are: intact, and inert as text
                    if let Some(title) = first_title {
                        assert!(
                            sent.contains(title),
                            "{name} {user}: title not intact:\n{sent}"
                        );
                    }
                }
            }
        }
        other => panic!("unknown channel {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_template_sends_every_stage_aborts_every_ineligible_reason_and_records_extras() {
    // GIVEN a deployment whose every title holds " & <script> and Korean, and a user per
    // stage and per not-eligible reason of every block
    let serve = evil_serve().await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        let users = users_by_stage(&base);
        let expected = [
            ("recommendations", &["personalized", "fallback"][..]),
            (
                "cart",
                &[
                    "reminder",
                    "social_proof",
                    "urgency",
                    "alternatives",
                    "not_eligible:cart_empty",
                    "not_eligible:purchased",
                    "not_eligible:too_early",
                ],
            ),
            (
                "dormancy",
                &[
                    "last_interest",
                    "personal_offer",
                    "feedback",
                    "not_eligible:active",
                ],
            ),
            (
                "onboarding",
                &[
                    "welcome",
                    "guide",
                    "incentive",
                    "not_eligible:activated",
                    "not_eligible:expired",
                    "not_eligible:too_early",
                ],
            ),
        ];
        for (block, stages) in expected {
            for stage in stages {
                assert!(
                    users.contains_key(&(block.to_owned(), stage.to_string())),
                    "no {block} user in {stage}: {users:?}"
                );
            }
        }
        // WHEN every template is sent to each of them
        let (mut sent, mut aborted) = (0, 0);
        for (name, block, channel) in templates() {
            for ((b, stage), user) in &users {
                if *b != block {
                    continue;
                }
                // THEN an eligible stage is sent (its content and extras checked against the
                // answer) and every not-eligible reason is aborted
                let was_sent = send_and_check(&base, &name, &block, &channel, user);
                assert_eq!(
                    was_sent,
                    !stage.starts_with("not_eligible"),
                    "{name} {user} ({stage})"
                );
                if was_sent {
                    sent += 1;
                } else {
                    aborted += 1;
                }
            }
        }
        let reasons = users.keys().filter(|(_, s)| s.starts_with("not_")).count();
        assert_eq!(sent, 5 * 12, "five templates × twelve stages");
        assert_eq!(aborted, 5 * reasons, "five templates × {reasons} reasons");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_gets_popular_recommendations_and_no_other_block() {
    let serve = evil_serve().await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        for (name, block, channel) in templates() {
            // WHEN a user the data does not know is sent every template
            let was_sent = send_and_check(&base, &name, &block, &channel, "nobody-we-know");
            // THEN only recommendations (the popular fallback) go out; the rest are aborted
            assert_eq!(was_sent, block == "recommendations", "{name}");
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_catalog_aborts_every_template_that_would_show_items() {
    // GIVEN the data without a single item
    let data = evil_data();
    let text: String = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).unwrap()["kind"] != "item")
        .map(|line| format!("{line}\n"))
        .collect();
    let empty = data.with_file_name("no-items.jsonl");
    std::fs::write(&empty, text).unwrap();
    let serve = evil_serve_of(&empty).await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        // WHEN every template is sent to the first users
        let mut aborted = BTreeMap::new();
        for (name, block, channel) in templates() {
            for n in 1..=20 {
                let user = format!("u{n:06}");
                if !send_and_check(&base, &name, &block, &channel, &user) {
                    *aborted.entry(block.clone()).or_insert(0) += 1;
                }
            }
        }
        // THEN recommendations and carts (nothing to show) are aborted for everyone, and
        // whatever went out matched its answer (send_and_check)
        assert_eq!(
            aborted.get("recommendations"),
            Some(&(5 * 20)),
            "{aborted:?}"
        );
        assert_eq!(aborted.get("cart"), Some(&(5 * 20)), "{aborted:?}");
        let recs = json(&format!("{base}/v1/users/u000001/recommendations"));
        assert_eq!(recs["reason"], "no_items", "{recs}");
    });
}

/// An endpoint that answers every request `503` with `Retry-After`, on a thread.
fn always_503() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"code":"store_unavailable","message":"retry later"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_503_is_retried_then_the_message_is_aborted() {
    let base = always_503();
    for (name, _, _) in templates() {
        let mut braze = braze();
        let outcome = braze.send(&template(&name, &base), &[("user_id", "u000001")]);
        assert_eq!(
            outcome,
            Outcome::Aborted("connected content failed after 6 attempts".into()),
            "{name}"
        );
        let calls = braze.calls();
        assert_eq!(calls.len(), 6, "{name}: the first call and 5 retries");
        assert!(calls.iter().all(|c| c.status() == Some(503)), "{name}");
    }
}

/// The send-worthiness template: recommendations for users scored at least 0.2.
const MIN_SCORE_TEMPLATE: &str = "recommendations_min_score.liquid";

/// `data` with these send scores (user id, score) in place of any it had, as a new file.
fn with_scores(data: &Path, scores: &[(&str, f64)]) -> PathBuf {
    let mut text: String = std::fs::read_to_string(data)
        .unwrap()
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).unwrap()["kind"] != "score")
        .map(|line| format!("{line}\n"))
        .collect();
    for (user, score) in scores {
        let record = serde_json::json!({
            "kind": "score", "user_id": user, "score": score,
            "computed_at": AS_OF, "model": "logistic-l2",
        });
        text.push_str(&format!("{record}\n"));
    }
    let scored = data.with_file_name("scored.jsonl");
    std::fs::write(&scored, text).unwrap();
    scored
}

#[tokio::test(flavor = "multi_thread")]
async fn the_min_score_template_aborts_for_a_low_scored_user_and_sends_the_others() {
    // GIVEN a deployment whose data scores u000001 at 0.05 and u000002 at 0.9, and has no
    // score for u000003
    let data = with_scores(&evil_data(), &[("u000001", 0.05), ("u000002", 0.9)]);
    let serve = evil_serve_of(&data).await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        let text = template(MIN_SCORE_TEMPLATE, &base);
        // WHEN the low scorer's message is sent THEN it is aborted, as low engagement
        assert_eq!(
            braze().send(&text, &[("user_id", "u000001")]),
            Outcome::Aborted("recommendations: low engagement".into())
        );
        // (without min_score they would have had recommendations)
        let unfiltered = json(&format!("{base}/v1/users/u000001/recommendations"));
        assert_eq!(unfiltered["eligible"], true, "{unfiltered}");
        // WHEN the high scorer's and the unscored user's are sent THEN each is the email with
        // every item the API gives them
        // and records the answer's extras
        for user in ["u000002", "u000003"] {
            let mut braze = braze();
            let outcome = braze.send(&text, &[("user_id", user)]);
            let Outcome::Sent(sent) = outcome else {
                panic!("{user}: {outcome:?}")
            };
            let answer = answer_behind(MIN_SCORE_TEMPLATE, &braze);
            let message = sent.body;
            check_sent(
                &base,
                MIN_SCORE_TEMPLATE,
                "recommendations",
                "email",
                user,
                &answer,
                &message,
            );
            check_extras(MIN_SCORE_TEMPLATE, user, &answer, &sent.extras);
            let items = answer["items"].as_array().unwrap();
            assert!(!items.is_empty(), "{user}: {answer}");
            for item in items {
                let title = escaped(item["title"].as_str().unwrap());
                assert!(
                    message.contains(&title),
                    "{user}: {title} not in\n{message}"
                );
            }
        }
    });
    // AND an endpoint answering 503 is retried, then aborted as a failure: never taken for
    // a low scorer
    let mut braze = braze();
    let outcome = braze.send(
        &template(MIN_SCORE_TEMPLATE, &always_503()),
        &[("user_id", "u000001")],
    );
    assert_eq!(
        outcome,
        Outcome::Aborted("connected content failed after 6 attempts".into())
    );
    assert_eq!(braze.calls().len(), 6, "the first call and 5 retries");
}

/// The preview page as headless Chromium (Debian's, installed by scripts/install-tools.sh)
/// renders it: every block for the user, each eligible one in every channel, and not one
/// script element although every title carries `<script>`.
#[tokio::test(flavor = "multi_thread")]
async fn the_preview_page_in_chromium_shows_every_block_and_runs_nothing_from_data() {
    let data = evil_data();
    let serve = evil_serve_of(&data).await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        // the preview asks for the key like the block route (Chromium sends none)
        let (status, _) = {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let response = agent
                .get(&format!("{base}/preview?user_id=u000002"))
                .call()
                .unwrap();
            (response.status().as_u16(), ())
        };
        assert_eq!(
            status, 401,
            "the preview is authenticated when keys are configured"
        );
    });
    // the same data without keys, for a browser
    let open = ServeProcess::start(&["--data", data.to_str().unwrap(), "--now", AS_OF]).await;
    let url = format!("{}/preview?user_id=u000002", open.base_url);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/chromium.sh");
    let out = std::process::Command::new(&script)
        .args(["--dump-dom", &url])
        .output()
        .expect("scripts/chromium.sh (Debian chromium: scripts/install-tools.sh installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium rendered nothing: {dom}"
    );
    for block in BLOCKS {
        assert!(
            dom.contains(&format!("data-block=\"{block}\"")),
            "no {block} section:\n{dom}"
        );
    }
    assert!(
        !dom.contains("<script"),
        "a script element from data:\n{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "titles not shown:\n{dom}"
    );
    let recs = json(&format!(
        "{}/v1/users/u000002/recommendations",
        serve.base_url
    ));
    assert_eq!(recs["eligible"], true);
    for channel in ["email", "push", "sms", "kakao", "email-text"] {
        assert!(
            dom.contains(&format!("data-channel=\"{channel}\"")),
            "no {channel} card:\n{dom}"
        );
    }
}
