//! A deterministic synthetic dataset: the same spec and seed give byte-identical output.
//! Skewed like a real shop: a few items get most views and purchases, carts of 1–5 lines at
//! every age, dormant and active users, some users the model has no list for, some lists
//! already expired, Korean and English product names.

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sendtime_domain::{
    Cart, CartLine, Discount, Item, ItemId, OnboardingRules, PopularList, PopularScope, RecList,
    User, UserId,
};
use sendtime_store::Record;
use std::collections::BTreeMap;

/// What to generate; equal specs give byte-identical datasets.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// Number of users, ids `u000001`..=`u{users}` (see [`user_id`]).
    pub users: usize,
    /// Number of catalog items (at least 1 is generated), ids from `i00000` (see [`item_id`]).
    pub items: usize,
    /// Seed of the random generator.
    pub seed: u64,
    /// The instant ages are measured from; serve with the same `now` to see the same stages.
    pub as_of: DateTime<Utc>,
}

/// Share of users who signed up in the last 10 days (the onboarding block's audience).
pub const NEWCOMER_SHARE: f64 = 0.15;

/// How many items each popular list holds.
pub const GLOBAL_POPULAR_LEN: usize = 50;
/// How many items each category's popular list holds at most.
pub const CATEGORY_POPULAR_LEN: usize = 30;

struct Category {
    key: &'static str,
    nouns_en: &'static [&'static str],
    nouns_ko: &'static [&'static str],
}

const CATEGORIES: &[Category] = &[
    Category {
        key: "shoes",
        nouns_en: &["Running Shoes", "Sneakers", "Loafers"],
        nouns_ko: &["러닝화", "스니커즈", "로퍼"],
    },
    Category {
        key: "bags",
        nouns_en: &["Tote Bag", "Backpack", "Crossbody Bag"],
        nouns_ko: &["토트백", "백팩", "크로스백"],
    },
    Category {
        key: "outerwear",
        nouns_en: &["Down Jacket", "Trench Coat", "Fleece"],
        nouns_ko: &["패딩", "트렌치코트", "플리스"],
    },
    Category {
        key: "tops",
        nouns_en: &["Oxford Shirt", "Knit Sweater", "T-Shirt"],
        nouns_ko: &["옥스포드 셔츠", "니트", "반팔 티셔츠"],
    },
    Category {
        key: "beauty",
        nouns_en: &["Sunscreen", "Lip Tint", "Cleansing Foam"],
        nouns_ko: &["선크림", "립틴트", "클렌징 폼"],
    },
    Category {
        key: "kitchen",
        nouns_en: &["Frying Pan", "Knife Set", "Tumbler"],
        nouns_ko: &["프라이팬", "칼 세트", "텀블러"],
    },
    Category {
        key: "books",
        nouns_en: &["Novel", "Cookbook", "Essay Collection"],
        nouns_ko: &["장편소설", "요리책", "에세이"],
    },
    Category {
        key: "electronics",
        nouns_en: &["Wireless Earbuds", "Power Bank", "Smart Watch"],
        nouns_ko: &["무선 이어폰", "보조배터리", "스마트워치"],
    },
    Category {
        key: "sports",
        nouns_en: &["Yoga Mat", "Dumbbell Set", "Cycling Gloves"],
        nouns_ko: &["요가 매트", "덤벨 세트", "자전거 장갑"],
    },
    Category {
        key: "home",
        nouns_en: &["Duvet Cover", "Desk Lamp", "Diffuser"],
        nouns_ko: &["이불 커버", "스탠드 조명", "디퓨저"],
    },
];

const ADJECTIVES_EN: &[&str] = &[
    "Classic",
    "Lightweight",
    "Premium",
    "Everyday",
    "Vintage",
    "Eco",
];
const ADJECTIVES_KO: &[&str] = &["클래식", "초경량", "프리미엄", "데일리", "빈티지", "친환경"];
const REVIEWS: &[&str] = &[
    "배송이 빠르고 품질이 좋아요. 재구매 의사 있습니다!",
    "사이즈가 딱 맞아요. 색상도 사진과 같아요.",
    "Great quality for the price, would buy again.",
    "Exactly as described. Fast shipping.",
    "가성비 최고예요. 선물용으로도 좋아요.",
    "Comfortable and looks great. Runs a little small.",
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// Samples item indices with a Zipf-like skew over a fixed popularity order.
struct Popularity {
    /// item index by popularity rank
    by_rank: Vec<usize>,
    /// cumulative weights by rank
    cumulative: Vec<f64>,
}

impl Popularity {
    fn new(rng: &mut ChaCha8Rng, n: usize) -> Self {
        let mut by_rank: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            by_rank.swap(i, j);
        }
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(1.1);
                total
            })
            .collect();
        Self {
            by_rank,
            cumulative,
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.random::<f64>() * total;
        let rank = self.cumulative.partition_point(|c| *c < x);
        self.by_rank[rank.min(self.by_rank.len() - 1)]
    }
}

/// The `n`th generated user's id.
pub fn user_id(n: usize) -> UserId {
    UserId::demo(n)
}

/// The `n`th generated item's id, `i` and five digits; items count from 0.
pub fn item_id(n: usize) -> ItemId {
    ItemId::new(format!("i{n:05}"))
}

/// Generates the whole dataset: items, popular lists, then each user's profile, list, cart.
pub fn generate(spec: &DatasetSpec) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let now = spec.as_of;
    let n_items = spec.items.max(1);
    let mut out = Vec::with_capacity(n_items + spec.users * 3 + CATEGORIES.len() + 1);

    let items: Vec<Item> = (0..n_items).map(|n| gen_item(&mut rng, n, now)).collect();
    let popularity = Popularity::new(&mut rng, n_items);

    let global: Vec<ItemId> = popularity
        .by_rank
        .iter()
        .filter(|&&i| items[i].in_stock())
        .take(GLOBAL_POPULAR_LEN)
        .map(|&i| items[i].item_id.clone())
        .collect();
    out.extend(items.iter().cloned().map(Record::Item));
    out.push(Record::Popular(PopularList::new(
        PopularScope::Global,
        global,
    )));
    for category in CATEGORIES {
        let list: Vec<ItemId> = popularity
            .by_rank
            .iter()
            .filter(|&&i| items[i].category == category.key)
            .take(CATEGORY_POPULAR_LEN)
            .map(|&i| items[i].item_id.clone())
            .collect();
        out.push(Record::Popular(PopularList::new(
            PopularScope::category(category.key),
            list,
        )));
    }

    for n in 1..=spec.users {
        gen_user(&mut rng, n, now, &items, &popularity, &mut out);
    }
    out
}

fn gen_item(rng: &mut ChaCha8Rng, n: usize, now: DateTime<Utc>) -> Item {
    let category = &CATEGORIES[n % CATEGORIES.len()];
    let korean = rng.random_bool(0.5);
    let title = if korean {
        format!(
            "{} {}",
            pick(rng, ADJECTIVES_KO),
            pick(rng, category.nouns_ko)
        )
    } else {
        format!(
            "{} {}",
            pick(rng, ADJECTIVES_EN),
            pick(rng, category.nouns_en)
        )
    };
    let id = item_id(n);
    let stock = match rng.random_range(0..100) {
        0..=7 => 0,
        8..=22 => rng.random_range(1..=5),
        _ => rng.random_range(6..=500),
    };
    let discount = rng.random_bool(0.2).then(|| Discount {
        pct: 5 * rng.random_range(1..=8u8),
        ends_at: Some(now + Duration::hours(rng.random_range(-72..=240))),
    });
    let review_count = (rng.random::<f64>().powi(3) * 2_000.0) as u32;
    Item {
        marks: None,
        title,
        category: category.key.to_owned(),
        url: format!("https://shop.example.com/products/{id}"),
        image_url: format!("https://cdn.shop.example.com/images/{id}.jpg"),
        price: rng.random_range(59..=2_990i64) * 100,
        currency: "KRW".to_owned(),
        stock,
        rating: (review_count > 0).then(|| (rng.random_range(30..=50) as f32) / 10.0),
        review_count,
        top_review: (review_count > 0).then(|| pick(rng, REVIEWS).to_string()),
        discount,
        item_id: id,
        encoded: Default::default(),
    }
}

fn gen_user(
    rng: &mut ChaCha8Rng,
    n: usize,
    now: DateTime<Utc>,
    items: &[Item],
    popularity: &Popularity,
    out: &mut Vec<Record>,
) {
    let id = user_id(n);
    // Newcomers signed up in the last 10 days: every onboarding stage, day 0 and just past
    // the window included; everyone else long ago.
    let newcomer = rng.random_bool(NEWCOMER_SHARE);
    let signed_up_hours = if newcomer {
        rng.random_range(1..=10 * 24)
    } else {
        rng.random_range(10 * 24..=720 * 24)
    };
    let signed_up_at = now - Duration::hours(signed_up_hours);
    let dormant = rng.random_bool(0.35);
    let idle_hours = if dormant {
        rng.random_range(30 * 24..=180 * 24)
    } else {
        rng.random_range(0..30 * 24)
    };
    let last_active_at = (now - Duration::hours(idle_hours)).max(signed_up_at);

    let mut preferred: Vec<String> = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        let c = pick(rng, CATEGORIES).key.to_owned();
        if !preferred.contains(&c) {
            preferred.push(c);
        }
    }
    let mut purchased_items: Vec<ItemId> = Vec::new();
    let mut category_purchases: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..rng.random_range(0..=8) {
        let item = &items[popularity.sample(rng)];
        if !purchased_items.contains(&item.item_id) {
            purchased_items.push(item.item_id.clone());
            *category_purchases.entry(item.category.clone()).or_default() += 1;
        }
    }
    let mut recent_views: Vec<ItemId> = Vec::new();
    for _ in 0..rng.random_range(0..=6) {
        let item = &items[popularity.sample(rng)];
        if !recent_views.contains(&item.item_id) {
            recent_views.push(item.item_id.clone());
        }
    }
    let mut last_purchase_at = (!purchased_items.is_empty()).then(|| {
        let span = (last_active_at - signed_up_at).num_hours().max(1);
        signed_up_at + Duration::hours(rng.random_range(0..=span))
    });

    // 15% of users are unknown to the model; 5% of the rest have an expired list.
    let recs = rng.random_bool(0.85).then(|| {
        let expired = rng.random_bool(0.05);
        let generated_at = if expired {
            now - Duration::days(10)
        } else {
            now - Duration::hours(rng.random_range(1..=48))
        };
        let mut list: Vec<ItemId> = Vec::new();
        for _ in 0..rng.random_range(20..=40) {
            let item = if rng.random_bool(0.6) {
                // Mostly the preferred categories, as a model trained on views would say.
                let c = pick(rng, &preferred).clone();
                let start = rng.random_range(0..items.len());
                items
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(items.len())
                    .find(|i| i.category == c)
                    .unwrap_or(&items[start])
            } else {
                &items[popularity.sample(rng)]
            };
            if !list.contains(&item.item_id) {
                list.push(item.item_id.clone());
            }
        }
        RecList {
            mark: None,
            user_id: id.clone(),
            generated_at,
            expires_at: generated_at + Duration::days(7),
            items: list,
        }
    });

    let cart = rng.random_bool(0.4).then(|| {
        let updated_at = now - Duration::hours(rng.random_range(0..=10 * 24));
        let mut lines: Vec<CartLine> = Vec::new();
        for _ in 0..rng.random_range(1..=5) {
            let item = &items[popularity.sample(rng)];
            if !lines.iter().any(|l| l.item_id == item.item_id) {
                lines.push(CartLine {
                    item_id: item.item_id.clone(),
                    quantity: rng.random_range(1..=3),
                });
            }
        }
        Cart {
            mark: None,
            user_id: id.clone(),
            updated_at,
            lines,
        }
    });
    // Key features tried so far (the keys of the default onboarding content).
    let features_used: Vec<String> = OnboardingRules::default()
        .features
        .into_iter()
        .filter(|_| rng.random_bool(0.3))
        .map(|f| f.key)
        .collect();
    // Some carts were checked out after their last change.
    if let Some(c) = &cart {
        if rng.random_bool(0.15) {
            last_purchase_at = Some(c.updated_at + Duration::hours(rng.random_range(1..=12)));
        }
    }

    out.push(Record::User(User {
        journal: None,
        user_id: id,
        signed_up_at,
        last_active_at,
        activated: rng.random_bool(if newcomer { 0.3 } else { 0.8 }),
        last_purchase_at,
        preferred_categories: preferred,
        category_purchases,
        purchased_items,
        recent_views,
        winback_unanswered: if dormant { rng.random_range(0..=4) } else { 0 },
        features_used,
        // Every fourth user reads English, the rest Korean (no draw: the other fields of a
        // seed's dataset stay what they were before users had a language).
        locale: Some(if n % 4 == 3 { "en" } else { "ko" }.to_owned()),
    }));
    out.extend(recs.map(Record::Recs));
    out.extend(cart.map(Record::Cart));
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(seed: u64) -> DatasetSpec {
        DatasetSpec {
            users: 300,
            items: 120,
            seed,
            as_of: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn every_onboarding_stage_and_reason_is_in_the_data() {
        use sendtime_domain::rules::onboarding::{assess, OnboardingAssessment};
        let spec = spec(42);
        let rules = OnboardingRules::default();
        let mut seen = std::collections::BTreeSet::new();
        for r in generate(&spec) {
            if let Record::User(u) = r {
                seen.insert(match assess(Some(&u), spec.as_of, &rules) {
                    OnboardingAssessment::Eligible { stage, .. } => format!("{stage:?}"),
                    OnboardingAssessment::NotEligible(reason) => format!("{reason:?}"),
                });
            }
        }
        for expected in [
            "Welcome",
            "Guide",
            "Incentive",
            "TooEarly",
            "Activated",
            "Expired",
        ] {
            assert!(seen.contains(expected), "no {expected} in {seen:?}");
        }
    }

    #[test]
    fn same_seed_same_dataset_other_seed_other_dataset() {
        assert_eq!(generate(&spec(7)), generate(&spec(7)));
        assert_ne!(generate(&spec(7)), generate(&spec(8)));
    }

    #[test]
    fn dataset_has_the_skew_the_rules_need() {
        let records = generate(&spec(42));
        let count = |f: fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
        assert_eq!(count(|r| matches!(r, Record::Item(_))), 120);
        assert_eq!(count(|r| matches!(r, Record::User(_))), 300);
        let recs = count(|r| matches!(r, Record::Recs(_)));
        assert!(
            recs > 200 && recs < 300,
            "some users unknown to the model: {recs}"
        );
        let carts = count(|r| matches!(r, Record::Cart(_)));
        assert!(carts > 60 && carts < 200, "{carts}");
        let as_of = spec(42).as_of;
        let dormant = records
            .iter()
            .filter(|r| matches!(r, Record::User(u) if (as_of - u.last_active_at).num_days() >= 30))
            .count();
        assert!(dormant > 50 && dormant < 200, "{dormant}");
        let korean = records
            .iter()
            .filter(|r| matches!(r, Record::Item(i) if !i.title.is_ascii()))
            .count();
        assert!(korean > 20 && korean < 100, "{korean}");
        assert!(records
            .iter()
            .any(|r| matches!(r, Record::Popular(p) if p.scope == PopularScope::Global && p.items.len() == GLOBAL_POPULAR_LEN)));
    }
}
