//! One user's score as Braze custom attributes: the `/users/track` attributes object and the
//! Cloud Data Ingestion payload carry the same two attributes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The custom attribute holding the score (0–1).
pub const SCORE_ATTRIBUTE: &str = "sendtime_score";
/// The custom attribute holding when the score was computed (a Braze time attribute).
pub const SCORED_AT_ATTRIBUTE: &str = "sendtime_scored_at";

/// One user's score, as it goes to Braze.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreUpdate {
    /// The user's id in Braze (`external_id`): sendtime's user id.
    pub external_id: String,
    /// The modelled chance to open the next message, 0–1.
    pub score: f64,
    /// When the score was computed.
    pub scored_at: DateTime<Utc>,
}

impl ScoreUpdate {
    /// `scored_at` as Braze reads a time attribute. Braze: "Dates (Must be stored in the
    /// ISO 8601 format or in the `yyyy-MM-dd'T'HH:mm:ss:SSSZ` format)" and "Date attributes
    /// without a timezone will default to Midnight UTC", so the zone is always written (`Z`)
    /// — https://www.braze.com/docs/api/objects_filters/user_attributes_object/
    pub fn scored_at_text(&self) -> String {
        self.scored_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// The attributes object of `POST /users/track`.
    ///
    /// Braze: "Setting this flag to true puts the API in "Update Only" mode" — a user Braze
    /// does not know is never created (`_update_existing_only`), and "One of "external_id" or
    /// "user_alias" or "braze_id" or "email" or "phone" is required"
    /// — https://www.braze.com/docs/api/objects_filters/user_attributes_object/
    pub fn attributes_object(&self) -> AttributesObject<'_> {
        AttributesObject {
            external_id: &self.external_id,
            payload: self.payload(),
        }
    }

    /// The two custom attributes alone (the CDI `payload`, and the state log's values).
    pub fn payload(&self) -> ScorePayload {
        ScorePayload {
            update_existing_only: true,
            sendtime_score: self.score,
            sendtime_scored_at: self.scored_at_text(),
        }
    }
}

/// The two attributes, plus update-only mode; serialised as the CDI payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePayload {
    /// Always `true`: never create a profile.
    #[serde(rename = "_update_existing_only")]
    pub update_existing_only: bool,
    /// [`SCORE_ATTRIBUTE`].
    pub sendtime_score: f64,
    /// [`SCORED_AT_ATTRIBUTE`], ISO 8601 with its zone.
    pub sendtime_scored_at: String,
}

/// One element of `/users/track`'s `attributes` array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributesObject<'a> {
    /// The user to update.
    pub external_id: &'a str,
    /// `_update_existing_only` and the two attributes.
    #[serde(flatten)]
    pub payload: ScorePayload,
}

/// The body of one `POST /users/track`: `{"attributes": [...]}`.
#[derive(Debug, Serialize)]
pub struct TrackRequest<'a> {
    /// At most the batch size (75 by default) objects.
    pub attributes: Vec<AttributesObject<'a>>,
}

/// The JSON body for `users`, ready to send (serialised once, resent as is on a retry).
pub fn request_body(users: &[ScoreUpdate]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&TrackRequest {
        attributes: users.iter().map(ScoreUpdate::attributes_object).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn update() -> ScoreUpdate {
        ScoreUpdate {
            external_id: "u000001".into(),
            score: 0.41,
            scored_at: Utc
                .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        }
    }

    #[test]
    fn a_request_body_carries_update_only_mode_once_and_both_attributes() {
        // GIVEN one user's score WHEN the request body is built
        let body = request_body(&[update()]).unwrap();
        let text = String::from_utf8(body).unwrap();
        // THEN it is exactly the documented shape, the flag written once
        assert_eq!(
            text,
            r#"{"attributes":[{"external_id":"u000001","_update_existing_only":true,"sendtime_score":0.41,"sendtime_scored_at":"2026-12-01T00:00:00Z"}]}"#
        );
    }

    #[test]
    fn a_time_with_fractions_of_a_second_keeps_them_and_its_zone() {
        // GIVEN a score computed at a sub-second instant
        let mut u = update();
        u.scored_at += chrono::Duration::milliseconds(250);
        // THEN the time attribute keeps the milliseconds and says UTC
        assert_eq!(u.scored_at_text(), "2026-12-01T00:00:00.250Z");
    }
}
