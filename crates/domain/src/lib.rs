//! The domain core of sendtime: users, catalog items, carts, recommendation and popular
//! lists, and the rules that turn them into content blocks (BRIEF §2).
//!
//! Everything here is a pure function of its inputs and an injected `now`; nothing reads the
//! system clock, the network or the environment. Store adapters and the HTTP layer live in
//! other crates and depend on this one, never the other way round.

pub mod block;
pub mod clock;
pub mod config;
pub mod ids;
pub mod model;
pub mod money;
pub mod rules;

pub use block::{Block, BlockItem, ItemSource, Offer, Reason, Stage, UrgencyKind};
pub use clock::{Clock, FixedClock, SystemClock};
pub use config::{
    CartRules, DormancyRules, ItemLimits, RecommendationRules, RulesConfig, RulesError, RulesFormat,
};
pub use ids::{InvalidUserId, ItemId, UserId};
pub use model::{
    Cart, CartLine, Discount, Item, PopularList, PopularScope, RecList, User, UserData,
};
pub use rules::onboarding::OnboardingRules;
pub use rules::{BlockKind, BlockRule, UnknownBlock};
