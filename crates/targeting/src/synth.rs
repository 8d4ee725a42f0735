//! Synthetic engagement with a known truth: each user has a hidden engagement level that
//! drives what can be observed (visits, purchases, opens, clicks), a preferred hour and
//! channel tastes, and some users lapse. A message's chance to be opened — the hidden
//! propensity — depends on that engagement, on recency (days since the last visit at the
//! send), the channel, the hour of the send against the user's hour, plus noise; opens are
//! drawn from it. A model sees only the events; the evaluation's oracle sees the propensity.
//!
//! Deterministic: the same spec gives byte-identical events. Written in time order, a day
//! at a time (memory holds a day's events and the opens still to come, not the history).

use crate::events::{Channel, Event, EventType};
use crate::features::{DAY, HOUR};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    /// Users `u000001`..=`u{users}` (the ids `data generate` gives its users).
    pub users: usize,
    /// Seed of the generator.
    pub seed: u64,
    /// The events end here (the next campaign would go out now).
    pub as_of: DateTime<Utc>,
    /// Days of history.
    pub days: u32,
    /// Campaigns in the history, evenly spaced, the last a week or so before `as_of`.
    pub campaigns: usize,
}

impl SynthSpec {
    /// Days of history unless told otherwise (`data generate --history-days`).
    pub const DEFAULT_DAYS: u32 = 120;
    /// Campaigns unless told otherwise (`data generate --campaigns`): weekly.
    pub const DEFAULT_CAMPAIGNS: usize = 16;

    /// The events of users `u000001`..=`u{users}` up to `as_of`, with the default history.
    pub fn new(users: usize, seed: u64, as_of: DateTime<Utc>) -> Self {
        Self {
            users,
            seed,
            as_of,
            days: Self::DEFAULT_DAYS,
            campaigns: Self::DEFAULT_CAMPAIGNS,
        }
    }
}

/// The hidden propensity of one send: the oracle's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthRow<'a> {
    /// The user sent to.
    pub user_id: &'a str,
    /// The campaign.
    pub campaign_id: &'a str,
    /// The probability the send is opened.
    pub p: f64,
}

/// Counts of what was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Events written.
    pub events: u64,
    /// Sends.
    pub sends: u64,
    /// Opens.
    pub opens: u64,
}

/// The id of campaign `k` (0-based): `c01`, `c02`, …
pub fn campaign_id(k: usize) -> String {
    format!("c{:02}", k + 1)
}

struct Person {
    engagement: f64,
    hour: f64,
    app: bool,
    email_taste: f64,
    push_taste: f64,
    joins: i64,
    lapses: i64,
    last_visit: Option<i64>,
}

/// An event waiting for its time: (at, sequence) orders the output.
type Queued = Reverse<(i64, u64, EventType, u32, u16)>;

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= limit || k >= 50 {
            return k;
        }
        k += 1;
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Campaign `k`'s channel: two emails, then a push.
pub fn campaign_channel(k: usize) -> Channel {
    if k % 3 == 2 {
        Channel::Push
    } else {
        Channel::Email
    }
}

fn campaign_hour(k: usize) -> i64 {
    [10, 20, 12, 19, 9, 21, 13, 18, 11, 20][k % 10]
}

/// The hidden propensity: engagement, recency, channel taste, hour fit, noise (logit scale).
fn propensity(p: &Person, at: i64, channel: Channel, noise: f64) -> f64 {
    let days_idle = p
        .last_visit
        .map_or(60.0, |v| (at - v).max(0) as f64 / DAY as f64);
    let hour = (at.rem_euclid(DAY) as f64) / HOUR as f64;
    let fit = ((hour - p.hour) / 24.0 * std::f64::consts::TAU).cos();
    let taste = match channel {
        Channel::Push => p.push_taste,
        _ => p.email_taste,
    };
    sigmoid(
        -3.2 + 3.0 * p.engagement - 0.5 * (1.0 + days_idle / 3.0).ln() + 0.7 * fit + taste + noise,
    )
}

/// Generates the events in time order into `emit`, and every send's propensity into `truth`.
pub fn generate<E>(
    spec: &SynthSpec,
    mut emit: impl FnMut(&Event<'_>) -> Result<(), E>,
    mut truth: impl FnMut(&TruthRow<'_>) -> Result<(), E>,
) -> Result<SynthSummary, E> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x7a12_6e7e);
    let start = spec.as_of.timestamp() - i64::from(spec.days) * DAY;
    let days = i64::from(spec.days.max(1));
    let ids: Vec<String> = (1..=spec.users)
        .map(|n| sendtime_domain::UserId::demo(n).as_str().to_owned())
        .collect();
    let mut people: Vec<Person> = (0..spec.users)
        .map(|_| {
            let joins = if rng.random_bool(0.8) {
                start - DAY
            } else {
                start + rng.random_range(0..(days - 7).max(1)) * DAY
            };
            Person {
                engagement: normal(&mut rng),
                hour: rng.random_range(7.0..24.0),
                app: rng.random_bool(0.55),
                email_taste: 0.5 * normal(&mut rng),
                push_taste: 0.5 * normal(&mut rng),
                joins,
                lapses: if rng.random_bool(0.25) {
                    start + rng.random_range(0..days) * DAY
                } else {
                    i64::MAX
                },
                last_visit: None,
            }
        })
        .collect();
    // Campaigns: evenly spaced, the last `spacing` days before the end.
    let n_campaigns = spec.campaigns.max(1);
    let spacing = (days / (n_campaigns as i64 + 1)).max(1);
    let campaign_day: Vec<i64> = (0..n_campaigns)
        .map(|k| days - spacing * (n_campaigns - k) as i64)
        .collect();
    let campaign_ids: Vec<String> = (0..n_campaigns).map(campaign_id).collect();

    let mut queue: BinaryHeap<Queued> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push =
        |queue: &mut BinaryHeap<Queued>, at: i64, kind: EventType, user: usize, c: usize| {
            seq += 1;
            queue.push(Reverse((at, seq, kind, user as u32, c as u16)));
        };
    let mut summary = SynthSummary::default();
    let mut todays_visits: Vec<i64> = Vec::new();
    for day in 0..days {
        let day_start = start + day * DAY;
        let campaign = campaign_day.iter().position(|&d| d == day);
        for (u, person) in people.iter_mut().enumerate() {
            if day_start < person.joins {
                continue;
            }
            let lapsed = day_start >= person.lapses;
            let rate = (-3.0 + 0.9 * person.engagement).exp() * if lapsed { 0.08 } else { 1.0 };
            todays_visits.clear();
            for _ in 0..poisson(&mut rng, rate) {
                let hour = (person.hour + 2.5 * normal(&mut rng)).rem_euclid(24.0);
                let at = day_start + (hour * HOUR as f64) as i64;
                todays_visits.push(at);
                push(&mut queue, at, EventType::Visit, u, 0);
                if rng.random_bool(sigmoid(-3.2 + 0.5 * person.engagement)) {
                    push(
                        &mut queue,
                        at + rng.random_range(60..1_800),
                        EventType::Purchase,
                        u,
                        0,
                    );
                }
            }
            if let Some(k) = campaign {
                let channel = campaign_channel(k);
                if channel == Channel::Push && !person.app {
                    // No app, no push.
                } else {
                    let at = day_start + campaign_hour(k) * HOUR + rng.random_range(0..1_800);
                    let before = todays_visits.iter().copied().filter(|&v| v < at).max();
                    let seen = person.last_visit;
                    person.last_visit = before.or(seen);
                    let p = propensity(person, at, channel, 0.4 * normal(&mut rng));
                    person.last_visit = seen;
                    truth(&TruthRow {
                        user_id: &ids[u],
                        campaign_id: &campaign_ids[k],
                        p,
                    })?;
                    push(&mut queue, at, EventType::Sent, u, k);
                    if rng.random_bool(p) {
                        let delay = (-(rng.random::<f64>().max(1e-9)).ln() * 2.0 * HOUR as f64)
                            .min(48.0 * HOUR as f64) as i64;
                        let opened = at + 30 + delay;
                        push(&mut queue, opened, EventType::Opened, u, k);
                        if rng.random_bool(0.3) {
                            let clicked = opened + rng.random_range(10..300);
                            push(&mut queue, clicked, EventType::Clicked, u, k);
                            push(&mut queue, clicked + 5, EventType::Visit, u, 0);
                        }
                    }
                }
            }
            if let Some(&last) = todays_visits.iter().max() {
                person.last_visit = Some(last.max(person.last_visit.unwrap_or(last)));
            }
        }
        let day_end = day_start + DAY;
        while queue.peek().is_some_and(|Reverse((at, ..))| *at < day_end) {
            let Some(Reverse(queued)) = queue.pop() else {
                break;
            };
            write(queued, &ids, &campaign_ids, &mut summary, &mut emit)?;
        }
    }
    // Opens, clicks and purchases due after the end are in the future: not written.
    let end = spec.as_of.timestamp();
    while let Some(Reverse(queued)) = queue.pop() {
        if queued.0 >= end {
            break;
        }
        write(queued, &ids, &campaign_ids, &mut summary, &mut emit)?;
    }
    Ok(summary)
}

fn write<E>(
    (at, _, kind, user, campaign): (i64, u64, EventType, u32, u16),
    ids: &[String],
    campaigns: &[String],
    summary: &mut SynthSummary,
    emit: &mut impl FnMut(&Event<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let c = campaign as usize;
    let (campaign_id, channel) = match kind {
        EventType::Sent => (Some(&campaigns[c]), Some(campaign_channel(c))),
        EventType::Opened | EventType::Clicked => (Some(&campaigns[c]), None),
        EventType::Visit | EventType::Purchase | EventType::Unsubscribed | EventType::Bounced => {
            (None, None)
        }
    };
    summary.events += 1;
    summary.sends += u64::from(kind == EventType::Sent);
    summary.opens += u64::from(kind == EventType::Opened);
    emit(&Event {
        at: DateTime::from_timestamp(at, 0).unwrap_or_default(),
        event: kind,
        user_id: Cow::Borrowed(&ids[user as usize]),
        campaign_id: campaign_id.map(|c| Cow::Borrowed(c.as_str())),
        channel,
        value: (kind == EventType::Purchase).then_some(10_000 + (at % 90) * 1_000),
        currency: None,
        dispatch_id: None,
        url: None,
        extras: None,
    })
}
