//! A block answer read back from its JSON: what a renderer sees is exactly what a Liquid
//! template sees, and a cached answer renders as well as a fresh one.

use serde::Deserialize;

/// A block answer (the API's JSON object), owned.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BlockView {
    /// Attribution id.
    pub rec_id: String,
    /// Whose block.
    pub user_id: String,
    /// Which block (`cart`).
    pub block: String,
    /// Whether to send it.
    pub eligible: bool,
    /// Why not.
    pub reason: Option<String>,
    /// The stage, when eligible.
    pub stage: Option<String>,
    /// Built from held or fallback data.
    pub degraded: bool,
    /// Why it is degraded.
    pub degraded_reason: Option<String>,
    /// The user's language from the profile.
    pub locale: Option<String>,
    /// Whole days the stage was judged by.
    pub days: Option<i64>,
    /// `low_stock`, `discount`, `nudge` (cart urgency).
    pub urgency: Option<String>,
    /// The win-back offer.
    pub offer: Option<OfferView>,
    /// Items, best first.
    pub items: Vec<ItemView>,
    /// Onboarding welcome: key features.
    pub features: Vec<FeatureView>,
    /// Onboarding guide: how-to links.
    pub guides: Vec<GuideView>,
    /// Onboarding incentive: the benefit.
    pub benefit: Option<BenefitView>,
}

/// The win-back offer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OfferView {
    /// The most-bought category, if known.
    pub category: Option<String>,
    /// Percent off.
    pub discount_pct: u8,
}

/// One item of a block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ItemView {
    /// Catalog id.
    pub id: String,
    /// Product name (untrusted text: escaped by every renderer).
    pub title: String,
    /// Category key.
    pub category: String,
    /// Product page.
    pub url: String,
    /// Image.
    pub image_url: String,
    /// Price in minor units.
    pub price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Cart quantity.
    pub quantity: Option<u32>,
    /// Average rating, when rated.
    pub rating: Option<f32>,
    /// Number of reviews.
    pub review_count: Option<u32>,
    /// The top review.
    pub review_snippet: Option<String>,
    /// Units left.
    pub stock: Option<u32>,
    /// Stock at or below the threshold.
    pub low_stock: Option<bool>,
    /// Percent off.
    pub discount_pct: Option<u8>,
    /// Price after the discount, minor units.
    pub sale_price: Option<i64>,
}

/// A key feature (onboarding welcome).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FeatureView {
    /// Feature key.
    pub key: String,
    /// Headline.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// Where to try it.
    pub url: String,
}

/// A guide link (onboarding guide).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GuideView {
    /// Link text.
    pub title: String,
    /// Link.
    pub url: String,
}

/// The first-use benefit (onboarding incentive).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BenefitView {
    /// Headline.
    pub title: String,
    /// One sentence.
    pub description: String,
    /// Code to enter.
    pub code: Option<String>,
    /// Percent off, for a price benefit.
    pub discount_pct: Option<u8>,
}

impl BlockView {
    /// Reads a block answer's JSON.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}
