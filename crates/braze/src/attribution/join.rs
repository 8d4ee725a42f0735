//! The join, streamed: each send stays in memory (about 60 bytes, strings interned) only
//! while something can still be credited to it, that is for the window after it; opens,
//! clicks and purchases are matched against the user's sends still in the window and counted
//! at once into per-profile and per-position tallies. Memory grows with the sends of one
//! window and the distinct campaigns, dispatches and extras, never with the file.

use super::extras::{self, ClickPosition, ShownExtras};
use super::{Credit, Settings};
use foldhash::HashMap;
use sendtime_targeting::events::{Event, EventType};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// An interned string.
pub(crate) type Sym = u32;

/// Strings seen once and then referred to by number: campaigns, dispatches, blocks, stages,
/// sources and currencies.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Symbols {
    /// The number of `name`, added if new.
    fn intern(&mut self, name: &str) -> Sym {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = Sym::try_from(self.names.len()).unwrap_or(Sym::MAX);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The number of `name` if it was seen (lookups never add).
    fn find(&self, name: &str) -> Option<Sym> {
        self.ids.get(name).copied()
    }

    /// The string of `id`.
    pub(crate) fn name(&self, id: Sym) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }
}

/// One distinct combination of what sends showed; sends refer to it by number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Profile {
    /// `sendtime_block`.
    pub block: Option<Sym>,
    /// `sendtime_stage`.
    pub stage: Option<Sym>,
    /// `sendtime_source`.
    pub source: Option<Sym>,
    /// `sendtime_sources`, one per shown position.
    pub sources: Box<[Sym]>,
    /// `sendtime_degraded`.
    pub degraded: bool,
    /// Some item came from the global popular list (`sendtime_source` or any of
    /// `sendtime_sources` is `popular`).
    pub fallback: bool,
    /// The whole block came from the global popular list (`sendtime_source` is `popular`:
    /// the source of the best item present, so every item is popular).
    pub popular_block: bool,
}

/// Revenue in minor units by currency (interned).
pub(crate) type Money = BTreeMap<Sym, i64>;

/// What followed a set of sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Sends.
    pub sends: u64,
    /// Opens matched to them, duplicates included.
    pub opens: u64,
    /// Sends opened at least once.
    pub unique_opens: u64,
    /// Clicks matched to them.
    pub clicks: u64,
    /// Sends clicked at least once.
    pub unique_clicks: u64,
    /// Sends credited with at least one purchase.
    pub conversions: u64,
    /// Purchases credited to them.
    pub purchases: u64,
    /// The credited purchases' value.
    pub revenue: Money,
}

impl Counts {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &Counts) {
        self.sends += other.sends;
        self.opens += other.opens;
        self.unique_opens += other.unique_opens;
        self.clicks += other.clicks;
        self.unique_clicks += other.unique_clicks;
        self.conversions += other.conversions;
        self.purchases += other.purchases;
        add_money(&mut self.revenue, &other.revenue);
    }
}

/// What happened to the items shown at one position with one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ItemCounts {
    /// Sends that showed an item there.
    pub shown: u64,
    /// Of those, sends opened.
    pub opened: u64,
    /// Clicks on it.
    pub clicks: u64,
    /// Sends with at least one click on it.
    pub unique_clicks: u64,
    /// Sends whose conversion came after a last click on it.
    pub conversions: u64,
    /// Purchases credited after a last click on it.
    pub purchases: u64,
    /// Their value.
    pub revenue: Money,
}

impl ItemCounts {
    /// Adds `other` into `self`.
    pub(crate) fn add(&mut self, other: &ItemCounts) {
        self.shown += other.shown;
        self.opened += other.opened;
        self.clicks += other.clicks;
        self.unique_clicks += other.unique_clicks;
        self.conversions += other.conversions;
        self.purchases += other.purchases;
        add_money(&mut self.revenue, &other.revenue);
    }
}

/// Adds every currency of `from` into `into`, never one currency into another.
pub(crate) fn add_money(into: &mut Money, from: &Money) {
    for (currency, minor) in from {
        let sum = into.entry(*currency).or_insert(0);
        *sum = sum.saturating_add(*minor);
    }
}

/// Position 0 stands for clicks without a readable position.
pub(crate) const UNKNOWN_POSITION: u8 = 0;
/// The profile number of a send without sendtime extras.
const OTHER: u32 = u32::MAX;
/// `credit_from` of a send nothing has made eligible yet.
const NEVER: i64 = i64::MAX;

/// A send still in the window (its time is in the expiry queue).
#[derive(Debug, Clone)]
struct LiveSend {
    campaign: Sym,
    dispatch: Option<Sym>,
    /// Index into the profiles, or [`OTHER`].
    profile: u32,
    opened: bool,
    clicked: bool,
    converted: bool,
    /// From when a purchase may credit it (its first click, or open under
    /// [`Credit::Open`]).
    credit_from: i64,
    /// The position of its latest click ([`UNKNOWN_POSITION`] when it had none).
    last_click: u8,
    /// Bit `n`: a click at position `n` (bit 0: a click without a position).
    clicked_positions: u64,
}

/// Counts of the whole input, beside the tallies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tallies {
    /// Events read, by type.
    pub by_type: BTreeMap<EventType, u64>,
    /// First and last event time.
    pub first: Option<chrono::DateTime<chrono::Utc>>,
    /// Last event time.
    pub last: Option<chrono::DateTime<chrono::Utc>>,
    /// Opens that matched no send in the window.
    pub unattributed_opens: u64,
    /// Clicks that matched no send in the window.
    pub unattributed_clicks: u64,
    /// Purchases that credited no send.
    pub unattributed_purchases: u64,
    /// Their value.
    pub unattributed_revenue: Money,
    /// Clicks on sendtime sends whose `sendtime_pos` is not a position.
    pub unreadable_positions: u64,
    /// Clicks whose position is past the send's `sendtime_sources` (no source known).
    pub positions_past_sources: u64,
    /// Problems with sends' extras, by problem.
    pub extras_problems: BTreeMap<&'static str, u64>,
    /// The most sends held in the window at once.
    pub peak_live_sends: u64,
}

/// The streaming join: feed it every event in time order ([`Attributor::push`]), then read
/// the tallies.
#[derive(Debug)]
pub struct Attributor {
    pub(crate) settings: Settings,
    window_ms: i64,
    pub(crate) symbols: Symbols,
    profile_ids: HashMap<Profile, u32>,
    /// Every profile with the counts of its sends.
    pub(crate) profiles: Vec<(Profile, Counts)>,
    /// Sends without sendtime extras.
    pub(crate) other: Counts,
    /// By (position, the source shown there).
    pub(crate) positions: HashMap<(u8, Option<Sym>), ItemCounts>,
    pub(crate) tallies: Tallies,
    live: HashMap<Rc<str>, Vec<LiveSend>>,
    live_count: u64,
    /// Sends in time order, to drop them once past the window.
    expiry: VecDeque<(i64, Rc<str>)>,
}

impl Attributor {
    /// An empty join with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            window_ms: i64::from(settings.window_hours) * 3_600_000,
            settings,
            symbols: Symbols::default(),
            profile_ids: HashMap::default(),
            profiles: Vec::new(),
            other: Counts::default(),
            positions: HashMap::default(),
            tallies: Tallies::default(),
            live: HashMap::default(),
            live_count: 0,
            expiry: VecDeque::new(),
        }
    }

    /// Sends held in the window now.
    pub fn live_sends(&self) -> u64 {
        self.live_count
    }

    /// Takes one event; events must come in time order (`for_each_event` checks it).
    pub fn push(&mut self, event: &Event<'_>) {
        let at = event.at.timestamp_millis();
        self.expire(at);
        *self.tallies.by_type.entry(event.event).or_insert(0) += 1;
        self.tallies.first.get_or_insert(event.at);
        self.tallies.last = Some(event.at);
        match event.event {
            EventType::Sent => self.sent(event, at),
            EventType::Opened => self.opened(event, at),
            EventType::Clicked => self.clicked(event, at),
            EventType::Purchase => self.purchase(event, at),
            EventType::Visit | EventType::Unsubscribed | EventType::Bounced => {}
        }
    }

    /// Drops the sends sent more than the window before `now`.
    fn expire(&mut self, now: i64) {
        let oldest_kept = now.saturating_sub(self.window_ms);
        while let Some((at, _)) = self.expiry.front() {
            if *at >= oldest_kept {
                break;
            }
            let Some((_, user)) = self.expiry.pop_front() else {
                break;
            };
            if let Some(sends) = self.live.get_mut(&*user) {
                // A user's sends are in time order too: the oldest is first.
                if !sends.is_empty() {
                    sends.remove(0);
                    self.live_count -= 1;
                }
                if sends.is_empty() {
                    self.live.remove(&*user);
                }
            }
        }
    }

    fn sent(&mut self, event: &Event<'_>, at: i64) {
        let campaign = self
            .symbols
            .intern(event.campaign_id.as_deref().unwrap_or(""));
        let dispatch = event.dispatch_id.as_deref().map(|d| self.symbols.intern(d));
        let profile = match extras::shown(event.extras.as_ref()) {
            Some(shown) => self.profile(&shown),
            None => OTHER,
        };
        self.counts(profile).sends += 1;
        if let Some((p, _)) = self.profiles.get(profile as usize) {
            let shown: Vec<(u8, Sym)> = position_sources(p).collect();
            for key in shown {
                self.item(key.0, Some(key.1)).shown += 1;
            }
        }
        let send = LiveSend {
            campaign,
            dispatch,
            profile,
            opened: false,
            clicked: false,
            converted: false,
            credit_from: NEVER,
            last_click: UNKNOWN_POSITION,
            clicked_positions: 0,
        };
        let user: &str = &event.user_id;
        let key = match self.live.get_key_value(user) {
            Some((key, _)) => Rc::clone(key),
            None => Rc::from(user),
        };
        // Most users hold one send in a window: room for one, not the default four.
        self.live
            .entry(Rc::clone(&key))
            .or_insert_with(|| Vec::with_capacity(1))
            .push(send);
        self.expiry.push_back((at, key));
        self.live_count += 1;
        self.tallies.peak_live_sends = self.tallies.peak_live_sends.max(self.live_count);
    }

    /// The number of the profile these extras describe, added if new; counts their problems.
    fn profile(&mut self, shown: &ShownExtras<'_>) -> u32 {
        for problem in &shown.problems {
            *self.tallies.extras_problems.entry(problem).or_insert(0) += 1;
        }
        let source = shown.source.map(|s| self.symbols.intern(s));
        let sources: Box<[Sym]> = shown
            .sources
            .iter()
            .map(|s| self.symbols.intern(s))
            .collect();
        let popular = |s: &str| s == extras::POPULAR;
        let profile = Profile {
            block: shown.block.map(|b| self.symbols.intern(b)),
            stage: shown.stage.map(|s| self.symbols.intern(s)),
            source,
            sources,
            degraded: shown.degraded,
            fallback: shown.source.is_some_and(popular) || shown.sources.iter().any(|s| popular(s)),
            popular_block: shown.source.is_some_and(popular),
        };
        if let Some(id) = self.profile_ids.get(&profile) {
            return *id;
        }
        let id = u32::try_from(self.profiles.len()).unwrap_or(OTHER - 1);
        self.profile_ids.insert(profile.clone(), id);
        self.profiles.push((profile, Counts::default()));
        id
    }

    fn counts(&mut self, profile: u32) -> &mut Counts {
        match self.profiles.get_mut(profile as usize) {
            Some((_, counts)) => counts,
            None => &mut self.other,
        }
    }

    fn item(&mut self, position: u8, source: Option<Sym>) -> &mut ItemCounts {
        self.positions.entry((position, source)).or_default()
    }

    /// The user's send an open or click belongs to: the latest with the same `dispatch_id`,
    /// else the latest of the same campaign (skipping sends whose own dispatch id differs).
    fn engaged_send(&mut self, event: &Event<'_>) -> Option<&mut LiveSend> {
        let dispatch = match event.dispatch_id.as_deref() {
            // A dispatch id never seen on a send matches none; the campaign may still.
            Some(d) => Some(self.symbols.find(d).unwrap_or(Sym::MAX)),
            None => None,
        };
        let campaign = event
            .campaign_id
            .as_deref()
            .and_then(|c| self.symbols.find(c));
        let sends = self.live.get_mut(&*event.user_id)?;
        let by_dispatch = dispatch.and_then(|d| sends.iter().rposition(|s| s.dispatch == Some(d)));
        let index = by_dispatch.or_else(|| {
            let campaign = campaign?;
            sends.iter().rposition(|s| {
                s.campaign == campaign && (s.dispatch.is_none() || dispatch.is_none())
            })
        })?;
        sends.get_mut(index)
    }

    fn opened(&mut self, event: &Event<'_>, at: i64) {
        let credit_on_open = self.settings.credit == Credit::Open;
        let Some(send) = self.engaged_send(event) else {
            self.tallies.unattributed_opens += 1;
            return;
        };
        let first = !send.opened;
        send.opened = true;
        if credit_on_open {
            send.credit_from = send.credit_from.min(at);
        }
        let profile = send.profile;
        let counts = self.counts(profile);
        counts.opens += 1;
        if first {
            counts.unique_opens += 1;
            let shown: Vec<(u8, Sym)> = match self.profiles.get(profile as usize) {
                Some((p, _)) => position_sources(p).collect(),
                None => Vec::new(),
            };
            for (position, source) in shown {
                self.item(position, Some(source)).opened += 1;
            }
        }
    }

    fn clicked(&mut self, event: &Event<'_>, at: i64) {
        let parsed = extras::click_position(event.url.as_deref());
        let profiles = self.profiles.len();
        let Some(send) = self.engaged_send(event) else {
            self.tallies.unattributed_clicks += 1;
            return;
        };
        let profile = send.profile;
        let is_sendtime = (profile as usize) < profiles;
        let position = match parsed {
            ClickPosition::At(n) if is_sendtime => u8::try_from(n).unwrap_or(UNKNOWN_POSITION),
            _ => UNKNOWN_POSITION,
        };
        let first = !send.clicked;
        send.clicked = true;
        send.credit_from = send.credit_from.min(at);
        let bit = 1u64 << position;
        let first_here = send.clicked_positions & bit == 0;
        send.clicked_positions |= bit;
        send.last_click = position;
        let counts = self.counts(profile);
        counts.clicks += 1;
        counts.unique_clicks += u64::from(first);
        if is_sendtime {
            if parsed == ClickPosition::Unreadable {
                self.tallies.unreadable_positions += 1;
            }
            let source = self.source_at(profile, position);
            let item = self.item(position, source);
            item.clicks += 1;
            item.unique_clicks += u64::from(first_here);
        }
    }

    /// The source shown at `position` of the profile's send (none for an unknown position or
    /// one past `sendtime_sources`, the latter counted).
    fn source_at(&mut self, profile: u32, position: u8) -> Option<Sym> {
        if position == UNKNOWN_POSITION {
            return None;
        }
        let (p, _) = self.profiles.get(profile as usize)?;
        let source = p.sources.get(usize::from(position) - 1).copied();
        if source.is_none() {
            self.tallies.positions_past_sources += 1;
        }
        source
    }

    fn purchase(&mut self, event: &Event<'_>, at: i64) {
        let currency = self
            .symbols
            .intern(event.currency.as_deref().unwrap_or(super::NO_CURRENCY));
        let value = event.value;
        let credited = self.live.get_mut(&*event.user_id).and_then(|sends| {
            // The latest send made eligible before the purchase; all are in the window.
            let send = sends.iter_mut().rev().find(|s| s.credit_from <= at)?;
            let first = !send.converted;
            send.converted = true;
            Some((send.profile, send.last_click, first))
        });
        let Some((profile, position, first)) = credited else {
            self.tallies.unattributed_purchases += 1;
            if let Some(v) = value {
                add_money(
                    &mut self.tallies.unattributed_revenue,
                    &Money::from([(currency, v)]),
                );
            }
            return;
        };
        let counts = self.counts(profile);
        credit(
            &mut counts.purchases,
            &mut counts.conversions,
            &mut counts.revenue,
            first,
            value.map(|v| (currency, v)),
        );
        if (profile as usize) < self.profiles.len() {
            let source = self.source_at_quiet(profile, position);
            let item = self.item(position, source);
            credit(
                &mut item.purchases,
                &mut item.conversions,
                &mut item.revenue,
                first,
                value.map(|v| (currency, v)),
            );
        }
    }

    /// [`Self::source_at`] without counting (the click already was).
    fn source_at_quiet(&self, profile: u32, position: u8) -> Option<Sym> {
        let (p, _) = self.profiles.get(profile as usize)?;
        let index = usize::from(position).checked_sub(1)?;
        p.sources.get(index).copied()
    }
}

/// One credited purchase: counted, its value added, a conversion when it is the send's first.
fn credit(
    purchases: &mut u64,
    conversions: &mut u64,
    revenue: &mut Money,
    first: bool,
    value: Option<(Sym, i64)>,
) {
    *purchases += 1;
    *conversions += u64::from(first);
    if let Some((currency, minor)) = value {
        let sum = revenue.entry(currency).or_insert(0);
        *sum = sum.saturating_add(minor);
    }
}

/// (1-based position, source) of every item a profile's sends showed.
fn position_sources(profile: &Profile) -> impl Iterator<Item = (u8, Sym)> + '_ {
    profile
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| (u8::try_from(i + 1).unwrap_or(u8::MAX), *s))
}
