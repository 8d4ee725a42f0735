//! What a block answers: one JSON object per user and block, the same shape whether the user
//! is known or not, so a Liquid template can branch on `eligible` and `stage` alone.

use crate::ids::{ItemId, UserId};
use crate::model::{Item, SendScore};
use crate::money::{discounted, Money};
use crate::rules::onboarding::OnboardingContent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;

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

impl ItemSource {
    /// The name written in JSON (as serde writes it).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Personalized => "personalized",
            Self::CategoryPopular => "category_popular",
            Self::Popular => "popular",
            Self::Cart => "cart",
            Self::History => "history",
        }
    }
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
    /// The store could not be read and nothing held could stand in: sending a guess (a cart
    /// that may be bought, a win-back to an active user) is worse than not sending.
    Unavailable,
    /// The user's send score is below the request's `min_score`: not worth a message today.
    LowEngagement,
}

/// Why an answer is `degraded`: built from held data or a fallback because fresh data could
/// not be read in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradedReason {
    /// The request's deadline passed before the store answered.
    Deadline,
    /// The store answered with its own timeout.
    Timeout,
    /// The store throttled the read.
    Throttled,
    /// The store could not be reached, failed, or refused the read.
    Unavailable,
    /// Too many store reads were in flight already: shed to the fallback.
    Overloaded,
}

impl DegradedReason {
    /// The name written in JSON (as serde writes it).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::Timeout => "timeout",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
        }
    }
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
pub struct Offer<'a> {
    /// The user's most-bought category, or `None` when we know none.
    pub category: Option<&'a str>,
    /// Percent off.
    pub discount_pct: u8,
}

/// One item as a template sees it. Fields beyond the basics appear only where the stage
/// needs them, so blocks stay a few KB. Borrows the catalog item it shows: the answer is
/// serialised straight from the shared catalog, nothing copied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockItem<'a> {
    /// Catalog id.
    pub id: ItemId,
    /// Product name.
    pub title: &'a str,
    /// Category key.
    pub category: &'a str,
    /// Product page.
    pub url: &'a str,
    /// Image.
    pub image_url: &'a str,
    /// Price in minor units of `currency`.
    pub price: i64,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// `price` ready to print (`₩12,900`).
    pub display_price: Money<'a>,
    /// Where the item came from.
    pub source: ItemSource,
    /// 1-based place in the block, for click attribution (set when the block is sealed).
    pub position: u32,
    /// Cart quantity (cart stages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Average rating (recommendations, social proof): present — `null` for an item nobody
    /// rated yet — wherever the stage shows ratings, so a template never has to guess.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<Option<f32>>,
    /// Number of reviews (recommendations, social proof).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_count: Option<u32>,
    /// The top review, cut to `REVIEW_SNIPPET_CHARS` (social proof; `null` without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_snippet: Option<Option<Cow<'a, str>>>,
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
    pub display_sale_price: Option<Money<'a>>,
    /// The catalog item shown, whose fixed fields are encoded once ([`Item::encoded`]).
    #[serde(skip)]
    item: &'a Item,
}

/// The fields of a [`BlockItem`] that depend on the catalog item alone, in the order its
/// `Serialize` writes them.
struct FixedFields<'b, 'a>(&'b BlockItem<'a>);

impl Serialize for FixedFields<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let i = self.0;
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("id", &i.id)?;
        map.serialize_entry("title", i.title)?;
        map.serialize_entry("category", i.category)?;
        map.serialize_entry("url", i.url)?;
        map.serialize_entry("image_url", i.image_url)?;
        map.serialize_entry("price", &i.price)?;
        map.serialize_entry("currency", i.currency)?;
        map.serialize_entry("display_price", &i.display_price)?;
        map.end()
    }
}

/// Longest review snippet we put in a block, in characters.
pub const REVIEW_SNIPPET_CHARS: usize = 140;

impl<'a> BlockItem<'a> {
    /// The basic fields of `item`, from `source`.
    pub fn from_item(item: &'a Item, source: ItemSource) -> Self {
        Self {
            id: item.item_id.clone(),
            title: &item.title,
            category: &item.category,
            url: &item.url,
            image_url: &item.image_url,
            price: item.price,
            currency: &item.currency,
            display_price: Money::new(item.price, &item.currency),
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
            item,
        }
    }

    /// Writes the item as a JSON object — the fields and order of its `Serialize` — with
    /// the catalog item's fixed fields (id to `display_price`) copied from their encoding,
    /// made once per cached item ([`Item::encoded`]) instead of once per answer.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let item = self.item;
        let head = item.encoded.get_or_init(|| {
            let fixed = BlockItem::from_item(item, ItemSource::Popular);
            // Plain strings and numbers: encoding into memory cannot fail.
            let mut text = serde_json::to_string(&FixedFields(&fixed)).unwrap_or_default();
            // Without the braces: the head continues into the per-answer fields.
            text.pop();
            text.remove(0);
            text
        });
        out.push(b'{');
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(b",\"source\":\"");
        out.extend_from_slice(self.source.as_str().as_bytes());
        out.extend_from_slice(b"\",\"position\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.position).as_bytes());
        fn field<T: Serialize>(out: &mut Vec<u8>, name: &str, value: &Option<T>) {
            if let Some(value) = value {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
                if serde_json::to_writer(&mut *out, value).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
        field(out, "quantity", &self.quantity);
        field(out, "rating", &self.rating);
        field(out, "review_count", &self.review_count);
        field(out, "review_snippet", &self.review_snippet);
        field(out, "stock", &self.stock);
        field(out, "low_stock", &self.low_stock);
        field(out, "discount_pct", &self.discount_pct);
        field(out, "sale_price", &self.sale_price);
        field(out, "display_sale_price", &self.display_sale_price);
        out.push(b'}');
    }

    /// Adds the cart quantity.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = Some(quantity);
        self
    }

    /// Adds rating, review count and a review snippet.
    pub fn with_social_proof(mut self, item: &'a Item) -> Self {
        self.rating = Some(item.rating);
        self.review_count = Some(item.review_count);
        self.review_snippet = Some(
            item.top_review
                .as_deref()
                .map(|r| snippet(r, REVIEW_SNIPPET_CHARS)),
        );
        self
    }

    /// Adds rating and review count.
    pub fn with_rating(mut self, item: &Item) -> Self {
        self.rating = Some(item.rating);
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
        self.display_sale_price = Some(Money::new(sale, self.currency));
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

/// The text itself when it fits, else its first `max_chars` characters and `…`.
fn snippet(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}…", text[..cut].trim_end())),
    }
}

/// A block's answer. `reason` is set exactly when `eligible` is false; `stage` exactly when it
/// is true. Borrows the request's data (user id, catalog items, configured content); becomes
/// bytes once, in [`Block::encode`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block<'a> {
    /// Whose block.
    pub user_id: &'a UserId,
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
    /// Why it is degraded; `null` when it is not.
    pub degraded_reason: Option<DegradedReason>,
    /// The user's language from the profile (`ko`, `en`); `null` when unknown.
    pub locale: Option<&'a str>,
    /// The user's send-worthiness score, 0–1 (`sendtime audience score`); `null` without one.
    pub send_score: Option<f64>,
    /// When `send_score` was computed (RFC 3339); `null` without a score.
    pub send_score_at: Option<DateTime<Utc>>,
    /// The items to show, best first (written last, by [`Block::encode`]).
    #[serde(skip)]
    pub items: Vec<BlockItem<'a>>,
    /// The win-back offer (`personal_offer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer<'a>>,
    /// What makes the cart urgent (`urgency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<UrgencyKind>,
    /// Whole days since the cart changed (cart), the last activity (dormancy) or sign-up
    /// (onboarding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    /// The onboarding stages' content (features, guide links, benefit); empty elsewhere.
    #[serde(flatten)]
    pub onboarding: OnboardingContent<'a>,
}

/// What the request log and the answer cache keep about an answer besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSummary {
    /// Which block.
    pub block: BlockKind,
    /// Whether to send it.
    pub eligible: bool,
    /// The stage, when eligible.
    pub stage: Option<Stage>,
    /// Source of the first item.
    pub source: Option<ItemSource>,
    /// Fallback content because the store could not be read.
    pub degraded: bool,
    /// Why it is degraded.
    pub degraded_reason: Option<DegradedReason>,
    /// The attribution id written as `rec_id`.
    pub rec_id: u64,
}

/// A block as sent: its JSON and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBlock {
    /// The JSON object, `rec_id` first.
    pub json: Vec<u8>,
    /// What it says, for logs.
    pub summary: BlockSummary,
}

impl EncodedBlock {
    /// `rec_id` as written in the JSON (16 lowercase hex digits).
    pub fn rec_id(&self) -> String {
        format!("{:016x}", self.summary.rec_id)
    }
}

/// `{"rec_id":"` + 16 hex digits + `"`: the fixed-size head [`Block::encode`] writes first and
/// fills in last.
const REC_ID_HEAD: &[u8] = b"{\"rec_id\":\"0000000000000000\"";
const REC_ID_DIGITS: std::ops::Range<usize> = 11..27;

impl<'a> Block<'a> {
    /// A block that should not be sent, for `reason`.
    pub fn not_eligible(user_id: &'a UserId, block: BlockKind, reason: Reason) -> Self {
        Self {
            user_id,
            block,
            eligible: false,
            reason: Some(reason),
            stage: None,
            source: None,
            degraded: false,
            degraded_reason: None,
            locale: None,
            send_score: None,
            send_score_at: None,
            items: Vec::new(),
            offer: None,
            urgency: None,
            days: None,
            onboarding: OnboardingContent::default(),
        }
    }

    /// A block in `stage` with these items.
    pub fn eligible(
        user_id: &'a UserId,
        block: BlockKind,
        stage: Stage,
        items: Vec<BlockItem<'a>>,
    ) -> Self {
        Self {
            user_id,
            block,
            eligible: true,
            reason: None,
            stage: Some(stage),
            source: items.first().map(|i| i.source),
            degraded: false,
            degraded_reason: None,
            locale: None,
            send_score: None,
            send_score_at: None,
            items,
            offer: None,
            urgency: None,
            days: None,
            onboarding: OnboardingContent::default(),
        }
    }

    /// Marks the block as built from held or fallback data, for `reason`.
    pub fn degrade(mut self, reason: DegradedReason) -> Self {
        self.degraded = true;
        self.degraded_reason = Some(reason);
        self
    }

    /// Sets the user's language (from the profile).
    pub fn with_locale(mut self, locale: Option<&'a str>) -> Self {
        self.locale = locale;
        self
    }

    /// Sets the user's send score and when it was computed (`null` both without one).
    pub fn with_score(mut self, score: Option<&SendScore>) -> Self {
        self.send_score = score.map(|s| s.score);
        self.send_score_at = score.map(|s| s.computed_at);
        self
    }

    /// Sets the whole days the stage was judged by.
    pub fn with_days(mut self, days: i64) -> Self {
        self.days = Some(days);
        self
    }

    /// Numbers the items from 1 (their `position`).
    pub fn sealed(mut self) -> Self {
        for (index, item) in self.items.iter_mut().enumerate() {
            item.position = u32::try_from(index + 1).unwrap_or(u32::MAX);
        }
        self
    }

    /// The answer's bytes, serialised once: `rec_id` first, a hash of everything else the
    /// answer shows (so equal answers share it and any change of content, stage, days or
    /// user gives a new one), hashed from the same bytes and written into its reserved place.
    pub fn encode(&self) -> EncodedBlock {
        // 320: a not-eligible answer with a send score and a long user id, without a regrowth.
        let mut json = Vec::with_capacity(320 + 448 * self.items.len());
        json.extend_from_slice(REC_ID_HEAD);
        let body = json.len();
        // The block is plain data with string keys: serialising it into memory cannot fail.
        // Were it ever to, the answer says so instead of carrying a half-written object.
        if serde_json::to_writer(&mut json, self).is_ok() && json.last() == Some(&b'}') {
            // The items last, each from its item's encoded fixed fields.
            json.pop();
            json.extend_from_slice(b",\"items\":[");
            for (i, item) in self.items.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                item.write_json(&mut json);
            }
            json.extend_from_slice(b"]}");
        } else {
            json.truncate(body);
            json.extend_from_slice(b"{\"error\":\"encoding\"}");
        }
        let rec_id = xxhash_rust::xxh3::xxh3_64(&json[body..]);
        // `{"user_id":…}` continues the head: its opening brace becomes the comma.
        json[body] = b',';
        let mut digits = [0u8; 16];
        hex16(rec_id, &mut digits);
        json[REC_ID_DIGITS].copy_from_slice(&digits);
        EncodedBlock {
            json,
            summary: BlockSummary {
                block: self.block,
                eligible: self.eligible,
                stage: self.stage,
                source: self.source,
                degraded: self.degraded,
                degraded_reason: self.degraded_reason,
                rec_id,
            },
        }
    }
}

fn hex16(n: u64, out: &mut [u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
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
    fn rec_id_heads_the_answer_and_hashes_the_rest() {
        let user = UserId::parse("u1").unwrap();
        let a = Block::not_eligible(&user, BlockKind::Cart, Reason::CartEmpty).encode();
        let text = std::str::from_utf8(&a.json).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["rec_id"], a.rec_id());
        assert!(text.starts_with(&format!(
            "{{\"rec_id\":\"{}\",\"user_id\":\"u1\"",
            a.rec_id()
        )));
        assert_eq!(
            a.summary.rec_id,
            xxhash_rust::xxh3::xxh3_64(&{
                let mut rest = a.json[REC_ID_HEAD.len()..].to_vec();
                rest[0] = b'{';
                rest
            })
        );
        let b = Block::not_eligible(&user, BlockKind::Cart, Reason::Purchased).encode();
        assert_ne!(a.rec_id(), b.rec_id());
    }

    fn tricky_item() -> Item {
        let mut item = crate::rules::test_support::item("i\"1", "신발 & <shoes>", 3);
        item.title = "Quote \" back\\slash \u{1} 한글 </script>".into();
        item.url = "https://x.example/a?b=1&c=\"2\"".into();
        item.rating = Some(4.25);
        item.top_review = Some("좋아요 \"정말\"\n다음 줄".into());
        item
    }

    #[test]
    fn an_item_is_written_byte_for_byte_as_serde_writes_it() {
        let now = crate::rules::test_support::now();
        let item = tricky_item();
        let variants = [
            BlockItem::from_item(&item, ItemSource::Personalized),
            BlockItem::from_item(&item, ItemSource::Cart)
                .with_quantity(2)
                .with_social_proof(&item)
                .with_stock(&item, 5)
                .with_discount(15),
            BlockItem::from_item(&item, ItemSource::History).with_active_discount(&item, now),
            BlockItem::from_item(&item, ItemSource::CategoryPopular).with_rating(&item),
        ];
        for (n, mut variant) in variants.into_iter().enumerate() {
            variant.position = n as u32 + 1;
            let mut ours = Vec::new();
            variant.write_json(&mut ours);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&variant).unwrap()
            );
        }
    }

    #[test]
    fn a_cloned_item_encodes_its_own_fields() {
        let item = tricky_item();
        let mut first = Vec::new();
        BlockItem::from_item(&item, ItemSource::Popular).write_json(&mut first);
        let mut changed = item.clone();
        changed.title = "New title".into();
        changed.price = 5_000;
        let mut second = Vec::new();
        BlockItem::from_item(&changed, ItemSource::Popular).write_json(&mut second);
        let second: serde_json::Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(second["title"], "New title");
        assert_eq!(second["display_price"], "₩5,000");
        let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["title"], item.title.as_str());
    }

    #[test]
    fn a_block_writes_its_items_last() {
        let user = UserId::parse("u1").unwrap();
        let item = tricky_item();
        let items = vec![
            BlockItem::from_item(&item, ItemSource::Personalized),
            BlockItem::from_item(&item, ItemSource::Popular).with_rating(&item),
        ];
        let block = Block::eligible(
            &user,
            BlockKind::Recommendations,
            Stage::Personalized,
            items,
        )
        .sealed();
        let encoded = block.encode();
        let value: serde_json::Value = serde_json::from_slice(&encoded.json).unwrap();
        assert_eq!(value["items"].as_array().unwrap().len(), 2);
        assert_eq!(value["items"][1]["position"], 2);
        assert_eq!(value["items"][0]["title"], item.title.as_str());
        assert_eq!(value["stage"], "personalized");
        let empty = Block::not_eligible(&user, BlockKind::Cart, Reason::CartEmpty).encode();
        let value: serde_json::Value = serde_json::from_slice(&empty.json).unwrap();
        assert_eq!(value["items"], serde_json::json!([]));
    }

    #[test]
    fn item_sources_are_named_as_serde_names_them() {
        use ItemSource::*;
        for s in [Personalized, CategoryPopular, Popular, Cart, History] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }

    #[test]
    fn snippet_cuts_on_characters_not_bytes() {
        assert_eq!(snippet("짧은 리뷰", 10), "짧은 리뷰");
        assert_eq!(snippet("아주 좋아요 정말", 6), "아주 좋아요…");
    }
}
