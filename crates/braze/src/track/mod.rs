//! Send scores out to Braze: each user's `sendtime_score` and `sendtime_scored_at` written as
//! custom attributes through `POST /users/track` ([`push`]), or as Cloud Data Ingestion JSON
//! Lines ([`cdi`]).
//!
//! The pieces, in the order a push uses them: [`scores`] reads `audience score`'s records
//! (bad lines kept by number), [`attributes`] shapes one user's attributes object, [`state`]
//! is the append-only log of what Braze accepted (the checkpoint, and the memory that lets an
//! unchanged score be skipped), [`rate`] paces requests by Braze's `X-RateLimit-*` headers,
//! [`client`] sends one batch and reads Braze's answer, and [`push`] runs them all.

/// One user's score as `/users/track` custom attributes.
pub mod attributes;
/// Scores as Cloud Data Ingestion JSON Lines files, validated and split under 512 MB.
pub mod cdi;
/// One `POST /users/track` and what Braze's answer means.
pub mod client;
/// A push: changed scores in batches, paced, retried, logged once accepted.
pub mod push;
/// Pacing by Braze's `X-RateLimit-*` headers, 429 and `Retry-After`.
pub mod rate;
/// Reading the score records `audience score --out` writes.
pub mod scores;
/// The push state: an append-only log of what Braze accepted (resume, skip unchanged).
pub mod state;

pub use attributes::ScoreUpdate;
pub use client::ApiKey;
pub use push::{push, PushConfig, PushError, PushReport};
pub use scores::{read_scores, BadLine, ScoreFile};
