//! A block as a message, before any channel: the slot's copy filled in, the items as entries
//! with prices written in the message's language. Channels only lay it out and cut it.

use crate::copy::{fill, CopyBook, Field};
use crate::locale::Locale;
use crate::text::{safe_url, tidy};
use crate::view::{BlockView, ItemView};
use sendtime_domain::money::group_thousands;

/// One line of a message: an item, a feature or a guide link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is (tidied text; not yet escaped).
    pub title: String,
    /// Its page, when a safe link.
    pub url: Option<String>,
    /// Its image, when a safe link.
    pub image_url: Option<String>,
    /// The price to pay, written for the locale.
    pub price: Option<String>,
    /// The price before a discount, when discounted.
    pub was_price: Option<String>,
    /// One short line more: rating, stock, discount, a feature's description.
    pub note: Option<String>,
}

/// A block's message in one language, for one channel's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Which block.
    pub block: String,
    /// The block's stage.
    pub stage: String,
    /// The copy slot used.
    pub slot: &'static str,
    /// The language.
    pub locale: Locale,
    /// The attribution id of the block it came from.
    pub rec_id: String,
    /// Headline.
    pub title: String,
    /// The sentence under it.
    pub body: String,
    /// Button label.
    pub cta: String,
    /// Button link (safe; empty when there is none).
    pub cta_url: String,
    /// Items, features or links.
    pub entries: Vec<Entry>,
}

impl Message {
    /// The image that stands for the message (the first entry's).
    pub fn image_url(&self) -> Option<&str> {
        self.entries.iter().find_map(|e| e.image_url.as_deref())
    }

    /// Where a one-link channel (push, SMS) sends the reader: the button, else the first
    /// entry's page.
    pub fn link(&self) -> Option<&str> {
        if !self.cta_url.is_empty() {
            return Some(&self.cta_url);
        }
        self.entries.iter().find_map(|e| e.url.as_deref())
    }
}

/// The copy slot of an eligible block (`None` for a block or stage we have no words for).
pub fn slot_of(view: &BlockView) -> Option<&'static str> {
    let stage = view.stage.as_deref()?;
    let first = view.items.first();
    let name = match (view.block.as_str(), stage) {
        ("recommendations", "personalized") => "recommendations.personalized",
        ("recommendations", "fallback") => "recommendations.fallback",
        ("cart", "reminder") => "cart.reminder",
        ("cart", "social_proof")
            if first.is_some_and(|i| i.rating.is_some() && i.review_count.unwrap_or(0) > 0) =>
        {
            "cart.social_proof"
        }
        ("cart", "social_proof") => "cart.social_proof_unrated",
        ("cart", "urgency") => match view.urgency.as_deref() {
            Some("low_stock") if first.is_some_and(|i| i.stock.is_some()) => {
                "cart.urgency_low_stock"
            }
            Some("discount") if first.is_some_and(|i| i.sale_price.is_some()) => {
                "cart.urgency_discount"
            }
            _ => "cart.urgency_nudge",
        },
        ("cart", "alternatives") => "cart.alternatives",
        ("dormancy", "last_interest") => "dormancy.last_interest",
        ("dormancy", "personal_offer")
            if view.offer.as_ref().is_some_and(|o| o.category.is_some()) =>
        {
            "dormancy.personal_offer"
        }
        ("dormancy", "personal_offer") => "dormancy.personal_offer_any",
        ("dormancy", "feedback") => "dormancy.feedback",
        ("onboarding", "welcome") => "onboarding.welcome",
        ("onboarding", "guide") => "onboarding.guide",
        ("onboarding", "incentive") => "onboarding.incentive",
        _ => return None,
    };
    Some(name)
}

/// The placeholder values a block offers (each slot uses only those it always has).
fn vars(view: &BlockView, locale: Locale) -> Vec<(&'static str, String)> {
    let mut vars = vec![("count", view.items.len().to_string())];
    if let Some(days) = view.days {
        vars.push(("days", days.to_string()));
    }
    if let Some(item) = view.items.first() {
        vars.push(("item", tidy(&item.title)));
        vars.push(("price", locale.money(item.price, &item.currency)));
        if let (Some(rating), Some(reviews)) = (item.rating, item.review_count) {
            vars.push(("rating", format!("{rating:.1}")));
            vars.push(("reviews", group_thousands(u64::from(reviews))));
        }
        if let Some(stock) = item.stock {
            vars.push(("stock", stock.to_string()));
        }
        if let (Some(sale), Some(pct)) = (item.sale_price, item.discount_pct) {
            vars.push(("sale_price", locale.money(sale, &item.currency)));
            vars.push(("discount_pct", pct.to_string()));
        }
    }
    if let Some(offer) = &view.offer {
        vars.retain(|(n, _)| *n != "discount_pct");
        vars.push(("discount_pct", offer.discount_pct.to_string()));
        if let Some(category) = &offer.category {
            vars.push(("category", tidy(category)));
        }
    }
    if let Some(benefit) = &view.benefit {
        vars.push(("benefit", tidy(&benefit.title)));
        if let Some(code) = &benefit.code {
            vars.push(("code", tidy(code)));
        }
    }
    vars
}

fn item_entry(item: &ItemView, view: &BlockView, locale: Locale) -> Entry {
    let price = locale.money(item.price, &item.currency);
    let (price, was_price) = match item.sale_price {
        Some(sale) => (locale.money(sale, &item.currency), Some(price)),
        None => (price, None),
    };
    let note = match view.stage.as_deref() {
        Some("social_proof") => match (item.rating, item.review_count) {
            (Some(rating), Some(reviews)) if reviews > 0 => {
                let line = locale.rating(rating, reviews);
                Some(match &item.review_snippet {
                    Some(review) => format!("{line} “{}”", tidy(review)),
                    None => line,
                })
            }
            _ => None,
        },
        _ if item.low_stock == Some(true) => item.stock.map(|s| locale.stock_left(s)),
        _ => item.discount_pct.map(|p| locale.percent_off(p)),
    };
    Entry {
        title: tidy(&item.title),
        url: safe_url(&item.url).map(str::to_owned),
        image_url: safe_url(&item.image_url).map(str::to_owned),
        price: Some(price),
        was_price,
        note,
    }
}

/// The message of `view` for `channel` in `locale`, or `None` when the block is not
/// eligible (nothing to send) or has no copy.
pub fn compose(
    view: &BlockView,
    book: &CopyBook,
    channel: &str,
    locale: Locale,
) -> Option<Message> {
    if !view.eligible {
        return None;
    }
    let slot = slot_of(view)?;
    let vars = vars(view, locale);
    let text = |field| {
        book.candidates(slot, channel, locale, field)
            .into_iter()
            .find_map(|t| fill(t, &vars))
            .map(|t| tidy(&t))
            .unwrap_or_default()
    };
    let mut entries: Vec<Entry> = view
        .items
        .iter()
        .map(|i| item_entry(i, view, locale))
        .collect();
    entries.extend(view.features.iter().map(|f| Entry {
        title: tidy(&f.title),
        url: safe_url(&f.url).map(str::to_owned),
        image_url: None,
        price: None,
        was_price: None,
        note: Some(tidy(&f.description)).filter(|d| !d.is_empty()),
    }));
    entries.extend(view.guides.iter().map(|g| Entry {
        title: tidy(&g.title),
        url: safe_url(&g.url).map(str::to_owned),
        image_url: None,
        price: None,
        was_price: None,
        note: None,
    }));
    let cta_url = book
        .candidates(slot, channel, locale, Field::CtaUrl)
        .into_iter()
        .find_map(safe_url)
        .map(str::to_owned)
        .or_else(|| entries.iter().find_map(|e| e.url.clone()))
        .unwrap_or_default();
    Some(Message {
        block: view.block.clone(),
        stage: view.stage.clone().unwrap_or_default(),
        slot,
        locale,
        rec_id: view.rec_id.clone(),
        title: text(Field::Title),
        body: text(Field::Body),
        cta: text(Field::Cta),
        cta_url,
        entries,
    })
}
