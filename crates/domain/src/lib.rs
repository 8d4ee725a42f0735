//! The domain core of sendtime: users, catalog items, carts, recommendation and popular
//! lists, and the rules that turn them into content blocks (BRIEF §2).
//!
//! Everything here is a pure function of its inputs and an injected `now`; nothing reads the
//! system clock, the network or the environment. Store adapters and the HTTP layer live in
//! other crates and depend on this one, never the other way round.

/// [`Block`]: the JSON answer of one block for one user, and its items, stages and reasons.
pub mod block;
/// [`Clock`]: the injected source of `now` (system time, or pinned for tests and demos).
pub mod clock;
/// [`RulesConfig`]: every threshold and piece of copy of the rules, with BRIEF §2 defaults.
pub mod config;
/// [`CopyRecord`]: marketer-editable copy per block stage, channel and language.
pub mod copy;
/// [`UserId`] (validated, it comes from URLs) and [`ItemId`] (unrestricted, our own data).
pub mod ids;
/// Events in: what each event (a cart, an order, a message sent, …) does to the stored
/// records, the same in every store, whatever order events arrive in.
pub mod ingest;
/// The stored records the rules read: users, items, carts, recommendation and popular lists.
pub mod model;
/// Price display (`₩12,900`, `$12.90`) and discount arithmetic in minor units.
pub mod money;
/// The block rules, one module per block, and the [`BlockKind`] registry.
pub mod rules;
/// The HTTP contract's names shared by the server and our clients: block path, key header.
pub mod wire;

pub use block::{Block, BlockItem, DegradedReason, ItemSource, Offer, Reason, Stage, UrgencyKind};
pub use clock::{Clock, FixedClock, SystemClock};
pub use config::{
    CartRules, DormancyRules, ItemLimits, RecommendationRules, RulesConfig, RulesError, RulesFormat,
};
pub use copy::CopyRecord;
pub use ids::{InvalidUserId, ItemId, UserId};
pub use model::{
    Cart, CartLine, Catalog, Discount, IdHasher, Item, PopularList, PopularScope, RecList,
    SendScore, User, UserData,
};
pub use rules::engagement::{InvalidMinScore, MinScore};
pub use rules::onboarding::OnboardingRules;
pub use rules::{BlockKind, BlockRule, UnknownBlock};
