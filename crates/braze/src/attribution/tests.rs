//! Unit tests of the join's rules, on small hand-written event files.

use super::*;
use serde_json::json;

/// One event line from a JSON value.
fn line(value: serde_json::Value) -> String {
    value.to_string() + "\n"
}

/// A send of `campaign` to `user` at `at` with the extras of a recommendations block.
fn send(at: &str, user: &str, campaign: &str, dispatch: Option<&str>, sources: &str) -> String {
    let mut v = json!({"at": at, "event": "sent", "user_id": user, "campaign_id": campaign,
        "channel": "email",
        "extras": {"sendtime_rec_id": "r", "sendtime_block": "recommendations", "sendtime_stage": "",
            "sendtime_source": sources.split(',').next().unwrap_or(""), "sendtime_sources": sources,
            "sendtime_degraded": "false"}});
    if let Some(d) = dispatch {
        v["dispatch_id"] = json!(d);
    }
    line(v)
}

fn engage(kind: &str, at: &str, user: &str, campaign: &str, dispatch: Option<&str>) -> String {
    let mut v = json!({"at": at, "event": kind, "user_id": user, "campaign_id": campaign});
    if let Some(d) = dispatch {
        v["dispatch_id"] = json!(d);
    }
    line(v)
}

fn click_url(at: &str, user: &str, campaign: &str, url: &str) -> String {
    line(
        json!({"at": at, "event": "clicked", "user_id": user, "campaign_id": campaign, "url": url}),
    )
}

fn purchase(at: &str, user: &str, value: i64, currency: &str) -> String {
    line(
        json!({"at": at, "event": "purchase", "user_id": user, "value": value, "currency": currency}),
    )
}

fn run(lines: &[String], settings: Settings) -> Report {
    attribute(lines.concat().as_bytes(), settings, 0, |_, _| {}).unwrap()
}

#[test]
fn an_open_with_a_dispatch_id_belongs_to_the_send_of_that_dispatch() {
    // GIVEN two sends of one campaign in two dispatches, the first showing popular items
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", Some("d1"), "popular"),
        send(
            "2026-09-01T10:00:00Z",
            "u1",
            "c1",
            Some("d2"),
            "personalized",
        ),
        // WHEN an open names the first dispatch
        engage("opened", "2026-09-01T11:00:00Z", "u1", "c1", Some("d1")),
    ];
    let report = run(&events, Settings::default());
    // THEN the first send is opened, not the latest one
    let popular = &report.by_source[1];
    assert_eq!(popular.source.as_deref(), Some("popular"));
    assert_eq!(popular.row.unique_opens, 1);
    assert_eq!(report.by_source[0].row.unique_opens, 0);
}

#[test]
fn an_open_without_a_dispatch_id_belongs_to_the_latest_earlier_send_of_the_campaign() {
    // GIVEN two sends of c1 and one of c2 to the same user
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", Some("d1"), "popular"),
        send(
            "2026-09-01T10:00:00Z",
            "u1",
            "c1",
            Some("d2"),
            "personalized",
        ),
        send("2026-09-01T10:30:00Z", "u1", "c2", None, "cart"),
        // WHEN an open of c1 carries no dispatch id, and one names a dispatch never sent
        engage("opened", "2026-09-01T11:00:00Z", "u1", "c1", None),
        engage("opened", "2026-09-01T11:05:00Z", "u1", "c2", Some("d9")),
    ];
    let report = run(&events, Settings::default());
    // THEN the first goes to the latest c1 send and the second to the c2 send (no dispatch)
    let rows: Vec<(Option<&str>, u64)> = report
        .by_source
        .iter()
        .map(|s| (s.source.as_deref(), s.row.unique_opens))
        .collect();
    assert_eq!(
        rows,
        [
            (Some("cart"), 1),
            (Some("personalized"), 1),
            (Some("popular"), 0)
        ]
    );
    assert_eq!(report.unattributed.opens, 0);
}

#[test]
fn an_open_whose_dispatch_id_contradicts_the_only_send_is_unattributed() {
    // GIVEN one send of c1 in dispatch d1
    let events = [
        send(
            "2026-09-01T09:00:00Z",
            "u1",
            "c1",
            Some("d1"),
            "personalized",
        ),
        // WHEN an open of c1 names another dispatch, and a click names none
        engage("opened", "2026-09-01T09:05:00Z", "u1", "c1", Some("d7")),
        engage("clicked", "2026-09-01T09:06:00Z", "u1", "c1", None),
    ];
    let report = run(&events, Settings::default());
    // THEN the open belongs to no send and the click to the campaign's send
    assert_eq!(report.unattributed.opens, 1);
    assert_eq!(report.sendtime.unique_opens, 0);
    assert_eq!(report.sendtime.clicks, 1);
}

#[test]
fn a_duplicate_open_counts_once_as_unique() {
    // GIVEN one send opened twice
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        engage("opened", "2026-09-01T09:10:00Z", "u1", "c1", None),
        engage("opened", "2026-09-01T09:20:00Z", "u1", "c1", None),
    ];
    // WHEN it is reported
    let report = run(&events, Settings::default());
    // THEN two opens, one unique, a 100 % unique open rate
    assert_eq!(report.sendtime.opens, 2);
    assert_eq!(report.sendtime.unique_opens, 1);
    assert_eq!(report.sendtime.unique_open_rate, Some(1.0));
}

#[test]
fn a_purchase_converts_only_a_clicked_send_within_the_window() {
    // GIVEN a send clicked an hour later, and purchases before the click, inside the
    // window and after it
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        purchase("2026-09-01T09:30:00Z", "u1", 1000, "KRW"),
        engage("clicked", "2026-09-01T10:00:00Z", "u1", "c1", None),
        purchase("2026-09-03T09:00:00Z", "u1", 12900, "KRW"),
        purchase("2026-09-04T09:00:01Z", "u1", 5000, "KRW"),
    ];
    // WHEN attributed with a 72 h window
    let report = run(&events, Settings::default());
    // THEN only the purchase after the click and inside the window is credited
    assert_eq!(report.sendtime.conversions, 1);
    assert_eq!(report.sendtime.purchases, 1);
    assert_eq!(
        report.sendtime.revenue,
        Revenue::from([("KRW".into(), 12900)])
    );
    assert_eq!(report.unattributed.purchases, 2);
    assert_eq!(
        report.unattributed.revenue,
        Revenue::from([("KRW".into(), 6000)])
    );
}

#[test]
fn the_window_boundary_is_inclusive_and_settable() {
    // GIVEN a clicked send and a purchase exactly 24 h after it
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        engage("clicked", "2026-09-01T09:01:00Z", "u1", "c1", None),
        purchase("2026-09-02T09:00:00Z", "u1", 100, "USD"),
    ];
    // WHEN the window is 24 h, then 23 h
    let day = Settings {
        window_hours: 24,
        ..Settings::default()
    };
    let shorter = Settings {
        window_hours: 23,
        ..Settings::default()
    };
    // THEN it converts in the first and not in the second
    assert_eq!(run(&events, day).sendtime.conversions, 1);
    assert_eq!(run(&events, shorter).sendtime.conversions, 0);
}

#[test]
fn one_purchase_credits_only_the_latest_eligible_send_and_a_send_converts_once() {
    // GIVEN two clicked sends of different campaigns, then an unclicked third
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "popular"),
        engage("clicked", "2026-09-01T09:05:00Z", "u1", "c1", None),
        send("2026-09-01T12:00:00Z", "u1", "c2", None, "personalized"),
        engage("clicked", "2026-09-01T12:05:00Z", "u1", "c2", None),
        send("2026-09-01T13:00:00Z", "u1", "c3", None, "cart"),
        // WHEN the user buys twice
        purchase("2026-09-01T14:00:00Z", "u1", 1000, "USD"),
        purchase("2026-09-01T15:00:00Z", "u1", 2500, "USD"),
    ];
    let report = run(&events, Settings::default());
    // THEN both purchases go to the c2 send, which converts once
    let personalized = &report.by_source[1].row;
    assert_eq!(
        (
            personalized.conversions,
            personalized.purchases,
            personalized.revenue.get("USD")
        ),
        (1, 2, Some(&3500))
    );
    assert_eq!(report.sendtime.conversions, 1);
    assert_eq!(report.by_source[0].row.purchases, 0); // cart: not clicked
    assert_eq!(report.by_source[2].row.purchases, 0); // popular: earlier
}

#[test]
fn under_open_credit_an_opened_send_converts() {
    // GIVEN a send opened, not clicked, then a purchase
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        engage("opened", "2026-09-01T09:05:00Z", "u1", "c1", None),
        purchase("2026-09-01T14:00:00Z", "u1", 1000, "USD"),
    ];
    // WHEN credited on clicks, then on opens
    let on_open = Settings {
        credit: Credit::Open,
        ..Settings::default()
    };
    // THEN only the second converts it
    assert_eq!(run(&events, Settings::default()).sendtime.conversions, 0);
    let report = run(&events, on_open);
    assert_eq!(report.sendtime.conversions, 1);
    assert_eq!(report.settings.conversion_credit, Credit::Open);
}

#[test]
fn currencies_are_never_added_together() {
    // GIVEN one clicked send and purchases in KRW and USD, one without a currency
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        engage("clicked", "2026-09-01T09:05:00Z", "u1", "c1", None),
        purchase("2026-09-01T10:00:00Z", "u1", 12900, "KRW"),
        purchase("2026-09-01T11:00:00Z", "u1", 1290, "USD"),
        line(
            json!({"at": "2026-09-01T12:00:00Z", "event": "purchase", "user_id": "u1", "value": 7}),
        ),
    ];
    // WHEN attributed
    let report = run(&events, Settings::default());
    // THEN each currency has its own sum and the missing one is named
    assert_eq!(
        report.sendtime.revenue,
        Revenue::from([
            ("KRW".into(), 12900),
            ("USD".into(), 1290),
            (NO_CURRENCY.into(), 7)
        ])
    );
}

#[test]
fn a_click_credits_its_position_and_the_source_shown_there() {
    // GIVEN a send of four items, two personalized then two popular, clicked at position 3,
    // at no position, and with an unreadable one; then a purchase
    let url = |q: &str| format!("https://shop.example/p/9?{q}");
    let events = [
        send(
            "2026-09-01T09:00:00Z",
            "u1",
            "c1",
            None,
            "personalized,personalized,popular,popular",
        ),
        click_url("2026-09-01T09:01:00Z", "u1", "c1", &url("sendtime_pos=3")),
        click_url("2026-09-01T09:02:00Z", "u1", "c1", &url("sendtime_pos=3")),
        click_url("2026-09-01T09:03:00Z", "u1", "c1", &url("sendtime_pos=x")),
        click_url("2026-09-01T09:04:00Z", "u1", "c1", &url("sendtime_pos=3")),
        purchase("2026-09-01T10:00:00Z", "u1", 500, "USD"),
    ];
    // WHEN attributed
    let report = run(&events, Settings::default());
    // THEN position 3 (popular) has 3 clicks from one send and the conversion (last click);
    // the unreadable one is unknown and counted
    let third = &report.by_position[2];
    assert_eq!(third.position, Some(3));
    assert_eq!(
        (
            third.items.shown,
            third.items.clicks,
            third.items.unique_clicks,
            third.items.conversions
        ),
        (Some(1), 3, 1, 1)
    );
    assert_eq!(third.by_source[0].source.as_deref(), Some("popular"));
    let unknown = report.by_position.last().unwrap();
    assert_eq!((unknown.position, unknown.items.clicks), (None, 1));
    assert_eq!(report.unattributed.unreadable_positions, 1);
    let popular = report
        .by_item_source
        .iter()
        .find(|s| s.source.as_deref() == Some("popular"))
        .unwrap();
    assert_eq!((popular.items.shown, popular.items.clicks), (Some(2), 3));
    assert_eq!(popular.items.click_rate, Some(0.5));
    // AND the send counts as a fallback (popular items) but not a popular block
    assert_eq!(
        (
            report.sendtime.fallback_sends,
            report.sendtime.popular_block_sends
        ),
        (1, 0)
    );
}

#[test]
fn sends_without_extras_are_counted_apart_and_still_take_their_engagement() {
    // GIVEN a send of another campaign without extras, opened, clicked and followed by a
    // purchase
    let events = [
        send("2026-09-01T09:00:00Z", "u1", "c1", None, "personalized"),
        line(
            json!({"at": "2026-09-01T09:30:00Z", "event": "sent", "user_id": "u1", "campaign_id": "news", "channel": "push", "extras": {"experiment": "b"}}),
        ),
        engage("opened", "2026-09-01T09:40:00Z", "u1", "news", None),
        engage("clicked", "2026-09-01T09:41:00Z", "u1", "news", None),
        purchase("2026-09-01T10:00:00Z", "u1", 500, "USD"),
    ];
    // WHEN attributed
    let report = run(&events, Settings::default());
    // THEN the other send has them, the sendtime one has none
    assert_eq!(
        (
            report.sends.with_sendtime_extras,
            report.sends.without_sendtime_extras
        ),
        (1, 1)
    );
    let other = &report.other_campaigns;
    assert_eq!(
        (
            other.unique_opens,
            other.unique_clicks,
            other.conversions,
            other.fallback_sends
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(
        (report.sendtime.unique_opens, report.sendtime.conversions),
        (0, 0)
    );
}

#[test]
fn sends_past_the_window_are_dropped_so_memory_stays_bounded() {
    // GIVEN 2,000 sends an hour apart to 50 users
    let events: Vec<String> = (0..2_000i64)
        .map(|h| {
            let at = chrono::DateTime::from_timestamp(1_788_000_000 + h * 3600, 0)
                .unwrap()
                .to_rfc3339();
            send(&at, &format!("u{}", h % 50), "c1", None, "personalized")
        })
        .collect();
    // WHEN attributed with a 72 h window
    let report = run(&events, Settings::default());
    // THEN at most the window's 73 sends were ever held, and every send is counted
    assert_eq!(report.sends.total, 2_000);
    assert_eq!(report.input.peak_sends_in_window, 73);
    // AND an open of the first user's send long gone is unattributed, not lost
    let mut late = events.clone();
    late.push(engage("opened", "2030-01-01T00:00:00Z", "u0", "c1", None));
    assert_eq!(run(&late, Settings::default()).unattributed.opens, 1);
}

#[test]
fn problems_in_extras_are_counted_by_key_and_the_send_kept() {
    // GIVEN a send whose extras miss the block and rec_id and flag degraded as "yes"
    let events = [line(
        json!({"at": "2026-09-01T09:00:00Z", "event": "sent", "user_id": "u1", "campaign_id": "c1",
            "channel": "email", "extras": {"sendtime_source": "cart", "sendtime_degraded": "yes"}}),
    )];
    // WHEN attributed
    let report = run(&events, Settings::default());
    // THEN it counts as a sendtime send without a block, and its problems are named
    assert_eq!(report.by_block[0].block, None);
    assert_eq!(report.by_block[0].row.sends, 1);
    assert_eq!(report.sends.extras_problems.len(), 3);
    assert_eq!(
        report.sends.extras_problems["sendtime_block missing or empty"],
        1
    );
}

#[test]
fn the_markdown_and_chart_show_every_breakdown() {
    // GIVEN a small attributed file with a click at position 1
    let events = [
        send(
            "2026-09-01T09:00:00Z",
            "u1",
            "c1",
            None,
            "personalized,popular",
        ),
        click_url(
            "2026-09-01T09:01:00Z",
            "u1",
            "c1",
            "https://s.example/?sendtime_pos=1",
        ),
        purchase("2026-09-01T10:00:00Z", "u1", 12900, "KRW"),
    ];
    let report = run(&events, Settings::default());
    // WHEN written as Markdown and SVG
    let md = markdown(&report, "events.jsonl");
    let svg = svg(&report).unwrap();
    // THEN the tables and rates are there, money formatted, and the chart names its bars
    for text in [
        "## By block",
        "## By stage",
        "## By answer source",
        "## By position",
        "## By item source",
        "| `recommendations` | 1 | 0 / 1 (0.0 %) | 1 | 1 / 1 (100.0 %) | 1 / 1 (100.0 %) | ₩12,900 | 1 / 1 (100.0 %) | 0 / 1 (0.0 %) |",
        "Braze's default conversion deadline is 3 days",
    ] {
        assert!(md.contains(text), "no {text:?} in\n{md}");
    }
    assert!(svg.starts_with("<svg"));
    for text in [
        "#1",
        "#2",
        "personalized",
        "popular",
        "recommendations",
        "unique clicks",
    ] {
        assert!(svg.contains(text), "no {text:?} in the chart");
    }
}

#[test]
fn the_window_setting_is_checked_with_the_flag_named() {
    // GIVEN windows of 0 and 31 days WHEN checked THEN both name --window-hours
    for hours in [0, 31 * 24] {
        let err = Settings {
            window_hours: hours,
            ..Settings::default()
        }
        .check()
        .unwrap_err();
        assert!(err.contains("--window-hours"), "{err}");
    }
    assert!(Settings::default().check().is_ok());
}

/// Peak resident memory of this process so far, KiB (Linux `VmHWM`), `None` elsewhere.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Throughput and peak memory on a real file, optimised: `ATTRIBUTION_EVENTS_FILE=events.jsonl
/// cargo test --profile profiling -p sendtime-braze -- --ignored --nocapture throughput`
/// (`tests/attribution.rs`' ignored test generates such a file).
#[test]
#[ignore]
fn throughput_on_the_file_named_by_attribution_events_file() {
    // GIVEN the file
    let Ok(path) = std::env::var("ATTRIBUTION_EVENTS_FILE") else {
        panic!("set ATTRIBUTION_EVENTS_FILE to an events file");
    };
    let before = peak_rss_kib().unwrap_or(0);
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    // WHEN it is attributed
    let started = std::time::Instant::now();
    let report = attribute(file, Settings::default(), 0, |_, _| {}).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // THEN print the figures
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "{} events in {seconds:.1} s: {:.0} events/s; peak RSS {:.0} MiB (before reading {:.0} MiB); at most {} sends held at once of {}",
        report.input.events,
        report.input.events as f64 / seconds,
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        report.input.peak_sends_in_window,
        report.sends.total
    );
    assert!(report.input.events > 0);
}
