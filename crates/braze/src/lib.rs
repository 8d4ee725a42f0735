//! Braze in and out. What a CRM team already runs, spoken as Braze documents it:
//! - [`currents`]: Braze Currents' Avro files (local or S3) into sendtime's engagement events
//!   (`sendtime events import --from currents`);
//! - [`track`]: send scores out as custom attributes through `POST /users/track`, or as Cloud
//!   Data Ingestion JSON Lines (`sendtime audience push`);
//! - [`attribution`]: Currents sends, by what their `message_extras` say they showed, joined
//!   with the opens, clicks and purchases that followed (`sendtime events attribution`).

/// Sends joined with what followed them, per block, stage, source and position.
pub mod attribution;
/// Braze Currents' Avro files into sendtime's engagement events.
pub mod currents;
/// Send scores out through `/users/track` or Cloud Data Ingestion.
pub mod track;
