//! What we know of a user at an instant, kept as running aggregates (one small struct a user,
//! updated event by event, never the events themselves), and the features computed from it.
//! Training and scoring both call [`UserState::features`]: one definition, no skew between
//! what the model learnt from and what it scores.

use crate::events::Channel;

/// Number of model features.
pub const FEATURES: usize = 11;

/// The features' names, in vector order (for the model file and the README).
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "logit_open_rate",
    "logit_channel_open_rate",
    "click_rate",
    "log_sends",
    "log_days_since_open",
    "log_days_since_visit",
    "log_recent_visits",
    "log_visits",
    "log_days_since_purchase",
    "hour_affinity",
    "log_tenure_days",
];

/// A feature vector.
pub type Features = [f64; FEATURES];

/// Days standing in for "never" (a year and a bit).
const NEVER_DAYS: f64 = 400.0;
/// Half-life of the recent-visits counter, in days.
const VISIT_HALF_LIFE_DAYS: f64 = 14.0;
/// The open-rate prior: a user with no history counts as `PRIOR_OPENS` opens of
/// `PRIOR_SENDS` sends (a 20 % open rate, the seed's), so a short history is not taken at
/// its word.
const PRIOR_OPENS: f64 = 0.4;
const PRIOR_SENDS: f64 = 2.0;
/// Seconds in a day and an hour (event times are epoch seconds).
pub(crate) const DAY: i64 = 86_400;
pub(crate) const HOUR: i64 = 3_600;
const SECONDS_PER_DAY: f64 = DAY as f64;
const CHANNELS: usize = Channel::ALL.len();

/// What a campaign is, as the features see it: its channel and its hour of the day (UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// The channel it goes out on.
    pub channel: Channel,
    /// The hour of the day (UTC, 0–23) it goes out at.
    pub hour: u32,
}

impl Target {
    /// The target of a send at `at` (epoch seconds) on `channel`.
    pub fn at(channel: Channel, at: i64) -> Self {
        Self {
            channel,
            hour: hour_of(at),
        }
    }
}

fn hour_of(at: i64) -> u32 {
    (at.rem_euclid(DAY) / HOUR) as u32
}

/// What happened to a user, as the state needs it (campaigns by their index).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    /// Campaign `campaign` was sent on `channel`.
    Sent {
        /// The campaign's index.
        campaign: u16,
        /// Its channel.
        channel: Channel,
    },
    /// Campaign `campaign` (sent on `channel`) was opened.
    Opened {
        /// The campaign's index.
        campaign: u16,
        /// Its channel.
        channel: Channel,
    },
    /// Campaign `campaign` was clicked.
    Clicked {
        /// The campaign's index.
        campaign: u16,
    },
    /// A visit.
    Visit,
    /// A purchase.
    Purchase,
}

/// One user's running aggregates (about a hundred bytes; a million users fit in memory,
/// their events need not).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    first_seen: Option<i64>,
    sends: u32,
    opens: u32,
    clicks: u32,
    sends_by_channel: [u16; CHANNELS],
    opens_by_channel: [u16; CHANNELS],
    last_open: Option<i64>,
    last_visit: Option<i64>,
    last_purchase: Option<i64>,
    last_activity: Option<i64>,
    visits: u32,
    purchases: u32,
    recent_visits: f32,
    recent_visits_at: i64,
    hour_cos: f32,
    hour_sin: f32,
    hours_seen: f32,
    /// The last few campaigns opened / clicked (index + 1): a repeated open counts once.
    opened: [u16; 4],
    clicked: [u16; 4],
}

/// Records `campaign` in a small ring of recent ones; false when it was there already.
fn first_time(ring: &mut [u16; 4], campaign: u16) -> bool {
    let tag = campaign.saturating_add(1);
    if ring.contains(&tag) {
        return false;
    }
    ring.rotate_right(1);
    ring[0] = tag;
    true
}

fn decay(value: f64, from: i64, to: i64) -> f64 {
    let days = (to - from).max(0) as f64 / SECONDS_PER_DAY;
    value * 0.5f64.powf(days / VISIT_HALF_LIFE_DAYS)
}

fn days_since(then: Option<i64>, now: i64) -> f64 {
    then.map_or(NEVER_DAYS, |t| {
        ((now - t).max(0) as f64 / SECONDS_PER_DAY).min(NEVER_DAYS)
    })
}

impl UserState {
    /// Applies one event at `at` (epoch seconds; events come in time order).
    pub fn observe(&mut self, at: i64, what: Observed) {
        self.first_seen.get_or_insert(at);
        match what {
            Observed::Sent { channel, .. } => {
                self.sends += 1;
                let n = &mut self.sends_by_channel[channel.index()];
                *n = n.saturating_add(1);
            }
            Observed::Opened { campaign, channel } => {
                if first_time(&mut self.opened, campaign) {
                    self.opens += 1;
                    let n = &mut self.opens_by_channel[channel.index()];
                    *n = n.saturating_add(1);
                }
                self.last_open = Some(at);
                self.last_activity = Some(at);
                self.see_hour(at);
            }
            Observed::Clicked { campaign } => {
                if first_time(&mut self.clicked, campaign) {
                    self.clicks += 1;
                }
                self.last_activity = Some(at);
            }
            Observed::Visit => {
                self.visits += 1;
                self.recent_visits =
                    (decay(self.recent_visits as f64, self.recent_visits_at, at) + 1.0) as f32;
                self.recent_visits_at = at;
                self.last_visit = Some(at);
                self.last_activity = Some(at);
                self.see_hour(at);
            }
            Observed::Purchase => {
                self.purchases += 1;
                self.last_purchase = Some(at);
                self.last_activity = Some(at);
            }
        }
    }

    fn see_hour(&mut self, at: i64) {
        let angle = hour_angle(at.rem_euclid(DAY) as f64 / HOUR as f64);
        self.hour_cos += angle.cos() as f32;
        self.hour_sin += angle.sin() as f32;
        self.hours_seen += 1.0;
    }

    /// The model's features for a message on `target` at `now` (epoch seconds), from
    /// everything observed before.
    pub fn features(&self, now: i64, target: Target) -> Features {
        // Smoothed rates on the logit scale, the model's own: a user at 60 % and one at 90 %
        // differ as much as one at 2 % and one at 10 %.
        let rate = |hits: f64, tries: f64| {
            let p = (hits + PRIOR_OPENS) / (tries + PRIOR_SENDS);
            (p / (1.0 - p)).ln()
        };
        let ch = target.channel.index();
        let angle = hour_angle(target.hour as f64 + 0.5);
        let affinity = (self.hour_cos as f64 * angle.cos() + self.hour_sin as f64 * angle.sin())
            / (self.hours_seen as f64 + 2.0);
        [
            rate(self.opens as f64, self.sends as f64),
            rate(
                self.opens_by_channel[ch] as f64,
                self.sends_by_channel[ch] as f64,
            ),
            (self.clicks as f64 + 0.1) / (self.sends as f64 + PRIOR_SENDS),
            (self.sends as f64).ln_1p(),
            days_since(self.last_open, now).ln_1p(),
            days_since(self.last_visit, now).ln_1p(),
            self.recent_visits_at(now).ln_1p(),
            (self.visits as f64).ln_1p(),
            days_since(self.last_purchase, now).ln_1p(),
            affinity,
            // A user first seen at this very send is new, not a year old.
            self.first_seen
                .map_or(0.0, |first| days_since(Some(first), now))
                .ln_1p(),
        ]
    }

    /// The recent-visits counter (half-life 14 days) at `now`.
    pub fn recent_visits_at(&self, now: i64) -> f64 {
        decay(self.recent_visits as f64, self.recent_visits_at, now)
    }

    /// Recency and frequency, the transparent baseline's two numbers: days since the last
    /// activity (visit, purchase, open or click; never: a year and a bit) and recent visits.
    pub fn recency_frequency(&self, now: i64) -> (f64, f64) {
        (
            days_since(self.last_activity, now),
            self.recent_visits_at(now),
        )
    }
}

fn hour_angle(hour: f64) -> f64 {
    hour / 24.0 * std::f64::consts::TAU
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_open_counts_once_and_rates_start_at_the_prior() {
        let mut s = UserState::default();
        let target = Target::at(Channel::Email, 10 * 3_600);
        let fresh = s.features(0, target);
        let logit = |p: f64| (p / (1.0 - p)).ln();
        assert!(
            (fresh[0] - logit(0.2)).abs() < 1e-9,
            "no history: the prior's 20 %"
        );
        let email = Channel::Email;
        s.observe(
            0,
            Observed::Sent {
                campaign: 0,
                channel: email,
            },
        );
        s.observe(
            60,
            Observed::Opened {
                campaign: 0,
                channel: email,
            },
        );
        s.observe(
            90,
            Observed::Opened {
                campaign: 0,
                channel: email,
            },
        );
        let f = s.features(DAY, target);
        assert!((f[0] - logit(1.4 / 3.0)).abs() < 1e-9, "{}", f[0]);
        assert!((f[1] - logit(1.4 / 3.0)).abs() < 1e-9);
        let push = s.features(DAY, Target::at(Channel::Push, 0));
        assert!((push[1] - logit(0.2)).abs() < 1e-9, "no push history");
    }

    #[test]
    fn recent_visits_halve_every_fourteen_days_and_recency_counts_days() {
        let mut s = UserState::default();
        s.observe(0, Observed::Visit);
        s.observe(0, Observed::Visit);
        assert!((s.recent_visits_at(14 * DAY) - 1.0).abs() < 1e-6);
        let (recency, frequency) = s.recency_frequency(3 * DAY);
        assert!((recency - 3.0).abs() < 1e-9);
        assert!(frequency > 1.0 && frequency < 2.0);
        assert_eq!(UserState::default().recency_frequency(DAY).0, NEVER_DAYS);
    }

    #[test]
    fn hour_affinity_is_high_at_the_users_hours_and_low_opposite() {
        let mut s = UserState::default();
        for d in 0..10 {
            s.observe(d * DAY + 20 * 3_600, Observed::Visit);
        }
        let at = |h: u32| {
            s.features(
                11 * DAY,
                Target {
                    channel: Channel::Push,
                    hour: h,
                },
            )[9]
        };
        assert!(at(20) > 0.7, "{}", at(20));
        assert!(at(8) < -0.7, "{}", at(8));
    }
}
