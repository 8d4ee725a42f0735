//! What a block answers: one JSON object per user and block, the same shape whether the user
//! is known or not, so a Liquid template can branch on `eligible` and `stage` alone.

use crate::ids::{ItemId, UserId};
use crate::model::Item;
use crate::money::{discounted, display_price};
use crate::rules::onboarding::OnboardingContent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io;

pub use crate::rules::{BlockKind, UnknownBlock};

/// Where a block's items came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemSource {
    /// The user's own precomputed ranked list.
    Personalized,
    /// The popular list of a category the user prefers (or the cart's categories).
    CategoryPopular,
    /// The global popular list.
    Popular,
    /// The user's own cart.
    Cart,
    /// The user's viewing and purchase history.
    History,
}

/// The stage of a block's journey (BRIEF §2); templates branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Recommendations drawn at least partly from the user's own list.
    Personalized,
    /// Recommendations drawn only from popular lists (cold or unknown user).
    Fallback,
    /// Cart, 1–2 days: the cart items.
    Reminder,
    /// Cart, 3–4 days: the items with ratings and a review snippet.
    SocialProof,
    /// Cart, 5–6 days: low stock or an active discount, else a nudge.
    Urgency,
    /// Cart, 7 days on: similar in-stock items.
    Alternatives,
    /// Win-back, no message unanswered yet: the last viewed or bought items.
    LastInterest,
    /// Win-back, 1–2 unanswered: an offer on the most-bought category.
    PersonalOffer,
    /// Win-back, 3 or more unanswered: ask whether to keep in touch (no items).
    Feedback,
    /// Onboarding, first days after sign-up: the key features.
    Welcome,
    /// Onboarding, a few days in: how-to and FAQ links.
    Guide,
    /// Onboarding, the last days: a first-use benefit and popular items.
    Incentive,
}

/// Why a block is not eligible; the template should `abort_message` on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Cart: no cart, or none of its items is in the catalog.
    CartEmpty,
    /// Cart: bought after the cart last changed.
    Purchased,
    /// Cart or onboarding: the first stage has not started yet.
    TooEarly,
    /// Win-back: the user is active.
    Active,
    /// No profile for this user.
    UnknownUser,
    /// Nothing at all could be shown (empty catalog): better to send nothing.
    NoItems,
    /// Onboarding: the user has made the first key action already.
    Activated,
    /// Onboarding: the onboarding window is over (the dormancy flow takes over).
    Expired,
}

/// What made the urgency stage urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgencyKind {
    /// An item is at or below the low-stock threshold.
    LowStock,
    /// An item has an active discount.
    Discount,
    /// Neither low stock nor a discount: a gentle nudge.
    Nudge,
}

/// The win-back offer of the `personal_offer` stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    /// The user's most-bought category, or `None` when we know none.
    pub category: Option<String>,
    /// Percent off.
    pub discount_pct: u8,
}

/// One item as a template sees it. Fields beyond the basics appear only where the stage
/// needs them, so blocks stay a few KB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockItem {
    /// Catalog id.
    pub id: ItemId,
    /// Product name.
    pub title: String,
    /// Category key.
    pub category: String,
    /// Product page.
    pub url: String,
    /// Image.
    pub image_url: String,
    /// Price in minor units of `currency`.
    pub price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// `price` ready to print (`₩12,900`).
    pub display_price: String,
    /// Where the item came from.
    pub source: ItemSource,
    /// 1-based place in the block, for click attribution (set when the block is sealed).
    pub position: u32,
    /// Cart quantity (cart stages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Average rating (recommendations, social proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f32>,
    /// Number of reviews (recommendations, social proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_count: Option<u32>,
    /// The top review, cut to `REVIEW_SNIPPET_CHARS` (social proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_snippet: Option<String>,
    /// Units left (urgency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock: Option<u32>,
    /// Stock at or below the threshold (urgency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_stock: Option<bool>,
    /// Percent off, when discounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_pct: Option<u8>,
    /// Price after the discount, minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_price: Option<i64>,
    /// `sale_price` ready to print.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_sale_price: Option<String>,
}

/// Longest review snippet we put in a block, in characters.
pub const REVIEW_SNIPPET_CHARS: usize = 140;

impl BlockItem {
    /// The basic fields of `item`, from `source`.
    pub fn from_item(item: &Item, source: ItemSource) -> Self {
        Self {
            id: item.item_id.clone(),
            title: item.title.clone(),
            category: item.category.clone(),
            url: item.url.clone(),
            image_url: item.image_url.clone(),
            price: item.price,
            currency: item.currency.clone(),
            display_price: display_price(item.price, &item.currency),
            source,
            position: 0,
            quantity: None,
            rating: None,
            review_count: None,
            review_snippet: None,
            stock: None,
            low_stock: None,
            discount_pct: None,
            sale_price: None,
            display_sale_price: None,
        }
    }

    /// Adds the cart quantity.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = Some(quantity);
        self
    }

    /// Adds rating, review count and a review snippet.
    pub fn with_social_proof(mut self, item: &Item) -> Self {
        self.rating = item.rating;
        self.review_count = Some(item.review_count);
        self.review_snippet = item
            .top_review
            .as_deref()
            .map(|r| snippet(r, REVIEW_SNIPPET_CHARS));
        self
    }

    /// Adds rating and review count.
    pub fn with_rating(mut self, item: &Item) -> Self {
        self.rating = item.rating;
        self.review_count = Some(item.review_count);
        self
    }

    /// Adds stock and whether it is low.
    pub fn with_stock(mut self, item: &Item, low_stock_threshold: u32) -> Self {
        self.stock = Some(item.stock);
        self.low_stock = Some(item.stock <= low_stock_threshold);
        self
    }

    /// Applies a discount of `pct` percent.
    pub fn with_discount(mut self, pct: u8) -> Self {
        let sale = discounted(self.price, pct);
        self.discount_pct = Some(pct);
        self.sale_price = Some(sale);
        self.display_sale_price = Some(display_price(sale, &self.currency));
        self
    }

    /// Applies the item's own discount if it is active at `now`.
    pub fn with_active_discount(self, item: &Item, now: DateTime<Utc>) -> Self {
        match &item.discount {
            Some(d) if d.is_active(now) => self.with_discount(d.pct),
            _ => self,
        }
    }
}

fn snippet(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() {
        format!("{}…", head.trim_end())
    } else {
        head
    }
}

/// A block's answer. `reason` is set exactly when `eligible` is false; `stage` exactly when it
/// is true.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    /// Attribution id: the same for the same user, block and shown content (Braze renders
    /// one email's HTML, text and AMP parts separately: they agree), different when what is
    /// shown changes — `days` included, so a cart's id moves on as its age does. Set by
    /// [`Block::sealed`].
    pub rec_id: String,
    /// Whose block.
    pub user_id: UserId,
    /// Which block.
    pub block: BlockKind,
    /// Whether to send it; a template aborts when false.
    pub eligible: bool,
    /// Why not, when not eligible.
    pub reason: Option<Reason>,
    /// The journey stage, when eligible.
    pub stage: Option<Stage>,
    /// Source of the first item (the best one present), `None` when there are no items.
    pub source: Option<ItemSource>,
    /// True when the store could not be read and this is fallback content.
    pub degraded: bool,
    /// The items to show, best first.
    pub items: Vec<BlockItem>,
    /// The win-back offer (`personal_offer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
    /// What makes the cart urgent (`urgency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<UrgencyKind>,
    /// Whole days since the cart changed (cart), the last activity (dormancy) or sign-up
    /// (onboarding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// The onboarding stages' content (features, guide links, benefit); empty elsewhere.
    #[serde(flatten)]
    pub onboarding: OnboardingContent,
}

impl Block {
    /// A block that should not be sent, for `reason`.
    pub fn not_eligible(user_id: UserId, block: BlockKind, reason: Reason) -> Self {
        Self {
            rec_id: String::new(),
            user_id,
            block,
            eligible: false,
            reason: Some(reason),
            stage: None,
            source: None,
            degraded: false,
            items: Vec::new(),
            offer: None,
            urgency: None,
            days: None,
            onboarding: OnboardingContent::default(),
        }
    }

    /// A block in `stage` with these items.
    pub fn eligible(
        user_id: UserId,
        block: BlockKind,
        stage: Stage,
        items: Vec<BlockItem>,
    ) -> Self {
        Self {
            rec_id: String::new(),
            user_id,
            block,
            eligible: true,
            reason: None,
            stage: Some(stage),
            source: items.first().map(|i| i.source),
            degraded: false,
            items,
            offer: None,
            urgency: None,
            days: None,
            onboarding: OnboardingContent::default(),
        }
    }

    /// Sets the whole days the stage was judged by.
    pub fn with_days(mut self, days: i64) -> Self {
        self.days = Some(days);
        self
    }

    /// Finishes a block for answering: numbers the items from 1 and sets `rec_id` to a hash
    /// of everything the answer shows (so equal answers share it and any change of content,
    /// stage or user gives a new one).
    pub fn sealed(mut self) -> Self {
        for (index, item) in self.items.iter_mut().enumerate() {
            item.position = u32::try_from(index + 1).unwrap_or(u32::MAX);
        }
        self.rec_id.clear();
        let mut hasher = ContentHasher(xxhash_rust::xxh3::Xxh3::new());
        // Writing into a hasher cannot fail, and the block serializes without error (plain
        // data, string keys); an error would only weaken the id, never fail the answer.
        let _ = serde_json::to_writer(&mut hasher, &self);
        self.rec_id = format!("{:016x}", hasher.0.digest());
        self
    }
}

/// Feeds serialized bytes to the hash without building the string.
struct ContentHasher(xxhash_rust::xxh3::Xxh3);

impl io::Write for ContentHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_kind_parses_only_known_names() {
        for k in BlockKind::ALL {
            assert_eq!(k.as_str().parse::<BlockKind>(), Ok(k));
        }
        assert!("Cart".parse::<BlockKind>().is_err());
        assert!("onboarding2".parse::<BlockKind>().is_err());
    }

    #[test]
    fn snippet_cuts_on_characters_not_bytes() {
        assert_eq!(snippet("짧은 리뷰", 10), "짧은 리뷰");
        assert_eq!(snippet("아주 좋아요 정말", 6), "아주 좋아요…");
    }
}
