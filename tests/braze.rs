//! Every template in `docs/braze/` rendered as Braze would send it — a Liquid engine with
//! Braze's `connected_content` (real HTTP calls to a running `sendtime serve`, 5-minute URL
//! cache, 2 s give-up, `:save` of 2xx JSON only, `:retry`) and `abort_message` — for a user in
//! every stage of every block, a user who is not eligible, an unknown user and an endpoint
//! answering 503, on a catalog whose every title holds `"`, `&`, `<script>` and Korean; and
//! the `min_score` template for a low-scored, a high-scored and an unscored user.

use sendtime_tests::braze_liquid::{Braze, Outcome};
use sendtime_tests::{sendtime_bin, ServeProcess};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KEY: &str = "braze-test-key";
const SECRET: &str = "SIGNING_SECRET";
const AS_OF: &str = "2026-11-22T00:00:00Z";
const BLOCKS: [&str; 4] = ["recommendations", "cart", "dormancy", "onboarding"];
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
    let status = std::process::Command::new(sendtime_bin())
        .args([
            "data", "generate", "--users", "600", "--items", "200", "--seed", "7", "--as-of",
            AS_OF, "--out",
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

/// A user per stage of each block, and one not eligible: asked of the API itself.
fn users_by_stage(base: &str) -> BTreeMap<(String, String), String> {
    let mut found = BTreeMap::new();
    for block in BLOCKS {
        for n in 1..=300 {
            let user = format!("u{n:06}");
            let v = json(&format!("{base}/v1/users/{user}/{block}"));
            let stage = v["stage"].as_str().unwrap_or("not_eligible").to_owned();
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

/// What the message of `channel` for this user and block must be, asked of the API.
fn check_sent(base: &str, name: &str, block: &str, channel: &str, user: &str, sent: &str) {
    let answer = json(&format!("{base}/v1/users/{user}/{block}"));
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
        }
        "email-fetch" => {
            let (status, html) = get(&format!("{base}/v1/users/{user}/{block}?format=html"));
            assert_eq!(status, 200);
            assert_eq!(
                sent,
                html.trim(),
                "{name} {user}: the fetched fragment, as served"
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
async fn every_template_sends_every_stage_aborts_the_ineligible_and_keeps_titles_inert() {
    let serve = evil_serve().await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        let users = users_by_stage(&base);
        let expected_stages = [
            ("recommendations", &["personalized", "fallback"][..]),
            (
                "cart",
                &[
                    "reminder",
                    "social_proof",
                    "urgency",
                    "alternatives",
                    "not_eligible",
                ],
            ),
            (
                "dormancy",
                &[
                    "last_interest",
                    "personal_offer",
                    "feedback",
                    "not_eligible",
                ],
            ),
            (
                "onboarding",
                &["welcome", "guide", "incentive", "not_eligible"],
            ),
        ];
        for (block, stages) in expected_stages {
            for stage in stages {
                assert!(
                    users.contains_key(&(block.to_owned(), stage.to_string())),
                    "no {block} user in {stage}: {users:?}"
                );
            }
        }
        let mut sent = 0;
        for (name, block, channel) in templates() {
            let text = template(&name, &base);
            for ((b, stage), user) in &users {
                if *b != block {
                    continue;
                }
                let outcome = braze().send(&text, &[("user_id", user)]);
                if stage == "not_eligible" {
                    assert_eq!(
                        outcome,
                        Outcome::Aborted(format!("{block}: not eligible")),
                        "{name} {user}"
                    );
                    continue;
                }
                let Outcome::Sent(message) = outcome else {
                    panic!("{name} {user} ({stage}): {outcome:?}");
                };
                check_sent(&base, &name, &block, &channel, user, &message);
                sent += 1;
            }
        }
        assert_eq!(sent, 5 * 12, "five templates × twelve stages");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_gets_popular_recommendations_and_no_other_block() {
    let serve = evil_serve().await;
    let base = serve.base_url.clone();
    tokio::task::block_in_place(|| {
        for (name, block, channel) in templates() {
            let outcome = braze().send(&template(&name, &base), &[("user_id", "nobody-we-know")]);
            if block == "recommendations" {
                let Outcome::Sent(message) = outcome else {
                    panic!("{name}: {outcome:?}")
                };
                check_sent(&base, &name, &block, &channel, "nobody-we-know", &message);
            } else {
                assert_eq!(
                    outcome,
                    Outcome::Aborted(format!("{block}: not eligible")),
                    "{name}"
                );
            }
        }
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
        for user in ["u000002", "u000003"] {
            let outcome = braze().send(&text, &[("user_id", user)]);
            let Outcome::Sent(message) = outcome else {
                panic!("{user}: {outcome:?}")
            };
            check_sent(
                &base,
                MIN_SCORE_TEMPLATE,
                "recommendations",
                "email",
                user,
                &message,
            );
            let answer = json(&format!(
                "{base}/v1/users/{user}/recommendations?limit=4&min_score=0.2"
            ));
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
