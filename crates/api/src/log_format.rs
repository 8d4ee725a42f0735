//! The JSON log line format of every entry point: one object per line — `timestamp` (RFC
//! 3339 UTC with microseconds; left out under Lambda, which stamps each line itself),
//! `level`, `message`, the event's own fields at the top level, `target`. Written field by
//! field straight into the line buffer: the request log is one line per request, so its cost
//! is on every request (tracing-subscriber's JSON format builds a serde map per event and
//! cost about three times as much).

use chrono::{Datelike, Timelike};
use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per log line (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct JsonLines {
    /// Write `timestamp` (off under Lambda: CloudWatch stamps every line).
    pub timestamp: bool,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is built in a reused buffer of this thread with direct (inlined) appends,
        // then handed to the writer in one call: the writer is a `dyn fmt::Write`, and a
        // request's line is some sixty appends.
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                self.format_into(&mut *line, event)?;
                writer.write_str(&line)
            }
            // (re-entered: an event logged while formatting one) format directly
            Err(_) => self.format_into(&mut writer, event),
        })
    }
}

thread_local! {
    /// Each thread's line buffer for [`JsonLines`].
    static LINE: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(512));
}

impl JsonLines {
    fn format_into(&self, out: &mut impl Write, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        out.write_char('{')?;
        if self.timestamp {
            out.write_str("\"timestamp\":\"")?;
            out.write_str(rfc3339_micros(chrono::Utc::now()).as_str())?;
            out.write_str("\",")?;
        }
        out.write_str("\"level\":\"")?;
        out.write_str(meta.level().as_str())?;
        out.write_char('"')?;
        let mut fields = Fields {
            out: &mut *out,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        out.write_str(",\"target\":")?;
        string(out, meta.target())?;
        out.write_str("}\n")
    }
}

/// `2026-11-20T12:00:00.123456Z`: RFC 3339, UTC, microseconds — digit by digit (every
/// request log line carries one; `write!` with seven arguments cost more than the rest of
/// the line).
struct Stamp([u8; 27]);

impl Stamp {
    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

fn rfc3339_micros(now: chrono::DateTime<chrono::Utc>) -> Stamp {
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, now.year().clamp(0, 9999) as u32);
    put(5, 2, now.month());
    put(8, 2, now.day());
    put(11, 2, now.hour());
    put(14, 2, now.minute());
    put(17, 2, now.second().min(59));
    put(20, 6, now.timestamp_subsec_micros().min(999_999));
    Stamp(out)
}

/// Writes each field as `,"name":value`.
struct Fields<'a, W: Write> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: Write> Fields<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_str(",\"")?;
                self.out.write_str(field.name())?;
                self.out.write_str("\":")?;
                value(self.out)
            })();
        }
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| string(w, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |w| {
            if value.is_finite() {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                w.write_str("null")
            }
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what JSON strings may not hold raw: `"`, `\` and control characters.
struct Escaped<W>(W);

impl<W: Write> Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in text.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        use chrono::TimeZone;
        for (secs, nanos) in [
            (0, 0),
            (1_795_000_000, 123_456_789),
            (4_102_444_799, 999_999_999),
        ] {
            let at = chrono::Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(
                rfc3339_micros(at).as_str(),
                at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
        }
    }

    #[test]
    fn each_event_is_one_json_object_with_its_fields_at_the_top_level() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines { timestamp: true })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                route = "/v1/users/{user_id}/{block}",
                status = 200u16,
                latency_ms = 0.125,
                nan = f64::NAN,
                degraded = false,
                delta = -3i64,
                block = Some("cart"),
                "request"
            );
            tracing::warn!(error = %"quote \" back\\slash\nnew line\u{1}", "odd \"text\"");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "request");
        assert_eq!(first["route"], "/v1/users/{user_id}/{block}");
        assert_eq!(first["status"], 200);
        assert_eq!(first["latency_ms"], 0.125);
        assert!(first["nan"].is_null());
        assert_eq!(first["degraded"], false);
        assert_eq!(first["delta"], -3);
        assert_eq!(first["block"], "cart");
        assert!(first["target"].as_str().unwrap().contains("log_format"));
        let stamp = first["timestamp"].as_str().unwrap();
        assert_eq!(stamp.len(), 27, "{stamp}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert_eq!(lines[1]["message"], "odd \"text\"");
        assert_eq!(lines[1]["error"], "quote \" back\\slash\nnew line\u{1}");
    }
}
