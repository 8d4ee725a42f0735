//! The report: the join's tallies rolled up per block, stage, answer source, position and
//! item source, with every rate next to the counts it divides. Field names are stable: tools
//! read the JSON.

use super::join::{Attributor, Counts, ItemCounts, Money, Profile, Symbols};
use super::Credit;
use chrono::{DateTime, Utc};
use sendtime_targeting::events::EventType;
use serde::Serialize;
use std::collections::BTreeMap;

/// Revenue in minor units by ISO 4217 currency (`{"KRW": 12900, "USD": 1290}`): currencies
/// are never added together.
pub type Revenue = BTreeMap<String, i64>;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// How sends were credited.
    pub settings: SettingsOut,
    /// What was read.
    pub input: Input,
    /// Sends with and without sendtime extras, and what was wrong with extras.
    pub sends: SendCounts,
    /// Events that followed no send.
    pub unattributed: Unattributed,
    /// Every send with sendtime extras.
    pub sendtime: Row,
    /// Every send without them (other campaigns), kept apart.
    pub other_campaigns: Row,
    /// Sendtime sends by `sendtime_block`.
    pub by_block: Vec<BlockRow>,
    /// Sendtime sends by `sendtime_block` and `sendtime_stage`.
    pub by_stage: Vec<StageRow>,
    /// Sendtime sends by `sendtime_source` (the answer's source: its best item's).
    pub by_source: Vec<SourceRow>,
    /// Items by position (1-based; `null`: clicks whose URL carried no position).
    pub by_position: Vec<PositionRow>,
    /// Items by their own source (from `sendtime_sources`), over every known position.
    pub by_item_source: Vec<SourceItemRow>,
}

/// The settings the report was made with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsOut {
    /// Hours after a send during which its opens, clicks and purchases count.
    pub window_hours: u32,
    /// What a purchase must follow to convert a send: `click` or `open` (an open or a click).
    pub conversion_credit: Credit,
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Input {
    /// Events read.
    pub events: u64,
    /// The first event's time.
    pub first: Option<DateTime<Utc>>,
    /// The last event's time.
    pub last: Option<DateTime<Utc>>,
    /// Events by type (every type, zeros included).
    pub by_type: BTreeMap<String, u64>,
    /// The most sends held at once (memory is proportional to it).
    pub peak_sends_in_window: u64,
}

/// Sends counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendCounts {
    /// Every send.
    pub total: u64,
    /// Sends carrying sendtime extras (any `sendtime_` key).
    pub with_sendtime_extras: u64,
    /// Sends without (other campaigns).
    pub without_sendtime_extras: u64,
    /// Sendtime sends whose extras had a problem, by problem (the send is still counted).
    pub extras_problems: BTreeMap<String, u64>,
}

/// Events that followed no send, and clicks whose position could not be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unattributed {
    /// Opens matching no send of the user in the window.
    pub opens: u64,
    /// Clicks matching no send of the user in the window.
    pub clicks: u64,
    /// Purchases following no eligible send.
    pub purchases: u64,
    /// Their value.
    pub revenue: Revenue,
    /// Clicks on sendtime sends whose `sendtime_pos` is not a position 1–63 (counted under
    /// the unknown position).
    pub unreadable_positions: u64,
    /// Clicks at a position past the send's `sendtime_sources` (counted with no source).
    pub positions_past_sources: u64,
}

/// What followed a set of sends. Every rate is `null` when its denominator is 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Sends.
    pub sends: u64,
    /// Opens, duplicates included.
    pub opens: u64,
    /// Sends opened at least once.
    pub unique_opens: u64,
    /// unique_opens / sends.
    pub unique_open_rate: Option<f64>,
    /// Clicks.
    pub clicks: u64,
    /// Sends clicked at least once.
    pub unique_clicks: u64,
    /// unique_clicks / sends.
    pub unique_click_rate: Option<f64>,
    /// unique_clicks / unique_opens.
    pub click_to_open_rate: Option<f64>,
    /// Sends credited with at least one purchase.
    pub conversions: u64,
    /// conversions / sends.
    pub conversion_rate: Option<f64>,
    /// Purchases credited.
    pub purchases: u64,
    /// Their value, minor units by currency.
    pub revenue: Revenue,
    /// Sends that showed at least one item of the global popular list (`sendtime_source`
    /// or any of `sendtime_sources` is `popular`).
    pub fallback_sends: u64,
    /// fallback_sends / sends.
    pub fallback_share: Option<f64>,
    /// Sends whose whole block came from the popular list (`sendtime_source` is `popular`).
    pub popular_block_sends: u64,
    /// Sends whose answer was degraded (`sendtime_degraded` is `true`).
    pub degraded_sends: u64,
    /// degraded_sends / sends.
    pub degraded_share: Option<f64>,
}

/// One block's sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockRow {
    /// `sendtime_block` (`null` when missing).
    pub block: Option<String>,
    /// What followed.
    #[serde(flatten)]
    pub row: Row,
}

/// One block stage's sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRow {
    /// `sendtime_block` (`null` when missing).
    pub block: Option<String>,
    /// `sendtime_stage` (`null` when empty: the block has no stage).
    pub stage: Option<String>,
    /// What followed.
    #[serde(flatten)]
    pub row: Row,
}

/// The sends of one answer source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    /// `sendtime_source` (`null` when empty: no items).
    pub source: Option<String>,
    /// What followed.
    #[serde(flatten)]
    pub row: Row,
}

/// What happened to the items at a position or of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemRow {
    /// Sends that showed an item there (`null` for the unknown position).
    pub shown: Option<u64>,
    /// Of those, sends opened (`null` for the unknown position).
    pub opened: Option<u64>,
    /// Clicks on it.
    pub clicks: u64,
    /// Sends with at least one click on it.
    pub unique_clicks: u64,
    /// unique_clicks / shown.
    pub click_rate: Option<f64>,
    /// Conversions whose send's last click before the purchase was on it.
    pub conversions: u64,
    /// Purchases credited with their send's last click on it.
    pub purchases: u64,
    /// Their value.
    pub revenue: Revenue,
}

/// One position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionRow {
    /// 1-based; `null` for clicks without a readable `sendtime_pos`.
    pub position: Option<u32>,
    /// Its items.
    #[serde(flatten)]
    pub items: ItemRow,
    /// The same, by the source shown at this position.
    pub by_source: Vec<SourceItemRow>,
}

/// The items of one source (at one position, or at all).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceItemRow {
    /// The item's source from `sendtime_sources` (`null`: past the recorded sources).
    pub source: Option<String>,
    /// Its items.
    #[serde(flatten)]
    pub items: ItemRow,
}

/// `n / d` to 4 decimals, `None` when `d` is 0.
fn rate(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
}

/// Sends' counts with their profile flags, for a roll-up.
#[derive(Debug, Clone, Default)]
struct Acc {
    counts: Counts,
    fallback: u64,
    popular_block: u64,
    degraded: u64,
}

impl Acc {
    fn add(&mut self, profile: &Profile, counts: &Counts) {
        self.counts.add(counts);
        let sends = counts.sends;
        self.fallback += if profile.fallback { sends } else { 0 };
        self.popular_block += if profile.popular_block { sends } else { 0 };
        self.degraded += if profile.degraded { sends } else { 0 };
    }

    fn row(&self, symbols: &Symbols) -> Row {
        let c = &self.counts;
        Row {
            sends: c.sends,
            opens: c.opens,
            unique_opens: c.unique_opens,
            unique_open_rate: rate(c.unique_opens, c.sends),
            clicks: c.clicks,
            unique_clicks: c.unique_clicks,
            unique_click_rate: rate(c.unique_clicks, c.sends),
            click_to_open_rate: rate(c.unique_clicks, c.unique_opens),
            conversions: c.conversions,
            conversion_rate: rate(c.conversions, c.sends),
            purchases: c.purchases,
            revenue: revenue(&c.revenue, symbols),
            fallback_sends: self.fallback,
            fallback_share: rate(self.fallback, c.sends),
            popular_block_sends: self.popular_block,
            degraded_sends: self.degraded,
            degraded_share: rate(self.degraded, c.sends),
        }
    }
}

fn revenue(money: &Money, symbols: &Symbols) -> Revenue {
    money
        .iter()
        .map(|(c, v)| (symbols.name(*c).to_owned(), *v))
        .collect()
}

fn item_row(c: &ItemCounts, known_position: bool, symbols: &Symbols) -> ItemRow {
    ItemRow {
        shown: known_position.then_some(c.shown),
        opened: known_position.then_some(c.opened),
        clicks: c.clicks,
        unique_clicks: c.unique_clicks,
        click_rate: if known_position {
            rate(c.unique_clicks, c.shown)
        } else {
            None
        },
        conversions: c.conversions,
        purchases: c.purchases,
        revenue: revenue(&c.revenue, symbols),
    }
}

impl Report {
    /// Rolls the join's tallies up into the report.
    pub(crate) fn from_join(join: Attributor, events: u64) -> Report {
        let symbols = &join.symbols;
        let name = |id: Option<u32>| id.map(|id| symbols.name(id).to_owned());
        let mut all = Acc::default();
        let mut blocks: BTreeMap<Option<String>, Acc> = BTreeMap::new();
        let mut stages: BTreeMap<(Option<String>, Option<String>), Acc> = BTreeMap::new();
        let mut sources: BTreeMap<Option<String>, Acc> = BTreeMap::new();
        for (profile, counts) in &join.profiles {
            all.add(profile, counts);
            let block = name(profile.block);
            blocks
                .entry(block.clone())
                .or_default()
                .add(profile, counts);
            let stage = (block, name(profile.stage));
            stages.entry(stage).or_default().add(profile, counts);
            let source = name(profile.source);
            sources.entry(source).or_default().add(profile, counts);
        }
        let other = Acc {
            counts: join.other.clone(),
            ..Acc::default()
        };
        let t = &join.tallies;
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        for kind in EVENT_TYPES {
            let count = t.by_type.get(&kind).copied().unwrap_or(0);
            by_type.insert(event_name(kind).to_owned(), count);
        }
        let (by_position, by_item_source) = positions(&join);
        Report {
            settings: SettingsOut {
                window_hours: join.settings.window_hours,
                conversion_credit: join.settings.credit,
            },
            input: Input {
                events,
                first: t.first,
                last: t.last,
                by_type,
                peak_sends_in_window: t.peak_live_sends,
            },
            sends: SendCounts {
                total: all.counts.sends + other.counts.sends,
                with_sendtime_extras: all.counts.sends,
                without_sendtime_extras: other.counts.sends,
                extras_problems: t
                    .extras_problems
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect(),
            },
            unattributed: Unattributed {
                opens: t.unattributed_opens,
                clicks: t.unattributed_clicks,
                purchases: t.unattributed_purchases,
                revenue: revenue(&t.unattributed_revenue, symbols),
                unreadable_positions: t.unreadable_positions,
                positions_past_sources: t.positions_past_sources,
            },
            sendtime: all.row(symbols),
            other_campaigns: other.row(symbols),
            by_block: blocks
                .into_iter()
                .map(|(block, acc)| BlockRow {
                    block,
                    row: acc.row(symbols),
                })
                .collect(),
            by_stage: stages
                .into_iter()
                .map(|((block, stage), acc)| StageRow {
                    block,
                    stage,
                    row: acc.row(symbols),
                })
                .collect(),
            by_source: sources
                .into_iter()
                .map(|(source, acc)| SourceRow {
                    source,
                    row: acc.row(symbols),
                })
                .collect(),
            by_position,
            by_item_source,
        }
    }
}

/// Every event type, in the order of the `by_type` counts.
const EVENT_TYPES: [EventType; 7] = [
    EventType::Sent,
    EventType::Opened,
    EventType::Clicked,
    EventType::Visit,
    EventType::Purchase,
    EventType::Unsubscribed,
    EventType::Bounced,
];

/// The event type's name in events files.
fn event_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Sent => "sent",
        EventType::Opened => "opened",
        EventType::Clicked => "clicked",
        EventType::Visit => "visit",
        EventType::Purchase => "purchase",
        EventType::Unsubscribed => "unsubscribed",
        EventType::Bounced => "bounced",
    }
}

/// Position rows (known positions in order, the unknown one last) and item-source rows.
fn positions(join: &Attributor) -> (Vec<PositionRow>, Vec<SourceItemRow>) {
    let symbols = &join.symbols;
    let name = |id: Option<u32>| id.map(|id| symbols.name(id).to_owned());
    type BySource = BTreeMap<Option<String>, ItemCounts>;
    let mut by_position: BTreeMap<u8, (ItemCounts, BySource)> = BTreeMap::new();
    let mut by_source: BySource = BTreeMap::new();
    for ((position, source), counts) in &join.positions {
        let (total, sources) = by_position.entry(*position).or_default();
        total.add(counts);
        sources.entry(name(*source)).or_default().add(counts);
        if *position != super::join::UNKNOWN_POSITION {
            by_source.entry(name(*source)).or_default().add(counts);
        }
    }
    let source_rows = |sources: &BySource, known: bool| -> Vec<SourceItemRow> {
        sources
            .iter()
            .map(|(source, c)| SourceItemRow {
                source: source.clone(),
                items: item_row(c, known, symbols),
            })
            .collect()
    };
    let mut rows: Vec<PositionRow> = Vec::new();
    let mut unknown = None;
    for (position, (total, sources)) in &by_position {
        let known = *position != super::join::UNKNOWN_POSITION;
        let row = PositionRow {
            position: known.then_some(u32::from(*position)),
            items: item_row(total, known, symbols),
            by_source: if known {
                source_rows(sources, true)
            } else {
                Vec::new()
            },
        };
        if known {
            rows.push(row);
        } else {
            unknown = Some(row);
        }
    }
    rows.extend(unknown);
    (rows, source_rows(&by_source, true))
}
