//! `sendtime events import --from currents` through the real binary, on Avro files this test
//! writes itself from Braze's documented storage schemas (Braze's sample files may not be
//! redistributed): every mapped event type in all three codecs, duplicate ids across files,
//! machine opens, bot clicks, late events and a newer schema give exactly the expected
//! events in time order with the drops counted; generated engagement (`data generate
//! --events`) written as Currents files comes back exactly, and `audience evaluate` and
//! `audience score` run on it; a second run over new files adds only the new events.
//!
//! Schemas: the field names, types and order of Braze's Currents storage schemas
//! (<https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/message_engagement_events/>,
//! <https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/customer_behavior_events/>),
//! as the writer schemas of <https://github.com/Appboy/currents-examples/tree/master/sample-data/Avro>
//! declare them (a subset of their fields: the import reads fields by name).

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use sendtime_tests::*;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A field's Avro type in the documented schemas.
#[derive(Debug, Clone, Copy)]
enum F {
    /// "string"
    S,
    /// ["null", "string"]
    Os,
    /// "int"
    I,
    /// "float"
    F32,
    /// ["null", "boolean"]
    Ob,
    /// ["null", {"type": "array", "items": "string"}]
    Oa,
}

const MESSAGE: [(&str, F); 12] = [
    ("id", F::S),
    ("user_id", F::S),
    ("dispatch_id", F::Os),
    ("external_user_id", F::Os),
    ("time", F::I),
    ("timezone", F::Os),
    ("campaign_id", F::Os),
    ("campaign_name", F::Os),
    ("message_variation_id", F::Os),
    ("canvas_id", F::Os),
    ("canvas_step_id", F::Os),
    ("send_id", F::Os),
];

/// The fields of a Currents event type, in the documented order.
fn fields(event_type: &str) -> Vec<(&'static str, F)> {
    let message = |extra: &[(&'static str, F)]| MESSAGE.iter().chain(extra).copied().collect();
    match event_type {
        "users.messages.email.Send" => message(&[
            ("email_address", F::S),
            ("ip_pool", F::Os),
            ("message_extras", F::Os),
            ("app_group_id", F::Os),
        ]),
        "users.messages.pushnotification.Send" => message(&[
            ("app_id", F::S),
            ("platform", F::S),
            ("device_id", F::Os),
            ("message_extras", F::Os),
        ]),
        "users.messages.sms.Send" => message(&[
            ("to_phone_number", F::Os),
            ("subscription_group_id", F::Os),
            ("message_extras", F::Os),
        ]),
        "users.messages.email.Open" => message(&[
            ("email_address", F::S),
            ("user_agent", F::Os),
            ("machine_open", F::Os),
            ("is_amp", F::Ob),
        ]),
        "users.messages.pushnotification.Open" => message(&[("app_id", F::S), ("platform", F::Os)]),
        "users.messages.email.Click" => message(&[
            ("email_address", F::S),
            ("url", F::Os),
            ("user_agent", F::Os),
            ("is_suspected_bot_click", F::Ob),
            ("suspected_bot_click_reason", F::Oa),
        ]),
        "users.messages.sms.ShortLinkClick" => message(&[
            ("url", F::S),
            ("short_url", F::S),
            ("is_suspected_bot_click", F::Ob),
        ]),
        "users.messages.email.Unsubscribe" | "users.messages.email.Delivery" => {
            message(&[("email_address", F::S)])
        }
        "users.messages.email.Bounce" => {
            message(&[("email_address", F::S), ("bounce_reason", F::Os)])
        }
        "users.messages.pushnotification.Bounce" => message(&[("app_id", F::S)]),
        "users.behaviors.Purchase" => vec![
            ("id", F::S),
            ("user_id", F::S),
            ("external_user_id", F::Os),
            ("app_id", F::Os),
            ("time", F::I),
            ("product_id", F::S),
            ("price", F::F32),
            ("currency", F::S),
            ("properties", F::S),
        ],
        "users.behaviors.app.SessionStart" => vec![
            ("id", F::S),
            ("user_id", F::S),
            ("external_user_id", F::Os),
            ("app_id", F::S),
            ("time", F::I),
            ("session_id", F::S),
        ],
        "users.behaviors.CustomEvent" => vec![
            ("id", F::S),
            ("user_id", F::S),
            ("external_user_id", F::Os),
            ("app_id", F::Os),
            ("time", F::I),
            ("name", F::S),
            ("properties", F::S),
        ],
        other => panic!("no schema for {other}"),
    }
}

/// The schema of `event_type`; `newer` adds an optional field Braze has not documented yet,
/// in the middle (so every later field moves).
fn schema(event_type: &str, newer: bool) -> (Schema, Vec<(&'static str, F)>) {
    let mut fs = fields(event_type);
    if newer {
        fs.insert(4, ("added_in_a_newer_schema", F::Os));
    }
    let types: Vec<Json> = fs
        .iter()
        .map(|(name, f)| {
            let t = match f {
                F::S => json!("string"),
                F::Os => json!(["null", "string"]),
                F::I => json!("int"),
                F::F32 => json!("float"),
                F::Ob => json!(["null", "boolean"]),
                F::Oa => json!(["null", {"type": "array", "items": "string"}]),
            };
            json!({"name": name, "type": t})
        })
        .collect();
    let name = event_type.rsplit('.').next().unwrap();
    let text = json!({"type": "record", "name": name, "namespace": "com.appboy.currents", "fields": types});
    (Schema::parse_str(&text.to_string()).unwrap(), fs)
}

/// One Currents record: field name → value (strings, ints, floats, booleans; nulls omitted).
type Rec = Vec<(&'static str, Value)>;

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// The three codecs Braze's files use, by number.
fn codec(n: usize) -> Codec {
    match n % 3 {
        0 => Codec::Null,
        1 => Codec::Deflate(DeflateSettings::default()),
        _ => Codec::Snappy,
    }
}

/// Writes `records` of `event_type` as one Avro object container file under `root`, at
/// `…/event_type=<type>/date=<date>/<name>.avro` as Currents names them.
fn write_file(
    root: &Path,
    event_type: &str,
    date: &str,
    name: &str,
    codec: Codec,
    newer: bool,
    records: &[Rec],
) -> PathBuf {
    let dir = root
        .join("currents/dataexport.prod-01.S3.integration.5f0000000000000000000001")
        .join(format!("event_type={event_type}"))
        .join(format!("date={date}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (schema, fs) = schema(event_type, newer);
    let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
    for rec in records {
        let given: BTreeMap<&str, &Value> = rec.iter().map(|(k, v)| (*k, v)).collect();
        let value = Value::Record(
            fs.iter()
                .map(|(name, f)| {
                    let g = given.get(name).map(|v| (*v).clone());
                    let v = match f {
                        F::S => g.unwrap_or(s("")),
                        F::I => g.unwrap_or(Value::Int(0)),
                        F::F32 => g.unwrap_or(Value::Float(0.0)),
                        F::Os | F::Ob | F::Oa => match g {
                            Some(v) => Value::Union(1, Box::new(v)),
                            None => Value::Union(0, Box::new(Value::Null)),
                        },
                    };
                    (name.to_string(), v)
                })
                .collect(),
        );
        writer.append(value).unwrap();
    }
    let path = dir.join(format!("{name}.avro"));
    std::fs::write(&path, writer.into_inner().unwrap()).unwrap();
    path
}

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_table("sendtime-currents"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `sendtime <args>`; panics with its output unless it succeeds; returns stdout + stderr.
fn sendtime(args: &[&str]) -> String {
    let out = Command::new(sendtime_bin()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sendtime {args:?} failed:\n{text}");
    text
}

fn import(source: &Path, out: &Path) -> String {
    sendtime(&[
        "events",
        "import",
        "--from",
        "currents",
        p(source),
        "--out",
        p(out),
    ])
}

fn lines(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// 2026-11-02T09:00:00Z, the hour of the first files.
const T0: i32 = 1_793_610_000;

fn at(offset: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(T0 + offset), 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn message(id: &str, user: &str, campaign: Option<&str>, offset: i32) -> Rec {
    let mut rec = vec![
        ("id", s(id)),
        ("user_id", s(&format!("braze-{user}"))),
        ("external_user_id", s(user)),
        ("time", Value::Int(T0 + offset)),
        ("dispatch_id", s(&format!("d-{}", campaign.unwrap_or("x")))),
    ];
    if let Some(c) = campaign {
        rec.push(("campaign_id", s(c)));
    }
    rec
}

fn with(mut rec: Rec, more: &[(&'static str, Value)]) -> Rec {
    rec.extend(more.iter().cloned());
    rec
}

#[test]
fn every_mapped_type_in_all_codecs_with_duplicates_machine_opens_bot_clicks_late_events_and_a_newer_schema_imports_exactly(
) {
    // GIVEN Currents files of every mapped event type over two queue hours, in the three
    // codecs, with the noise Currents delivers
    let dir = workdir();
    let src = dir.join("bucket");
    let h9 = "2026-11-02-09";
    let h10 = "2026-11-02-10";
    let email_send = with(
        message("e-send-1", "u1", Some("c-email"), 0),
        &[(
            "message_extras",
            s(r#"{"sendtime_rec_id":"r-1","sendtime_block":"cart","sendtime_stage":"reminder"}"#),
        )],
    );
    // A Canvas step's send: no campaign_id, the step stands in for it.
    let mut canvas_send = message("e-send-2", "u2", None, 10);
    canvas_send.push(("canvas_id", s("canvas-1")));
    canvas_send.push(("canvas_step_id", s("step-9")));
    let mut canvas_open = message("e-open-late", "u2", None, 60);
    canvas_open.push(("canvas_step_id", s("step-9")));
    let mut canvas_click = with(
        message("e-click-2", "u2", None, 310),
        &[
            ("is_suspected_bot_click", Value::Boolean(false)),
            ("url", s("https://shop.example/p/2")),
        ],
    );
    canvas_click.push(("canvas_step_id", s("step-9")));
    // An SMS user known only by Braze's id.
    let sms_send: Rec = vec![
        ("id", s("e-send-4")),
        ("user_id", s("5f9a0000000000000000aaaa")),
        ("time", Value::Int(T0 + 30)),
        ("campaign_id", s("c-sms")),
    ];
    let sms_click: Rec = vec![
        ("id", s("e-click-sms")),
        ("user_id", s("5f9a0000000000000000aaaa")),
        ("time", Value::Int(T0 + 400)),
        ("campaign_id", s("c-sms")),
        ("url", s("https://shop.example/sms")),
        ("short_url", s("https://brz.ai/x")),
    ];
    let files: Vec<(&str, &str, bool, Vec<Rec>)> = vec![
        (
            "users.messages.email.Send",
            h9,
            false,
            vec![email_send.clone(), canvas_send],
        ),
        (
            "users.messages.pushnotification.Send",
            h9,
            false,
            vec![with(
                message("e-send-3", "u3", Some("c-push"), 20),
                &[("app_id", s("app")), ("platform", s("ios"))],
            )],
        ),
        ("users.messages.sms.Send", h9, false, vec![sms_send]),
        (
            "users.messages.email.Open",
            h9,
            false,
            vec![
                with(
                    message("e-open-1", "u1", Some("c-email"), 100),
                    &[("user_agent", s("Mozilla/5.0"))],
                ),
                with(
                    message("e-open-machine", "u2", Some("c-email"), 50),
                    &[("machine_open", s("true"))],
                ),
                with(message("e-open-bad", "../u9", Some("c-email"), 70), &[]),
            ],
        ),
        (
            "users.messages.pushnotification.Open",
            h9,
            false,
            vec![with(
                message("e-open-push", "u3", Some("c-push"), 200),
                &[("app_id", s("app"))],
            )],
        ),
        (
            "users.messages.email.Click",
            h9,
            false,
            vec![
                with(
                    message("e-click-1", "u1", Some("c-email"), 300),
                    &[("url", s("https://shop.example/p/1"))],
                ),
                with(
                    message("e-click-bot", "u1", Some("c-email"), 301),
                    &[
                        ("url", s("https://shop.example/p/1")),
                        ("is_suspected_bot_click", Value::Boolean(true)),
                        (
                            "suspected_bot_click_reason",
                            Value::Array(vec![s("user_agent")]),
                        ),
                    ],
                ),
                canvas_click,
            ],
        ),
        (
            "users.messages.sms.ShortLinkClick",
            h9,
            false,
            vec![sms_click],
        ),
        (
            "users.messages.email.Unsubscribe",
            h9,
            false,
            vec![message("e-unsub", "u1", Some("c-email"), 500)],
        ),
        (
            "users.messages.email.Bounce",
            h9,
            false,
            vec![with(
                message("e-bounce", "u5", Some("c-email"), 40),
                &[("bounce_reason", s("550 no such user"))],
            )],
        ),
        (
            "users.messages.pushnotification.Bounce",
            h9,
            false,
            vec![with(
                message("e-bounce-push", "u6", Some("c-push"), 45),
                &[("app_id", s("app"))],
            )],
        ),
        (
            "users.behaviors.Purchase",
            h9,
            false,
            vec![
                vec![
                    ("id", s("e-buy-1")),
                    ("user_id", s("braze-u1")),
                    ("external_user_id", s("u1")),
                    ("time", Value::Int(T0 + 600)),
                    ("product_id", s("sku-1")),
                    ("price", Value::Float(12.99)),
                    ("currency", s("USD")),
                    ("properties", s("{}")),
                ],
                vec![
                    ("id", s("e-buy-2")),
                    ("user_id", s("braze-u2")),
                    ("external_user_id", s("u2")),
                    ("time", Value::Int(T0 + 610)),
                    ("product_id", s("sku-2")),
                    ("price", Value::Float(12900.0)),
                    ("currency", s("KRW")),
                    ("properties", s("{}")),
                ],
                vec![
                    ("id", s("e-buy-xyz")),
                    ("user_id", s("braze-u3")),
                    ("external_user_id", s("u3")),
                    ("time", Value::Int(T0 + 620)),
                    ("product_id", s("sku-3")),
                    ("price", Value::Float(1.0)),
                    ("currency", s("XYZ")),
                    ("properties", s("{}")),
                ],
            ],
        ),
        (
            "users.behaviors.app.SessionStart",
            h9,
            false,
            vec![vec![
                ("id", s("e-visit")),
                ("user_id", s("braze-u1")),
                ("external_user_id", s("u1")),
                ("time", Value::Int(T0 + 550)),
                ("app_id", s("app")),
                ("session_id", s("sess-1")),
            ]],
        ),
        (
            "users.behaviors.CustomEvent",
            h9,
            false,
            vec![
                vec![
                    ("id", s("e-order")),
                    ("user_id", s("braze-u2")),
                    ("external_user_id", s("u2")),
                    ("time", Value::Int(T0 + 700)),
                    ("name", s("ecommerce.order_placed")),
                    (
                        "properties",
                        s(
                            r#"{"order_id":"o-1","total_value":25000,"currency":"KRW","products":[]}"#,
                        ),
                    ),
                ],
                vec![
                    ("id", s("e-viewed")),
                    ("user_id", s("braze-u2")),
                    ("external_user_id", s("u2")),
                    ("time", Value::Int(T0 + 650)),
                    ("name", s("ecommerce.product_viewed")),
                    ("properties", s("{}")),
                ],
            ],
        ),
        // The next queue hour: the first send again (at-least-once), and a late open of the
        // Canvas step from before the first hour's last events, in a newer schema.
        ("users.messages.email.Send", h10, false, vec![email_send]),
        (
            "users.messages.email.Open",
            h10,
            true,
            vec![with(
                canvas_open,
                &[("added_in_a_newer_schema", s("anything"))],
            )],
        ),
        (
            "users.messages.email.Delivery",
            h10,
            false,
            vec![message("e-delivery", "u1", Some("c-email"), 5)],
        ),
    ];
    for (n, (event_type, date, newer, records)) in files.iter().enumerate() {
        write_file(
            &src,
            event_type,
            date,
            &format!("part-{n}"),
            codec(n),
            *newer,
            records,
        );
    }
    std::fs::write(src.join("currents/README.txt"), "not an export").unwrap();

    // WHEN imported
    let out = dir.join("events.jsonl");
    let printed = import(&src, &out);

    // THEN exactly these events, in time order
    let expected = vec![
        json!({"at": at(0), "event": "sent", "user_id": "u1", "campaign_id": "c-email", "channel": "email", "dispatch_id": "d-c-email", "extras": {"sendtime_block": "cart", "sendtime_rec_id": "r-1", "sendtime_stage": "reminder"}}),
        json!({"at": at(10), "event": "sent", "user_id": "u2", "campaign_id": "step-9", "channel": "email", "dispatch_id": "d-x"}),
        json!({"at": at(20), "event": "sent", "user_id": "u3", "campaign_id": "c-push", "channel": "push", "dispatch_id": "d-c-push"}),
        json!({"at": at(30), "event": "sent", "user_id": "5f9a0000000000000000aaaa", "campaign_id": "c-sms", "channel": "sms"}),
        json!({"at": at(40), "event": "bounced", "user_id": "u5", "campaign_id": "c-email", "dispatch_id": "d-c-email"}),
        json!({"at": at(45), "event": "bounced", "user_id": "u6", "campaign_id": "c-push", "dispatch_id": "d-c-push"}),
        json!({"at": at(60), "event": "opened", "user_id": "u2", "campaign_id": "step-9", "dispatch_id": "d-x"}),
        json!({"at": at(100), "event": "opened", "user_id": "u1", "campaign_id": "c-email", "dispatch_id": "d-c-email"}),
        json!({"at": at(200), "event": "opened", "user_id": "u3", "campaign_id": "c-push", "dispatch_id": "d-c-push"}),
        json!({"at": at(300), "event": "clicked", "user_id": "u1", "campaign_id": "c-email", "dispatch_id": "d-c-email", "url": "https://shop.example/p/1"}),
        json!({"at": at(310), "event": "clicked", "user_id": "u2", "campaign_id": "step-9", "dispatch_id": "d-x", "url": "https://shop.example/p/2"}),
        json!({"at": at(400), "event": "clicked", "user_id": "5f9a0000000000000000aaaa", "campaign_id": "c-sms", "url": "https://shop.example/sms"}),
        json!({"at": at(500), "event": "unsubscribed", "user_id": "u1", "campaign_id": "c-email", "dispatch_id": "d-c-email"}),
        json!({"at": at(550), "event": "visit", "user_id": "u1"}),
        json!({"at": at(600), "event": "purchase", "user_id": "u1", "value": 1299, "currency": "USD"}),
        json!({"at": at(610), "event": "purchase", "user_id": "u2", "value": 12900, "currency": "KRW"}),
        json!({"at": at(700), "event": "purchase", "user_id": "u2", "value": 25000, "currency": "KRW"}),
    ];
    assert_eq!(lines(&out), expected, "{printed}");
    // AND the drops are counted, each with its reason
    for needle in [
        "duplicate event ids: 1 in this run, 0 already written by an earlier run",
        "machine opens (machine_open): 1",
        "suspected bot clicks (is_suspected_bot_click): 1",
        "custom events other than ecommerce.order_placed: 1 (ecommerce.product_viewed: 1)",
        "purchases in unsupported currencies: 1 (XYZ: 1)",
        "bad records: 1",
        "users.messages.email.Open: 2 file(s), 4 record(s)",
        "users.messages.email.Delivery: 1",
        "1 file(s) without an event_type= segment",
        "wrote 17 new event(s)",
        "the output holds 17 event(s)",
    ] {
        assert!(
            printed.contains(needle),
            "missing '{needle}' in:\n{printed}"
        );
    }
    // The bad record is named by file and record number.
    let bad = printed
        .lines()
        .find(|l| l.contains("record 3:"))
        .unwrap_or_default();
    assert!(
        bad.contains("event_type=users.messages.email.Open") && bad.contains("../u9"),
        "{printed}"
    );

    // AND a second run over the same files adds nothing
    let again = import(&src, &out);
    assert!(
        again.contains("wrote 0 new event(s)") && again.contains("15 file(s) already read"),
        "{again}"
    );
    assert_eq!(lines(&out), expected);
}

/// The `N` of `label N` in `text` (the first one).
fn count_after(text: &str, label: &str) -> u64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("no '{label}' in:\n{text}"))
        + label.len()..];
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{label}' in:\n{text}"))
}

/// Moves every file under `from` whose `date=` folder is `pick`ed to the same place under `to`.
fn move_dates(from: &Path, to: &Path, pick: &dyn Fn(&str) -> bool) -> usize {
    let mut moved = 0;
    let mut stack = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let date = path
                .parent()
                .and_then(|d| d.file_name())
                .unwrap()
                .to_str()
                .unwrap();
            if pick(date.trim_start_matches("date=")) {
                let target = to.join(path.strip_prefix(from).unwrap());
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::rename(&path, &target).unwrap();
                moved += 1;
            }
        }
    }
    moved
}

#[test]
fn generated_engagement_as_currents_files_comes_back_exactly_in_two_incremental_runs_and_audience_runs_on_it(
) {
    use sendtime_braze::currents::synth::{CurrentsWriter, Layout};
    // GIVEN generated engagement (a known truth) written as Currents files with noise:
    // late events in a later block's file, redelivered duplicates, machine opens, bot clicks
    let dir = workdir();
    let events = dir.join("generated.jsonl");
    sendtime(&[
        "data",
        "generate",
        "--users",
        "600",
        "--seed",
        "11",
        "--as-of",
        "2026-12-01T00:00:00Z",
        "--out",
        p(&dir.join("data.jsonl")),
        "--events",
        p(&events),
    ]);
    let staging = dir.join("staging");
    let mut writer = CurrentsWriter::new(
        &staging,
        Layout {
            block_hours: 6,
            late_every: 20,
            duplicate_every: 25,
            machine_open_every: 5,
            bot_click_every: 4,
        },
    )
    .unwrap();
    let mut expected: Vec<Json> = Vec::new();
    let mut push_campaigns = std::collections::HashSet::new();
    let text = std::fs::read_to_string(&events).unwrap();
    sendtime_targeting::events::for_each_event::<sendtime_targeting::events::EventsError>(
        text.as_bytes(),
        |_, e| {
            writer.push(e).unwrap();
            let mut line: Json = serde_json::to_value(e).unwrap();
            match line["event"].as_str().unwrap() {
                "sent" if line["channel"] == "push" => {
                    push_campaigns.insert(line["campaign_id"].clone());
                }
                // Braze logs no click on a push (its open is the tap): not in Currents.
                "clicked" if push_campaigns.contains(&line["campaign_id"]) => return Ok(()),
                "purchase" => line["currency"] = json!("KRW"),
                _ => {}
            }
            expected.push(line);
            Ok(())
        },
    )
    .unwrap();
    let written = writer.finish().unwrap();
    assert_eq!(written.events, expected.len() as u64);
    assert!(
        written.late > 0
            && written.duplicates > 0
            && written.machine_opens > 0
            && written.bot_clicks > 0
    );
    assert!(written.files.len() == 3, "{written:?}");

    // WHEN the first half of the queue blocks is imported, then the rest is added and
    // imported again into the same --out
    let src = dir.join("bucket");
    let mut dates: Vec<String> = Vec::new();
    collect_dates(&staging, &mut dates);
    dates.sort();
    let cutoff = dates[dates.len() / 2].clone();
    assert!(move_dates(&staging, &src, &|d| d < cutoff.as_str()) > 0);
    let out = dir.join("events.jsonl");
    let first = import(&src, &out);
    let first_total = count_after(&first, "the output holds");
    move_dates(&staging, &src, &|_| true);
    let second = import(&src, &out);

    // THEN the second run wrote only what the first had not, the output is the generated
    // events exactly (push clicks aside), in time order, and every injected drop is counted
    let got = lines(&out);
    assert_eq!(
        count_after(&second, "wrote"),
        got.len() as u64 - first_total,
        "{second}"
    );
    let times: Vec<&str> = got.iter().map(|l| l["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    let canonical = |v: &[Json]| {
        let mut all: Vec<String> = v.iter().map(|l| l.to_string()).collect();
        all.sort();
        all
    };
    assert_eq!(canonical(&got), canonical(&expected));
    let both = format!("{first}\n{second}");
    let sum = |label: &str| count_after(&first, label) + count_after(&second, label);
    assert_eq!(
        sum("duplicate event ids:") + count_after(&second, "in this run,"),
        written.duplicates,
        "{both}"
    );
    assert_eq!(
        sum("machine opens (machine_open):"),
        written.machine_opens,
        "{both}"
    );
    assert_eq!(
        sum("suspected bot clicks (is_suspected_bot_click):"),
        written.bot_clicks,
        "{both}"
    );
    assert_eq!(sum("bad records:"), 0, "{both}");

    // AND audience evaluate and audience score run on the imported events end to end
    let evaluated = sendtime(&["audience", "evaluate", "--events", p(&out)]);
    assert!(evaluated.contains("held-out"), "{evaluated}");
    let scores = dir.join("scores.jsonl");
    let scored = sendtime(&[
        "audience",
        "score",
        "--events",
        p(&out),
        "--out",
        p(&scores),
    ]);
    assert!(scored.contains("scored"), "{scored}");
    assert!(std::fs::read_to_string(&scores).unwrap().lines().count() > 100);
}

fn collect_dates(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(date) = name.strip_prefix("date=") {
            out.push(date.to_owned());
        } else if path.is_dir() {
            collect_dates(&path, out);
        }
    }
}

/// Uploads every file under `dir` to `s3://bucket/prefix/<its path under dir>`; how many.
async fn upload(s3: &s3::S3Emulator, dir: &Path, bucket: &str, prefix: &str) -> usize {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in &files {
        let key = format!("{prefix}/{}", path.strip_prefix(dir).unwrap().display());
        s3.put(bucket, &key, std::fs::read(path).unwrap()).await;
    }
    files.len()
}

#[tokio::test]
async fn an_s3_prefix_imports_through_real_s3_calls_and_a_second_run_reads_only_the_new_objects() {
    use sendtime_braze::currents::synth::{CurrentsWriter, Layout};
    use sendtime_targeting::events::{Channel, Event, EventType};
    use std::borrow::Cow;
    // GIVEN Currents objects on an S3 emulator: a day of sends and opens, every other event
    // delivered twice (in another object)
    let s3 = s3::S3Emulator::start().await;
    let dir = workdir();
    let event = |offset: i32, kind: EventType, user: &str| Event {
        at: chrono::DateTime::from_timestamp(i64::from(T0 + offset), 0).unwrap(),
        event: kind,
        user_id: Cow::Owned(user.to_owned()),
        campaign_id: (kind != EventType::Visit).then_some(Cow::Borrowed("c-1")),
        channel: (kind == EventType::Sent).then_some(Channel::Email),
        value: None,
        currency: None,
        dispatch_id: None,
        url: None,
        extras: None,
    };
    let layout = Layout {
        block_hours: 1,
        late_every: 0,
        duplicate_every: 2,
        machine_open_every: 0,
        bot_click_every: 0,
    };
    let day_one = [
        event(0, EventType::Sent, "u1"),
        event(5, EventType::Sent, "u2"),
        event(900, EventType::Opened, "u1"),
        event(4000, EventType::Opened, "u2"),
    ];
    let mut writer = CurrentsWriter::new(&dir.join("one"), layout).unwrap();
    for e in &day_one {
        writer.push(e).unwrap();
    }
    writer.finish().unwrap();
    let uploaded = upload(&s3, &dir.join("one"), "crm-exports", "currents").await;

    // WHEN imported from s3://crm-exports/currents
    let out = dir.join("events.jsonl");
    let run = |out: &Path| {
        sendtime(&[
            "events",
            "import",
            "--from",
            "currents",
            "s3://crm-exports/currents",
            "--out",
            p(out),
            "--s3-endpoint",
            &s3.endpoint,
        ])
    };
    let first = run(&out);

    // THEN the four events, once each, in time order
    let users: Vec<(String, String)> = lines(&out)
        .iter()
        .map(|l| {
            (
                l["event"].as_str().unwrap().to_owned(),
                l["user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pair = |e: &str, u: &str| (e.to_owned(), u.to_owned());
    assert_eq!(
        users,
        [
            pair("sent", "u1"),
            pair("sent", "u2"),
            pair("opened", "u1"),
            pair("opened", "u2")
        ],
        "{first}"
    );
    assert!(
        first.contains("duplicate event ids: 2 in this run"),
        "{first}"
    );
    assert!(
        first.contains(&format!("read {uploaded} file(s)")),
        "{first}"
    );

    // AND after a later object lands (a visit before the last open: a late event), a second
    // run reads only it, by ETag
    let mut writer = CurrentsWriter::new(
        &dir.join("two"),
        Layout {
            duplicate_every: 0,
            ..layout
        },
    )
    .unwrap()
    .starting_at(1_000);
    writer.push(&event(3000, EventType::Visit, "u2")).unwrap();
    writer.finish().unwrap();
    upload(&s3, &dir.join("two"), "crm-exports", "currents/later").await;
    let second = run(&out);
    assert!(
        second.contains("read 1 file(s)")
            && second.contains(&format!("({uploaded} file(s) already read")),
        "{second}"
    );
    let events: Vec<String> = lines(&out)
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        ["sent", "sent", "opened", "visit", "opened"],
        "{second}"
    );
}
