//! Currents files from sendtime events — the import's inverse, for tests and the benchmark
//! (Braze's sample files may not be redistributed, so known-truth inputs are generated):
//! each event becomes a record of its Currents type in the documented storage schema, in
//! files per event type and queue block, in the three codecs, with the noise Currents
//! delivers injected and counted — late events in a later block's file, redelivered
//! duplicates, Apple Mail machine opens, suspected bot clicks.
//!
//! The schemas are the field names, types and order of Braze's storage schemas
//! (<https://www.braze.com/docs/user_guide/data/distribution/braze_currents/event_glossary/message_engagement_events/>)
//! as the writer schemas of <https://github.com/Appboy/currents-examples/tree/master/sample-data/Avro>
//! declare them, cut to the fields the import reads and a few others.

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};
use sendtime_targeting::events::{Channel, Event, EventType};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A file could not be written.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A field's name and Avro type (`?string`: a nullable union, null first).
type FieldType = (&'static str, &'static str);

const MESSAGE: &[FieldType] = &[
    ("id", "string"),
    ("user_id", "string"),
    ("dispatch_id", "?string"),
    ("external_user_id", "?string"),
    ("time", "int"),
    ("timezone", "?string"),
    ("campaign_id", "?string"),
    ("campaign_name", "?string"),
    ("message_variation_id", "?string"),
    ("canvas_id", "?string"),
    ("canvas_step_id", "?string"),
    ("send_id", "?string"),
];

const BEHAVIOR: &[FieldType] = &[
    ("id", "string"),
    ("user_id", "string"),
    ("external_user_id", "?string"),
    ("app_id", "?string"),
    ("time", "int"),
];

/// The fields written for `event_type` (`?` marks a nullable union with null first).
fn fields(event_type: &str) -> Vec<(&'static str, &'static str)> {
    let (base, extra): (&[FieldType], &[FieldType]) = match event_type {
        "users.messages.email.Send" => (
            MESSAGE,
            &[("email_address", "string"), ("message_extras", "?string")],
        ),
        "users.messages.pushnotification.Send" => (
            MESSAGE,
            &[("platform", "string"), ("message_extras", "?string")],
        ),
        "users.messages.email.Open" => (
            MESSAGE,
            &[
                ("email_address", "string"),
                ("machine_open", "?string"),
                ("is_amp", "?boolean"),
            ],
        ),
        "users.messages.pushnotification.Open" => (MESSAGE, &[("platform", "?string")]),
        "users.messages.email.Click" => (
            MESSAGE,
            &[
                ("email_address", "string"),
                ("url", "?string"),
                ("is_suspected_bot_click", "?boolean"),
            ],
        ),
        "users.behaviors.Purchase" => (
            BEHAVIOR,
            &[
                ("product_id", "string"),
                ("price", "float"),
                ("currency", "string"),
                ("properties", "string"),
            ],
        ),
        "users.behaviors.app.SessionStart" => (BEHAVIOR, &[("session_id", "string")]),
        _ => (MESSAGE, &[]),
    };
    base.iter().chain(extra).copied().collect()
}

fn schema(event_type: &str) -> Result<Schema, String> {
    let types: Vec<serde_json::Value> = fields(event_type)
        .iter()
        .map(|(name, t)| match t.strip_prefix('?') {
            Some(inner) => serde_json::json!({"name": name, "type": ["null", inner]}),
            None => serde_json::json!({"name": name, "type": t}),
        })
        .collect();
    let name = event_type.rsplit('.').next().unwrap_or("Event");
    let text = serde_json::json!({"type": "record", "name": name, "namespace": "com.appboy.currents", "fields": types});
    Schema::parse_str(&text.to_string()).map_err(|e| e.to_string())
}

/// How the files are laid out and what noise is injected (0: none of that kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Hours per queue block (one file per event type and block).
    pub block_hours: i64,
    /// Every n-th event goes into the next block's file (a late event).
    pub late_every: u64,
    /// Every n-th event is written a second time, in the block after next (redelivery).
    pub duplicate_every: u64,
    /// After every n-th email open, a machine open of the same message.
    pub machine_open_every: u64,
    /// After every n-th email click, a suspected bot click of the same message.
    pub bot_click_every: u64,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written, per codec name.
    pub files: BTreeMap<&'static str, u64>,
    /// Events written once (the ones an import should give back).
    pub events: u64,
    /// Redelivered copies.
    pub duplicates: u64,
    /// Machine opens injected.
    pub machine_opens: u64,
    /// Bot clicks injected.
    pub bot_clicks: u64,
    /// Events written in a later block than their own.
    pub late: u64,
    /// Events Currents has no type for (a click on a push message: Braze logs push opens
    /// only), not written.
    pub inexpressible: u64,
}

struct OpenFile {
    writer: Writer<'static, BufWriter<File>>,
    path: PathBuf,
    codec: &'static str,
}

/// Writes events as Currents files under `root`, streaming (events in time order).
pub struct CurrentsWriter {
    root: PathBuf,
    layout: Layout,
    schemas: HashMap<&'static str, &'static Schema>,
    open: BTreeMap<(i64, &'static str), OpenFile>,
    channels: HashMap<String, Channel>,
    seq: u64,
    written: Written,
}

const TYPES: [&str; 7] = [
    "users.messages.email.Send",
    "users.messages.pushnotification.Send",
    "users.messages.email.Open",
    "users.messages.pushnotification.Open",
    "users.messages.email.Click",
    "users.behaviors.Purchase",
    "users.behaviors.app.SessionStart",
];

impl CurrentsWriter {
    /// Files go under `root/event_type=…/date=…/`.
    pub fn new(root: &Path, layout: Layout) -> Result<Self, SynthError> {
        let mut schemas = HashMap::new();
        for t in TYPES {
            let s = schema(t).map_err(|message| SynthError::Write {
                path: t.into(),
                message,
            })?;
            // A handful of schemas for the life of a test or benchmark process.
            schemas.insert(t, &*Box::leak(Box::new(s)));
        }
        Ok(Self {
            root: root.to_path_buf(),
            layout,
            schemas,
            open: BTreeMap::new(),
            channels: HashMap::new(),
            seq: 0,
            written: Written::default(),
        })
    }

    /// Numbers the next event's id `seq + 1` (ids are `ev-<number>`): a second writer into the
    /// same source starts past the first one's ids.
    pub fn starting_at(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// Writes one event (and the noise it draws); a Purchase without currency is in KRW.
    pub fn push(&mut self, e: &Event<'_>) -> Result<(), SynthError> {
        self.seq += 1;
        let n = self.seq;
        let at = e.at.timestamp();
        let block = at.div_euclid(self.layout.block_hours * 3600);
        let every = |k: u64| k > 0 && n.is_multiple_of(k);
        self.close_before(block - 1)?;
        let channel = match (e.event, e.campaign_id.as_deref()) {
            (EventType::Sent, Some(c)) => {
                let ch = e.channel.unwrap_or(Channel::Email);
                self.channels.insert(c.to_owned(), ch);
                ch
            }
            (_, Some(c)) => self.channels.get(c).copied().unwrap_or(Channel::Email),
            _ => Channel::Email,
        };
        let event_type = match (e.event, channel) {
            (EventType::Sent, Channel::Push) => "users.messages.pushnotification.Send",
            (EventType::Sent, _) => "users.messages.email.Send",
            (EventType::Opened, Channel::Push) => "users.messages.pushnotification.Open",
            (EventType::Opened, _) => "users.messages.email.Open",
            (EventType::Clicked, Channel::Email) => "users.messages.email.Click",
            (EventType::Purchase, _) => "users.behaviors.Purchase",
            (EventType::Visit, _) => "users.behaviors.app.SessionStart",
            _ => {
                self.written.inexpressible += 1;
                return Ok(());
            }
        };
        let id = format!("ev-{n:010}");
        let once = record(event_type, &id, e, None);
        let late = every(self.layout.late_every);
        self.write(block + i64::from(late), event_type, once.clone())?;
        self.written.events += 1;
        self.written.late += u64::from(late);
        if every(self.layout.duplicate_every) {
            self.write(block + 2, event_type, once)?;
            self.written.duplicates += 1;
        }
        if event_type == "users.messages.email.Open" && every(self.layout.machine_open_every) {
            let noise = record(
                event_type,
                &format!("{id}-machine"),
                e,
                Some("machine_open"),
            );
            self.write(block, event_type, noise)?;
            self.written.machine_opens += 1;
        }
        if event_type == "users.messages.email.Click" && every(self.layout.bot_click_every) {
            let noise = record(
                event_type,
                &format!("{id}-bot"),
                e,
                Some("is_suspected_bot_click"),
            );
            self.write(block, event_type, noise)?;
            self.written.bot_clicks += 1;
        }
        Ok(())
    }

    fn write(
        &mut self,
        block: i64,
        event_type: &'static str,
        record: Value,
    ) -> Result<(), SynthError> {
        if !self.open.contains_key(&(block, event_type)) {
            let file = self.create(block, event_type)?;
            self.open.insert((block, event_type), file);
        }
        if let Some(file) = self.open.get_mut(&(block, event_type)) {
            file.writer.append(record).map_err(|e| SynthError::Write {
                path: file.path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn create(&mut self, block: i64, event_type: &'static str) -> Result<OpenFile, SynthError> {
        let start = chrono::DateTime::from_timestamp(block * self.layout.block_hours * 3600, 0)
            .unwrap_or_default();
        let dir = self
            .root
            .join(format!("event_type={event_type}"))
            .join(format!("date={}", start.format("%Y-%m-%d-%H")));
        let files: u64 = self.written.files.values().sum();
        let (codec, name) = match files % 3 {
            0 => (Codec::Null, "null"),
            1 => (Codec::Deflate(DeflateSettings::default()), "deflate"),
            _ => (Codec::Snappy, "snappy"),
        };
        let path = dir.join(format!("{}.{files:06}.avro", block));
        let fail = |message: String| SynthError::Write {
            path: path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let file = File::create(&path).map_err(|e| fail(e.to_string()))?;
        let schema = self
            .schemas
            .get(event_type)
            .copied()
            .ok_or_else(|| fail("no schema".into()))?;
        *self.written.files.entry(name).or_default() += 1;
        Ok(OpenFile {
            writer: Writer::with_codec(schema, BufWriter::with_capacity(1 << 16, file), codec),
            path,
            codec: name,
        })
    }

    fn close_before(&mut self, block: i64) -> Result<(), SynthError> {
        while let Some(entry) = self.open.first_entry() {
            if entry.key().0 >= block {
                break;
            }
            close(entry.remove())?;
        }
        Ok(())
    }

    /// Closes every file; what was written.
    pub fn finish(mut self) -> Result<Written, SynthError> {
        self.close_before(i64::MAX)?;
        Ok(self.written)
    }
}

fn close(file: OpenFile) -> Result<(), SynthError> {
    let fail = |message: String| SynthError::Write {
        path: file.path.display().to_string(),
        message: format!("{message} ({} codec)", file.codec),
    };
    let mut inner = file.writer.into_inner().map_err(|e| fail(e.to_string()))?;
    inner.flush().map_err(|e| fail(e.to_string()))
}

/// The Currents record of `e` as `event_type`; `noise` sets `machine_open` or
/// `is_suspected_bot_click`.
fn record(event_type: &str, id: &str, e: &Event<'_>, noise: Option<&str>) -> Value {
    let given = |name: &str| -> Option<Value> {
        let text = |s: &str| Some(Value::String(s.to_owned()));
        match name {
            "id" => text(id),
            "user_id" => text(&format!("braze-{}", e.user_id)),
            "external_user_id" => text(&e.user_id),
            "time" => Some(Value::Int(
                i32::try_from(e.at.timestamp()).unwrap_or(i32::MAX),
            )),
            "campaign_id" => e.campaign_id.as_deref().and_then(text),
            "dispatch_id" => e.dispatch_id.as_deref().and_then(text),
            "url" => e.url.as_deref().and_then(text),
            "platform" => text("ios"),
            "email_address" => text(&format!("{}@example.com", e.user_id)),
            "session_id" => text(id),
            "product_id" => text("sku"),
            "price" => Some(Value::Float(e.value.unwrap_or(0) as f32)),
            "currency" => text(e.currency.as_deref().unwrap_or("KRW")),
            "properties" => text("{}"),
            "message_extras" => e
                .extras
                .as_ref()
                .and_then(|x| serde_json::to_string(x).ok())
                .and_then(|s| text(&s)),
            "machine_open" if noise == Some("machine_open") => text("true"),
            "is_suspected_bot_click" if noise == Some("is_suspected_bot_click") => {
                Some(Value::Boolean(true))
            }
            _ => None,
        }
    };
    Value::Record(
        fields(event_type)
            .into_iter()
            .map(|(name, t)| {
                let v = given(name);
                let v = if t.starts_with('?') {
                    match v {
                        Some(v) => Value::Union(1, Box::new(v)),
                        None => Value::Union(0, Box::new(Value::Null)),
                    }
                } else {
                    v.unwrap_or_else(|| Value::String(String::new()))
                };
                (name.to_owned(), v)
            })
            .collect(),
    )
}
