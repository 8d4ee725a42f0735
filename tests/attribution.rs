//! `sendtime events attribution` through the real binary: a hand-built events file in which
//! every number of the report is known (sends of several blocks, stages and sources, opens
//! with and without a dispatch id, a duplicate open, clicks with and without a position,
//! purchases inside and outside the window in two currencies, a send without extras, a
//! degraded send) gives exactly the expected JSON; the Markdown and the SVG chart are
//! written; a bad line is named by its number.

use sendtime_tests::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The subcommand's words (until the integrator wires it as `events attribution`).
const ATTRIBUTION: &[&str] = &["events", "attribution"];

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_table("sendtime-attribution"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `sendtime <attribution> <args>`.
fn attribution(args: &[&str]) -> Output {
    Command::new(sendtime_bin())
        .args(ATTRIBUTION)
        .args(args)
        .output()
        .unwrap()
}

/// The extras a template records.
fn extras(block: &str, stage: &str, sources: &str, degraded: bool) -> Value {
    json!({
        "sendtime_rec_id": format!("rec-{block}-{stage}"),
        "sendtime_block": block,
        "sendtime_stage": stage,
        "sendtime_source": sources.split(',').next().unwrap(),
        "sendtime_sources": sources,
        "sendtime_degraded": degraded.to_string(),
    })
}

/// The hand-built file: 18 events over four days.
fn events() -> String {
    let url = |pos: Option<u32>| match pos {
        Some(p) => format!("https://shop.example/p/42?utm_source=braze&sendtime_pos={p}"),
        None => "https://shop.example/cart".to_owned(),
    };
    let lines = [
        // Four sendtime sends in two dispatches, one degraded, and another campaign's send.
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u1", "campaign_id": "c_rec",
            "channel": "email", "dispatch_id": "d1",
            "extras": extras("recommendations", "", "personalized,personalized,popular,popular", false)}),
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u2", "campaign_id": "c_rec",
            "channel": "email", "dispatch_id": "d1",
            "extras": extras("recommendations", "", "popular,popular,popular,popular", true)}),
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u3", "campaign_id": "c_cart",
            "channel": "email", "dispatch_id": "d2", "extras": extras("cart", "reminder", "cart,cart", false)}),
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u4", "campaign_id": "c_cart",
            "channel": "email", "dispatch_id": "d2", "extras": extras("cart", "urgency", "cart", false)}),
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u5", "campaign_id": "news",
            "channel": "push"}),
        // u1 opens twice (with a dispatch id), u3 once (without one).
        json!({"at": "2026-09-01T09:05:00Z", "event": "opened", "user_id": "u1", "campaign_id": "c_rec", "dispatch_id": "d1"}),
        json!({"at": "2026-09-01T09:06:00Z", "event": "opened", "user_id": "u1", "campaign_id": "c_rec", "dispatch_id": "d1"}),
        json!({"at": "2026-09-01T09:10:00Z", "event": "opened", "user_id": "u3", "campaign_id": "c_cart"}),
        // u1 clicks the third item (popular); u3 the first (cart), then a link without position.
        json!({"at": "2026-09-01T09:12:00Z", "event": "clicked", "user_id": "u1", "campaign_id": "c_rec",
            "dispatch_id": "d1", "url": url(Some(3))}),
        json!({"at": "2026-09-01T09:20:00Z", "event": "clicked", "user_id": "u3", "campaign_id": "c_cart", "url": url(Some(1))}),
        json!({"at": "2026-09-01T09:30:00Z", "event": "clicked", "user_id": "u3", "campaign_id": "c_cart", "url": url(None)}),
        // The other campaign's open, and an open of a send that is not in the file.
        json!({"at": "2026-09-01T10:00:00Z", "event": "opened", "user_id": "u5", "campaign_id": "news"}),
        json!({"at": "2026-09-01T10:00:00Z", "event": "opened", "user_id": "u6", "campaign_id": "c_rec"}),
        // Purchases: u1 after its click (KRW), u3 after its clicks (USD), u2 never clicked.
        json!({"at": "2026-09-01T11:00:00Z", "event": "purchase", "user_id": "u1", "value": 12900, "currency": "KRW"}),
        json!({"at": "2026-09-01T12:00:00Z", "event": "purchase", "user_id": "u3", "value": 1290, "currency": "USD"}),
        json!({"at": "2026-09-01T13:00:00Z", "event": "purchase", "user_id": "u2", "value": 5000, "currency": "KRW"}),
        json!({"at": "2026-09-02T08:00:00Z", "event": "visit", "user_id": "u4"}),
        // u3 buys again 97 hours after the send: outside the 72 h window.
        json!({"at": "2026-09-05T10:00:00Z", "event": "purchase", "user_id": "u3", "value": 990, "currency": "USD"}),
    ];
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

/// A row of counts; `r` are the four rates (open, click, click-to-open, conversion) and the
/// two shares (fallback, degraded).
#[allow(clippy::too_many_arguments)]
fn row(
    sends: u64,
    opens: u64,
    unique_opens: u64,
    clicks: u64,
    unique_clicks: u64,
    conversions: u64,
    purchases: u64,
    revenue: Value,
    fallback: u64,
    popular_block: u64,
    degraded: u64,
) -> Value {
    let rate = |n: u64, d: u64| {
        if d == 0 {
            Value::Null
        } else {
            json!((n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
        }
    };
    json!({
        "sends": sends, "opens": opens, "unique_opens": unique_opens,
        "unique_open_rate": rate(unique_opens, sends),
        "clicks": clicks, "unique_clicks": unique_clicks,
        "unique_click_rate": rate(unique_clicks, sends),
        "click_to_open_rate": rate(unique_clicks, unique_opens),
        "conversions": conversions, "conversion_rate": rate(conversions, sends),
        "purchases": purchases, "revenue": revenue,
        "fallback_sends": fallback, "fallback_share": rate(fallback, sends),
        "popular_block_sends": popular_block,
        "degraded_sends": degraded, "degraded_share": rate(degraded, sends),
    })
}

/// `extra` merged into `base` (an object).
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Items at a position or of a source.
#[allow(clippy::too_many_arguments)]
fn items(
    shown: u64,
    opened: u64,
    clicks: u64,
    unique_clicks: u64,
    click_rate: f64,
    conversions: u64,
    purchases: u64,
    revenue: Value,
) -> Value {
    json!({"shown": shown, "opened": opened, "clicks": clicks, "unique_clicks": unique_clicks,
        "click_rate": click_rate, "conversions": conversions, "purchases": purchases, "revenue": revenue})
}

fn expected() -> Value {
    let none = json!({});
    let krw = json!({"KRW": 12900});
    let usd = json!({"USD": 1290});
    let recommendations = row(2, 2, 1, 1, 1, 1, 1, krw.clone(), 2, 1, 1);
    let cart = row(2, 1, 1, 2, 1, 1, 1, usd.clone(), 0, 0, 0);
    json!({
        "settings": {"window_hours": 72, "conversion_credit": "click"},
        "input": {
            "events": 18,
            "first": "2026-09-01T09:00:00Z",
            "last": "2026-09-05T10:00:00Z",
            "by_type": {"bounced": 0, "clicked": 3, "opened": 5, "purchase": 4, "sent": 5,
                "unsubscribed": 0, "visit": 1},
            "peak_sends_in_window": 5
        },
        "sends": {"total": 5, "with_sendtime_extras": 4, "without_sendtime_extras": 1, "extras_problems": {}},
        "unattributed": {"opens": 1, "clicks": 0, "purchases": 2, "revenue": {"KRW": 5000, "USD": 990},
            "unreadable_positions": 0, "positions_past_sources": 0},
        "sendtime": row(4, 3, 2, 3, 2, 2, 2, json!({"KRW": 12900, "USD": 1290}), 2, 1, 1),
        "other_campaigns": row(1, 1, 1, 0, 0, 0, 0, none.clone(), 0, 0, 0),
        "by_block": [
            with(json!({"block": "cart"}), cart.clone()),
            with(json!({"block": "recommendations"}), recommendations.clone()),
        ],
        "by_stage": [
            with(json!({"block": "cart", "stage": "reminder"}), row(1, 1, 1, 2, 1, 1, 1, usd.clone(), 0, 0, 0)),
            with(json!({"block": "cart", "stage": "urgency"}), row(1, 0, 0, 0, 0, 0, 0, none.clone(), 0, 0, 0)),
            with(json!({"block": "recommendations", "stage": null}), recommendations),
        ],
        "by_source": [
            with(json!({"source": "cart"}), cart),
            with(json!({"source": "personalized"}), row(1, 2, 1, 1, 1, 1, 1, krw.clone(), 1, 0, 0)),
            with(json!({"source": "popular"}), row(1, 0, 0, 0, 0, 0, 0, none.clone(), 1, 1, 1)),
        ],
        "by_position": [
            with(json!({"position": 1, "by_source": [
                with(json!({"source": "cart"}), items(2, 1, 1, 1, 0.5, 0, 0, none.clone())),
                with(json!({"source": "personalized"}), items(1, 1, 0, 0, 0.0, 0, 0, none.clone())),
                with(json!({"source": "popular"}), items(1, 0, 0, 0, 0.0, 0, 0, none.clone())),
            ]}), items(4, 2, 1, 1, 0.25, 0, 0, none.clone())),
            with(json!({"position": 2, "by_source": [
                with(json!({"source": "cart"}), items(1, 1, 0, 0, 0.0, 0, 0, none.clone())),
                with(json!({"source": "personalized"}), items(1, 1, 0, 0, 0.0, 0, 0, none.clone())),
                with(json!({"source": "popular"}), items(1, 0, 0, 0, 0.0, 0, 0, none.clone())),
            ]}), items(3, 2, 0, 0, 0.0, 0, 0, none.clone())),
            with(json!({"position": 3, "by_source": [
                with(json!({"source": "popular"}), items(2, 1, 1, 1, 0.5, 1, 1, krw.clone())),
            ]}), items(2, 1, 1, 1, 0.5, 1, 1, krw.clone())),
            with(json!({"position": 4, "by_source": [
                with(json!({"source": "popular"}), items(2, 1, 0, 0, 0.0, 0, 0, none.clone())),
            ]}), items(2, 1, 0, 0, 0.0, 0, 0, none.clone())),
            {"position": null, "shown": null, "opened": null, "clicks": 1, "unique_clicks": 1,
                "click_rate": null, "conversions": 1, "purchases": 1, "revenue": usd, "by_source": []},
        ],
        "by_item_source": [
            with(json!({"source": "cart"}), items(3, 2, 1, 1, 0.3333, 0, 0, none.clone())),
            with(json!({"source": "personalized"}), items(2, 2, 0, 0, 0.0, 0, 0, none)),
            with(json!({"source": "popular"}), items(6, 2, 1, 1, 0.1667, 1, 1, krw)),
        ],
    })
}

#[test]
fn a_hand_built_events_file_gives_exactly_the_expected_report() {
    // GIVEN the hand-built events file
    let dir = workdir();
    let events_path = dir.join("events.jsonl");
    std::fs::write(&events_path, events()).unwrap();
    let (md, json_path, chart) = (
        dir.join("report.md"),
        dir.join("report.json"),
        dir.join("chart.svg"),
    );
    // WHEN it is attributed with the defaults, writing all three outputs
    let out = attribution(&[
        "--events",
        s(&events_path),
        "--out-md",
        s(&md),
        "--out-json",
        s(&json_path),
        "--chart",
        s(&chart),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed:\n{stderr}");
    // THEN the JSON is exactly the expected report
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let want = expected();
    assert_eq!(
        got,
        want,
        "got:\n{}\nwant:\n{}",
        serde_json::to_string_pretty(&got).unwrap(),
        serde_json::to_string_pretty(&want).unwrap()
    );
    // AND the Markdown has its tables with rates over their denominators
    let md = std::fs::read_to_string(&md).unwrap();
    for text in [
        "| with sendtime extras | 4 / 5 (80.0 %) |",
        "| without sendtime extras (other campaigns, reported apart) | 1 / 5 (20.0 %) |",
        "at least one item from the global popular list | 2 / 4 (50.0 %) |",
        "with a degraded answer (store unreadable, fallback content) | 1 / 4 (25.0 %) |",
        "| `cart` | `reminder` | 1 | 1 / 1 (100.0 %) | 2 | 1 / 1 (100.0 %) | 1 / 1 (100.0 %) | $12.90 |",
        "| **all sendtime sends** | 4 | 2 / 4 (50.0 %) | 3 | 2 / 4 (50.0 %) | 2 / 4 (50.0 %) | ₩12,900; $12.90 |",
        "| 3 | 2 | 1 | 1 | 1 / 2 (50.0 %) | 1 | ₩12,900 | `popular` 2 |",
        "| unknown | – | – | 1 | 1 | 1 | $12.90 | – |",
        "- purchases that converted no send: 2 (revenue ₩5,000; $9.90)",
    ] {
        assert!(md.contains(text), "no {text:?} in\n{md}");
    }
    // AND the chart is an SVG naming positions, sources and stages
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    for text in [
        "#1",
        "#4",
        "personalized",
        "popular",
        "cart/reminder",
        "conversions",
    ] {
        assert!(svg.contains(text), "no {text:?} in the chart");
    }
    // AND stderr summarises the run
    assert!(stderr.contains("attributed 18 events"), "{stderr}");
}

#[test]
fn without_out_md_the_markdown_goes_to_stdout_and_open_credit_is_reported() {
    // GIVEN the same file
    let dir = workdir();
    let events_path = dir.join("events.jsonl");
    std::fs::write(&events_path, events()).unwrap();
    // WHEN attributed crediting opens, with a JSON output only
    let json_path = dir.join("report.json");
    let out = attribution(&[
        "--events",
        s(&events_path),
        "--credit",
        "open",
        "--out-json",
        s(&json_path),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // THEN the Markdown is on stdout and says what credits a purchase
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("# Attribution"), "{stdout}");
    assert!(
        stdout.contains("after an open of it or a click on it"),
        "{stdout}"
    );
    // AND the report says the credit; the conversions are unchanged (both buyers clicked)
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(got["settings"]["conversion_credit"], "open");
    assert_eq!(got["sendtime"]["conversions"], 2);
}

#[test]
fn a_bad_line_is_named_by_its_number_and_file() {
    // GIVEN an events file whose third line is not an event
    let dir = workdir();
    let path = dir.join("broken.jsonl");
    let mut text: String = events()
        .lines()
        .take(2)
        .map(|l| l.to_owned() + "\n")
        .collect();
    text.push_str("{\"at\": \"2026-09-01T09:00:00Z\", \"event\": \"sent\"\n");
    std::fs::write(&path, text).unwrap();
    // WHEN attributed
    let out = attribution(&["--events", s(&path)]);
    // THEN it fails naming the flag, the file and line 3
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--events") && stderr.contains("broken.jsonl") && stderr.contains("line 3"),
        "{stderr}"
    );
}

#[test]
fn a_window_past_braze_s_30_days_is_refused_naming_the_flag() {
    // GIVEN a window of 31 days WHEN attributed THEN the flag is named
    let dir = workdir();
    let path = dir.join("events.jsonl");
    std::fs::write(&path, events()).unwrap();
    let out = attribution(&["--events", s(&path), "--window-hours", "744"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--window-hours must be 1–720"), "{stderr}");
}

/// splitmix64: a fixed, dependency-free stream of numbers for the generated file.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

/// Writes about `target` events: one campaign a day to 100,000 of 1,000,000 users, with
/// extras from a few blocks, stages and sources; ~20 % opened, ~5 % clicked at a position,
/// ~1 % buying; visits filling the rest. In time order.
fn generate(path: &Path, target: u64) -> u64 {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut mix = Mix(7);
    let kinds = [
        (
            "recommendations",
            "",
            "personalized,personalized,category_popular,popular",
        ),
        ("recommendations", "", "popular,popular,popular,popular"),
        ("cart", "reminder", "cart,cart"),
        (
            "cart",
            "alternatives",
            "category_popular,category_popular,popular",
        ),
        ("dormancy", "last_interest", "history,history,popular"),
    ];
    let start = 1_788_220_800i64; // 2026-09-01T00:00:00Z
    let mut written = 0u64;
    let mut day = 0i64;
    while written < target {
        let mut events: Vec<(i64, String)> = Vec::new();
        let campaign = format!("c{day:03}");
        for i in 0..100_000u64 {
            let user = format!("u{:07}", mix.next() % 1_000_000);
            let at = start + day * 86_400 + (i as i64 * 3_600) / 100_000;
            let (block, stage, sources) = kinds[(mix.next() % kinds.len() as u64) as usize];
            let degraded = mix.chance(0.01);
            let send = json!({"at": ts(at), "event": "sent", "user_id": user, "campaign_id": campaign,
                "channel": "email", "dispatch_id": format!("d{day}"),
                "extras": {"sendtime_rec_id": format!("{:016x}", mix.next()), "sendtime_block": block,
                    "sendtime_stage": stage, "sendtime_source": sources.split(',').next().unwrap(),
                    "sendtime_sources": sources, "sendtime_degraded": degraded.to_string()}});
            events.push((at, send.to_string()));
            if mix.chance(0.2) {
                let opened = at + (mix.next() % 86_400) as i64;
                events.push((
                    opened,
                    json!({"at": ts(opened), "event": "opened", "user_id": user,
                    "campaign_id": campaign, "dispatch_id": format!("d{day}")})
                    .to_string(),
                ));
                if mix.chance(0.25) {
                    let clicked = opened + (mix.next() % 600) as i64;
                    let pos = 1 + mix.next() % sources.split(',').count() as u64;
                    let url = format!(
                        "https://shop.example/p/{}?sendtime_pos={pos}",
                        mix.next() % 5000
                    );
                    events.push((
                        clicked,
                        json!({"at": ts(clicked), "event": "clicked", "user_id": user,
                        "campaign_id": campaign, "url": url})
                        .to_string(),
                    ));
                    if mix.chance(0.2) {
                        let bought = clicked + (mix.next() % 200_000) as i64;
                        let (value, currency) = if mix.chance(0.8) {
                            (12_900, "KRW")
                        } else {
                            (1_290, "USD")
                        };
                        events.push((
                            bought,
                            json!({"at": ts(bought), "event": "purchase", "user_id": user,
                            "value": value, "currency": currency})
                            .to_string(),
                        ));
                    }
                }
            }
        }
        for _ in 0..25_000 {
            let at = start + day * 86_400 + (mix.next() % 86_400) as i64;
            let user = format!("u{:07}", mix.next() % 1_000_000);
            events.push((
                at,
                json!({"at": ts(at), "event": "visit", "user_id": user}).to_string(),
            ));
        }
        // Events of a day may spill into the next ones; keep only those of this day in order,
        // carried ones are rare enough to clamp to the day's end.
        let day_end = start + (day + 1) * 86_400 - 1;
        for (at, line) in events.iter_mut() {
            if *at > day_end {
                let v: Value = serde_json::from_str(line).unwrap();
                let mut v = v;
                v["at"] = json!(ts(day_end));
                *line = v.to_string();
                *at = day_end;
            }
        }
        events.sort_by_key(|(at, _)| *at);
        for (_, line) in &events {
            writeln!(out, "{line}").unwrap();
        }
        written += events.len() as u64;
        day += 1;
    }
    out.flush().unwrap();
    written
}

fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The figures of the benchmarks: `cargo test -p sendtime-tests --test attribution --
/// --ignored --nocapture attribution_of_a_few_million_events` (ATTRIBUTION_EVENTS sets the
/// size, default 3,000,000). Prints events per second and the peak memory (`/usr/bin/time`).
#[test]
#[ignore]
fn attribution_of_a_few_million_events_runs_in_bounded_memory() {
    // GIVEN a few million generated events
    let target: u64 = std::env::var("ATTRIBUTION_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let dir = workdir();
    let path = dir.join("events.jsonl");
    let events = generate(&path, target);
    let size = std::fs::metadata(&path).unwrap().len();
    // WHEN attributed under /usr/bin/time
    let json_path = dir.join("report.json");
    let started = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(sendtime_bin())
        .args(ATTRIBUTION)
        .args([
            "--events",
            s(&path),
            "--out-json",
            s(&json_path),
            "--out-md",
            s(&dir.join("report.md")),
        ])
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    println!(
        "{events} events ({:.0} MiB) in {seconds:.1} s: {:.0} events/s; peak RSS {:.0} MiB; at most {} sends held at once of {}",
        size as f64 / 1_048_576.0,
        events as f64 / seconds,
        peak_kib as f64 / 1024.0,
        report["input"]["peak_sends_in_window"],
        report["sends"]["total"]
    );
    // THEN every event is read and memory stays far under the file's size
    assert_eq!(report["input"]["events"], events);
    assert!(
        peak_kib * 1024 < size / 2,
        "peak {peak_kib} KiB for a {size}-byte file"
    );
}
