//! Lines into batches: each line read as blank, bad (with its reason) or an event object
//! with its id, and events grouped into `{"events":[…]}` bodies under both of the API's
//! limits (events and bytes).

use bytes::Bytes;

/// What a batch body adds around its events: `{"events":[` … `]}`. A batch stays within the
/// API's `MAX_BATCH_BYTES` (256 KiB), far below what a Lambda behind either front door takes:
/// "For synchronous invocations, the maximum payload size is 6 MB."
/// — <https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>
pub(super) const ENVELOPE_BYTES: usize = r#"{"events":[]}"#.len();

/// One event line waiting to be sent.
pub(super) struct Pending {
    pub(super) line: u64,
    pub(super) id: Option<String>,
    pub(super) text: String,
}

/// What one line of the file is.
pub(super) enum Line {
    Blank,
    Bad { code: &'static str, message: String },
    Event(Pending),
}

/// Reads one line: blank, bad (with the reason) or an event object (with its id).
pub(super) fn classify(line: u64, bytes: &[u8], max_event_bytes: usize) -> Line {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.trim(),
        Err(e) => {
            return Line::Bad {
                code: "invalid_utf8",
                message: format!("not UTF-8: {e}"),
            }
        }
    };
    if text.is_empty() {
        return Line::Blank;
    }
    if text.len() > max_event_bytes {
        return Line::Bad {
            code: "too_large",
            message: format!(
                "{} bytes: no batch the API takes can hold it (at most {max_event_bytes})",
                text.len()
            ),
        };
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Line::Event(Pending {
            line,
            id: map.get("id").and_then(|v| v.as_str()).map(str::to_owned),
            text: text.to_owned(),
        }),
        Ok(_) => Line::Bad {
            code: "not_an_object",
            message: "an event is one JSON object a line".to_owned(),
        },
        Err(e) => Line::Bad {
            code: "invalid_json",
            message: format!("not JSON: {e}"),
        },
    }
}

/// Collects events into batches under both limits.
pub(super) struct Batcher {
    pub(super) max_events: usize,
    pub(super) max_bytes: usize,
    pub(super) events: Vec<Pending>,
    /// Bytes of the events and their separating commas.
    pub(super) bytes: usize,
}

impl Batcher {
    /// Adds `event`; a batch when it is full (or `event` would overflow the current one).
    pub(super) fn push(&mut self, event: Pending) -> Option<Vec<Pending>> {
        let comma = usize::from(!self.events.is_empty());
        let mut full = None;
        if ENVELOPE_BYTES + self.bytes + comma + event.text.len() > self.max_bytes {
            full = self.take();
        }
        self.bytes += usize::from(!self.events.is_empty()) + event.text.len();
        self.events.push(event);
        if self.events.len() >= self.max_events {
            return self.take().or(full);
        }
        full
    }

    pub(super) fn take(&mut self) -> Option<Vec<Pending>> {
        self.bytes = 0;
        Some(std::mem::take(&mut self.events)).filter(|e| !e.is_empty())
    }
}

/// A batch body: `{"events":[…]}` with each line's JSON as it was written.
pub(super) fn body_of(events: &[Pending]) -> Bytes {
    let len = ENVELOPE_BYTES + events.iter().map(|e| e.text.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(br#"{"events":["#);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e.text.as_bytes());
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: u64, bytes: usize) -> Pending {
        let pad = "x".repeat(bytes.saturating_sub(r#"{"id":"e","p":""}"#.len()));
        let text = format!(r#"{{"id":"e","p":"{pad}"}}"#);
        assert_eq!(text.len(), bytes);
        Pending {
            line,
            id: Some("e".into()),
            text,
        }
    }

    #[test]
    fn batches_stay_under_both_the_count_and_the_byte_limit() {
        // GIVEN batches of at most 4 events and 200 bytes
        let mut batcher = Batcher {
            max_events: 4,
            max_bytes: 200,
            events: Vec::new(),
            bytes: 0,
        };
        // WHEN 30 events of 20 to 90 bytes are pushed
        let mut batches = Vec::new();
        for i in 0..30u64 {
            if let Some(b) = batcher.push(event(i + 1, 20 + (i as usize * 37) % 71)) {
                batches.push(b);
            }
        }
        batches.extend(batcher.take());
        // THEN every event is in one batch, in order, and every body is within both limits
        let lines: Vec<u64> = batches.iter().flatten().map(|e| e.line).collect();
        assert_eq!(lines, (1..=30).collect::<Vec<_>>());
        for b in &batches {
            assert!(b.len() <= 4 && !b.is_empty());
            let body = body_of(b);
            assert!(body.len() <= 200, "{}", body.len());
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(parsed["events"].as_array().unwrap().len(), b.len());
        }
        assert!(
            batches.iter().any(|b| b.len() < 4),
            "the byte limit never bit"
        );
    }

    #[test]
    fn lines_are_read_as_blank_bad_or_an_event_with_its_id() {
        // GIVEN lines of each kind WHEN read THEN each is told apart, bad ones with a reason
        assert!(matches!(classify(1, b"  \r\n", 100), Line::Blank));
        let code = |bytes: &[u8]| match classify(1, bytes, 40) {
            Line::Bad { code, .. } => code,
            _ => "not bad",
        };
        assert_eq!(code(b"{\"id\":"), "invalid_json");
        assert_eq!(code(b"[1,2]"), "not_an_object");
        assert_eq!(code(b"\xff{}"), "invalid_utf8");
        assert_eq!(
            code(format!("{{\"p\":\"{}\"}}", "x".repeat(40)).as_bytes()),
            "too_large"
        );
        match classify(7, b"{\"id\":\"e7\",\"type\":\"activity\"}\n", 100) {
            Line::Event(p) => {
                assert_eq!((p.line, p.id.as_deref()), (7, Some("e7")));
                assert!(!p.text.ends_with('\n'));
            }
            _ => panic!("an event"),
        }
    }
}
