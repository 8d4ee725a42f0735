//! The engagement event format: JSON Lines, one event a line, in time order — messages sent,
//! opened and clicked (with their campaign), unsubscribes and hard bounces, site visits and
//! purchases. `data generate --events` writes it, `events import --from currents` makes it
//! from Braze Currents, `audience` and `events attribution` read it. Read as a stream: one
//! line in memory at a time, every bad or out-of-order line a clear error naming it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::BufRead;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A campaign's message was sent to the user (needs `campaign_id` and `channel`).
    Sent,
    /// The user opened a campaign's message (needs `campaign_id`).
    Opened,
    /// The user clicked in a campaign's message (needs `campaign_id`).
    Clicked,
    /// The user visited the site or app.
    Visit,
    /// The user bought something (`value` in minor units of `currency`, optional).
    Purchase,
    /// The user unsubscribed (from a campaign's message when `campaign_id` is given).
    Unsubscribed,
    /// A message to the user hard-bounced (the address is dead).
    Bounced,
}

impl EventType {
    /// Whether the event belongs to a campaign's message (sent, opened, clicked).
    pub const fn needs_campaign(self) -> bool {
        matches!(
            self,
            EventType::Sent | EventType::Opened | EventType::Clicked
        )
    }
}

/// The channel a campaign was sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Email.
    Email,
    /// Mobile push.
    Push,
    /// SMS / LMS.
    Sms,
    /// KakaoTalk.
    Kakao,
}

impl Channel {
    /// Every channel, in index order ([`Channel::index`]).
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Push, Channel::Sms, Channel::Kakao];

    /// 0–3, for per-channel counters.
    pub const fn index(self) -> usize {
        match self {
            Channel::Email => 0,
            Channel::Push => 1,
            Channel::Sms => 2,
            Channel::Kakao => 3,
        }
    }

    /// The name in events and flags.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Sms => "sms",
            Channel::Kakao => "kakao",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown channel '{s}' (expected email, push, sms or kakao)"))
    }
}

/// One event line: `{"at":"2026-09-01T09:00:00Z","event":"sent","user_id":"u000001",
/// "campaign_id":"c01","channel":"email"}`. Strings borrow from the line when they can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<'a> {
    /// When it happened (RFC 3339).
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: EventType,
    /// Who it happened to.
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    /// The campaign of a sent, opened or clicked event.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<Cow<'a, str>>,
    /// The channel of a sent event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// A purchase's value in minor units of `currency` (KRW 12900 = ₩12,900; USD 1290 = $12.90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    /// The ISO 4217 currency of `value`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Cow<'a, str>>,
    /// The sending tool's id of one message dispatch (Braze's `dispatch_id`): ties an open
    /// or click to its send when the campaign id alone does not (Canvas steps, resends).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub dispatch_id: Option<Cow<'a, str>>,
    /// The clicked URL of a `clicked` event.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    /// What a `sent` message showed, as the template recorded it with Braze's
    /// `message_extras` tag (`sendtime_rec_id`, `sendtime_block`, `sendtime_stage`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<BTreeMap<String, String>>,
}

impl Event<'_> {
    /// Why the event is incomplete for its type, if it is.
    fn check(&self) -> Result<(), String> {
        if sendtime_domain::UserId::parse(&self.user_id).is_err() {
            return Err(format!("invalid user_id '{}'", self.user_id));
        }
        let needs_campaign = self.event.needs_campaign();
        if needs_campaign && self.campaign_id.as_deref().is_none_or(str::is_empty) {
            return Err(format!("a '{:?}' event needs a campaign_id", self.event).to_lowercase());
        }
        if self.event == EventType::Sent && self.channel.is_none() {
            return Err("a 'sent' event needs a channel (email, push, sms, kakao)".into());
        }
        Ok(())
    }
}

/// A line of an events file that could not be used; reading stops at it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventsError {
    /// The line is not an event.
    #[error("line {line}: {reason}")]
    Bad {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The line is earlier than the one before it.
    #[error("line {line}: event at {at} is earlier than the line before ({previous}): events must be in time order (sort the file by `at`)")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
        /// The line's time.
        at: DateTime<Utc>,
        /// The previous line's time.
        previous: DateTime<Utc>,
    },
    /// The file could not be read.
    #[error("line {line}: unreadable: {reason}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        reason: String,
    },
}

/// Counts of a stream read to its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Events read.
    pub events: u64,
    /// Time of the first event.
    pub first: Option<DateTime<Utc>>,
    /// Time of the last event.
    pub last: Option<DateTime<Utc>>,
}

/// Reads every event in order, one line in memory at a time, handing each to `each` with its
/// 1-based line number; stops at the first bad, incomplete or out-of-order line, or the first
/// error `each` returns.
pub fn for_each_event<E: From<EventsError>>(
    mut input: impl BufRead,
    mut each: impl FnMut(usize, &Event<'_>) -> Result<(), E>,
) -> Result<StreamStats, E> {
    let mut stats = StreamStats::default();
    let mut buf = String::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        line += 1;
        match input.read_line(&mut buf) {
            Ok(0) => return Ok(stats),
            Ok(_) => {}
            Err(e) => {
                return Err(EventsError::Io {
                    line,
                    reason: e.to_string(),
                }
                .into())
            }
        }
        let text = buf.trim_end();
        if text.is_empty() {
            continue;
        }
        let event: Event<'_> = serde_json::from_str(text).map_err(|e| EventsError::Bad {
            line,
            reason: e.to_string(),
        })?;
        event
            .check()
            .map_err(|reason| EventsError::Bad { line, reason })?;
        if let Some(previous) = stats.last {
            if event.at < previous {
                return Err(EventsError::OutOfOrder {
                    line,
                    at: event.at,
                    previous,
                }
                .into());
            }
        }
        stats.events += 1;
        stats.first.get_or_insert(event.at);
        stats.last = Some(event.at);
        each(line, &event)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Event<'static>>, EventsError> {
        let mut out = Vec::new();
        for_each_event::<EventsError>(text.as_bytes(), |_, e| {
            out.push(Event {
                user_id: Cow::Owned(e.user_id.to_string()),
                campaign_id: e.campaign_id.as_ref().map(|c| Cow::Owned(c.to_string())),
                currency: e.currency.as_ref().map(|c| Cow::Owned(c.to_string())),
                dispatch_id: e.dispatch_id.as_ref().map(|c| Cow::Owned(c.to_string())),
                url: e.url.as_ref().map(|c| Cow::Owned(c.to_string())),
                ..e.clone()
            });
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn events_round_trip_and_blank_lines_are_skipped() {
        let text = concat!(
            r#"{"at":"2026-09-01T09:00:00Z","event":"sent","user_id":"u000001","campaign_id":"c01","channel":"email"}"#,
            "\n\n",
            r#"{"at":"2026-09-01T10:00:00Z","event":"opened","user_id":"u000001","campaign_id":"c01"}"#,
            "\n",
            r#"{"at":"2026-09-02T10:00:00Z","event":"purchase","user_id":"u000001","value":12900}"#,
            "\n"
        );
        let events = read(text).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].channel, Some(Channel::Email));
        assert_eq!(events[2].value, Some(12900));
        let line = serde_json::to_string(&events[1]).unwrap();
        assert_eq!(
            line,
            r#"{"at":"2026-09-01T10:00:00Z","event":"opened","user_id":"u000001","campaign_id":"c01"}"#
        );
    }

    #[test]
    fn a_bad_incomplete_or_out_of_order_line_is_named() {
        let bad =
            "{\"at\":\"2026-09-01T09:00:00Z\",\"event\":\"visit\",\"user_id\":\"u1\"}\nnot json\n";
        assert!(matches!(read(bad), Err(EventsError::Bad { line: 2, .. })));
        let no_channel =
            r#"{"at":"2026-09-01T09:00:00Z","event":"sent","user_id":"u1","campaign_id":"c"}"#;
        let err = read(no_channel).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("channel"), "{err}");
        let no_campaign = r#"{"at":"2026-09-01T09:00:00Z","event":"opened","user_id":"u1"}"#;
        assert!(read(no_campaign)
            .unwrap_err()
            .to_string()
            .contains("campaign_id"));
        let bad_user = r#"{"at":"2026-09-01T09:00:00Z","event":"visit","user_id":"../x"}"#;
        assert!(read(bad_user).unwrap_err().to_string().contains("user_id"));
        let unordered = "{\"at\":\"2026-09-02T09:00:00Z\",\"event\":\"visit\",\"user_id\":\"u1\"}\n{\"at\":\"2026-09-01T09:00:00Z\",\"event\":\"visit\",\"user_id\":\"u1\"}\n";
        let err = read(unordered).unwrap_err();
        assert!(matches!(err, EventsError::OutOfOrder { line: 2, .. }));
        assert!(err.to_string().contains("time order"));
    }
}
