//! Two streaming passes over an events file. The survey finds the campaigns (and how many
//! sends each had); the replay walks the events in time order, keeping one [`UserState`] a
//! user, and takes each training row's features at the instant of its send — from what was
//! known then, never after — and its label from the opens inside the label window.
//!
//! With a held-out campaign (evaluation), nothing at or after its first send is learnt
//! from: the state freezes there, its sends become the held-out rows, its opens their labels,
//! and every other later event is skipped.

use crate::events::{for_each_event, Channel, Event, EventType, EventsError, StreamStats};
use crate::features::{Features, Observed, Target, UserState};
use crate::synth::{self, SynthSpec};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::BufRead;

type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Where the passes read events from, in time order, each with its line (or sequence)
/// number: a JSON Lines file ([`JsonLines`]) or the generator itself (a [`SynthSpec`], for
/// `serve`'s demo: generated twice, never held in memory).
pub trait EventSource {
    /// Hands every event to `each`; the stream's counts at the end.
    fn each_event(
        self,
        each: &mut dyn FnMut(usize, &Event<'_>) -> Result<(), PlanError>,
    ) -> Result<StreamStats, PlanError>;
}

/// A JSON Lines events file (see [`crate::events`]).
pub struct JsonLines<R>(pub R);

impl<R: BufRead> EventSource for JsonLines<R> {
    fn each_event(
        self,
        each: &mut dyn FnMut(usize, &Event<'_>) -> Result<(), PlanError>,
    ) -> Result<StreamStats, PlanError> {
        for_each_event(self.0, each)
    }
}

impl EventSource for &SynthSpec {
    fn each_event(
        self,
        each: &mut dyn FnMut(usize, &Event<'_>) -> Result<(), PlanError>,
    ) -> Result<StreamStats, PlanError> {
        let mut stats = StreamStats::default();
        synth::generate::<PlanError>(
            self,
            |e| {
                stats.events += 1;
                stats.first.get_or_insert(e.at);
                stats.last = Some(e.at);
                each(stats.events as usize, e)
            },
            |_| Ok(()),
        )?;
        Ok(stats)
    }
}

/// One campaign as the survey found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInfo {
    /// The campaign id of its events.
    pub id: String,
    /// Its channel.
    pub channel: Channel,
    /// Its first send.
    pub first_send: DateTime<Utc>,
    /// Its last send.
    pub last_send: DateTime<Utc>,
    /// Sends.
    pub sends: u64,
    /// Opens (every open event, repeats included).
    pub opens: u64,
}

/// What the first pass found: the campaigns in order of first send, and the stream's span.
#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    /// Campaigns, in order of their first send.
    pub campaigns: Vec<CampaignInfo>,
    /// Events read, first and last time.
    pub stats: StreamStats,
    /// Distinct users (by a 64-bit hash of their id).
    pub users: usize,
    /// Opens and clicks of campaigns with no send in the events (skipped by the replay).
    pub orphans: u64,
}

/// Why a survey or plan cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The events file is unusable.
    #[error(transparent)]
    Events(#[from] EventsError),
    /// One campaign's sends name two channels.
    #[error(
        "campaign '{campaign}' is sent on both {first} and {second}: a campaign has one channel"
    )]
    MixedChannels {
        /// The campaign.
        campaign: String,
        /// Its first channel.
        first: &'static str,
        /// Another.
        second: &'static str,
    },
    /// An open or click names a campaign no send names.
    #[error("line {line}: campaign '{campaign}' has no 'sent' event before it")]
    UnknownCampaign {
        /// 1-based line number.
        line: usize,
        /// The campaign.
        campaign: String,
    },
    /// Nothing to learn from.
    #[error("no campaign to learn from: {0}")]
    NothingToLearn(String),
    /// The named held-out campaign is not in the file.
    #[error("--holdout '{0}' is not a campaign of the events file")]
    NoSuchCampaign(String),
    /// The held-out campaign's outcome is not all in the events.
    #[error("held-out campaign '{campaign}': {why} (hold out an earlier one with --holdout, or shorten --label-window-hours)")]
    HoldoutUnsettled {
        /// The campaign.
        campaign: String,
        /// What is missing.
        why: String,
    },
    /// More campaigns than the replay indexes.
    #[error("{0} campaigns in the events: at most 65,535 are supported (one id per campaign, not per message)")]
    TooManyCampaigns(usize),
}

/// Pass 1: the campaigns and the stream's span.
pub fn survey(input: impl EventSource) -> Result<Survey, PlanError> {
    let mut index: Map<String, usize> = Map::default();
    let mut campaigns: Vec<CampaignInfo> = Vec::new();
    let mut users: std::collections::HashSet<u64, foldhash::fast::FixedState> = Default::default();
    let hasher = foldhash::fast::FixedState::with_seed(7);
    let mut orphans = 0u64;
    let stats = input.each_event(&mut |_line, e| {
        users.insert(hasher.hash_one(e.user_id.as_ref()));
        let Some(id) = e.campaign_id.as_deref() else {
            return Ok(());
        };
        match (e.event, index.get(id)) {
            (EventType::Sent, None) => {
                let channel = e.channel.unwrap_or(Channel::Email);
                index.insert(id.to_owned(), campaigns.len());
                campaigns.push(CampaignInfo {
                    id: id.to_owned(),
                    channel,
                    first_send: e.at,
                    last_send: e.at,
                    sends: 1,
                    opens: 0,
                });
            }
            (EventType::Sent, Some(&i)) => {
                let c = &mut campaigns[i];
                let channel = e.channel.unwrap_or(c.channel);
                if channel != c.channel {
                    return Err(PlanError::MixedChannels {
                        campaign: c.id.clone(),
                        first: c.channel.as_str(),
                        second: channel.as_str(),
                    });
                }
                c.sends += 1;
                c.last_send = e.at;
            }
            (EventType::Opened, Some(&i)) => campaigns[i].opens += 1,
            (_, Some(_)) => {}
            // An unsubscribe or bounce may name a campaign the events do not hold a send of.
            (EventType::Unsubscribed | EventType::Bounced, None) => {}
            // So may an open or click: imported engagement (Braze Currents) starts at some
            // hour, and the opens of a message sent before it still arrive. Nothing to learn
            // from without the send: counted, skipped by the replay.
            (_, None) => orphans += 1,
        }
        Ok(())
    })?;
    if campaigns.len() > usize::from(u16::MAX) {
        return Err(PlanError::TooManyCampaigns(campaigns.len()));
    }
    Ok(Survey {
        campaigns,
        stats,
        users: users.len(),
        orphans,
    })
}

/// What the replay learns from and holds out.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPlan {
    /// The survey's campaigns (a campaign's index is its place here).
    pub campaigns: Vec<CampaignInfo>,
    /// Per campaign: its sends are training rows.
    pub train: Vec<bool>,
    /// The held-out campaign, when evaluating.
    pub holdout: Option<usize>,
    /// Nothing at or after this instant is learnt from (the held-out campaign's first send).
    pub cutoff: Option<DateTime<Utc>>,
    /// An open counts for its send's label when it comes within this long of that send.
    pub label_window: chrono::Duration,
    /// Share of training sends kept as rows (sampled by a hash of user and campaign).
    pub sample_rate: f64,
}

impl ReplayPlan {
    /// Learn from every campaign whose label window closed by the end of the events; hold
    /// nothing out.
    pub fn for_scoring(
        survey: &Survey,
        label_window: chrono::Duration,
        max_rows: usize,
    ) -> Result<Self, PlanError> {
        let end = survey.stats.last.unwrap_or_default();
        let train: Vec<bool> = survey
            .campaigns
            .iter()
            .map(|c| c.last_send + label_window <= end)
            .collect();
        Self::new(survey, train, None, label_window, max_rows)
    }

    /// Hold out `holdout` (default: the last campaign); learn from the campaigns whose label
    /// window closed before its first send, and from nothing at or after it.
    pub fn for_evaluation(
        survey: &Survey,
        holdout: Option<&str>,
        label_window: chrono::Duration,
        max_rows: usize,
    ) -> Result<Self, PlanError> {
        let held = match holdout {
            Some(id) => survey
                .campaigns
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| PlanError::NoSuchCampaign(id.to_owned()))?,
            None => survey.campaigns.len().checked_sub(1).ok_or_else(|| {
                PlanError::NothingToLearn("the events have no 'sent' event".into())
            })?,
        };
        let campaign = &survey.campaigns[held];
        let unsettled = |why: String| PlanError::HoldoutUnsettled {
            campaign: campaign.id.clone(),
            why,
        };
        let end = survey.stats.last.unwrap_or_default();
        if campaign.last_send + label_window > end {
            return Err(unsettled(format!(
                "its last send's {} h label window ends after the last event ({end})",
                label_window.num_hours()
            )));
        }
        if campaign.opens == 0 {
            return Err(unsettled("it has no opens to rank".into()));
        }
        let cutoff = campaign.first_send;
        let train = survey
            .campaigns
            .iter()
            .map(|c| c.last_send + label_window <= cutoff)
            .collect();
        let mut plan = Self::new(survey, train, Some(held), label_window, max_rows)?;
        plan.cutoff = Some(cutoff);
        Ok(plan)
    }

    fn new(
        survey: &Survey,
        train: Vec<bool>,
        holdout: Option<usize>,
        label_window: chrono::Duration,
        max_rows: usize,
    ) -> Result<Self, PlanError> {
        let sends: u64 = survey
            .campaigns
            .iter()
            .zip(&train)
            .filter(|(_, t)| **t)
            .map(|(c, _)| c.sends)
            .sum();
        if sends == 0 || max_rows == 0 {
            return Err(PlanError::NothingToLearn(format!(
                "{} campaign(s), none sent entirely at least {} h (--label-window-hours) before {}",
                survey.campaigns.len(),
                label_window.num_hours(),
                if holdout.is_some() {
                    "the held-out campaign"
                } else {
                    "the last event"
                }
            )));
        }
        Ok(Self {
            campaigns: survey.campaigns.clone(),
            train,
            holdout,
            cutoff: None,
            label_window,
            sample_rate: (max_rows as f64 / sends as f64).min(1.0),
        })
    }

    /// The campaigns learnt from.
    pub fn training_campaigns(&self) -> impl Iterator<Item = &CampaignInfo> {
        self.campaigns
            .iter()
            .zip(&self.train)
            .filter(|(_, t)| **t)
            .map(|(c, _)| c)
    }
}

/// Training rows: features at the send, and whether the send was opened in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingRows {
    /// Features, one row per (sampled) send.
    pub x: Vec<Features>,
    /// Opened within the label window.
    pub y: Vec<bool>,
    /// Per row, the index of its campaign.
    pub campaign: Vec<u16>,
}

/// A send of the held-out campaign: what the rankings see, and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutRow {
    /// The user's index in [`Replayed::users`].
    pub user: u32,
    /// The model's features at the send.
    pub features: Features,
    /// Days since the last activity (the baseline's recency).
    pub recency: f64,
    /// Recent visits (the baseline's frequency).
    pub frequency: f64,
    /// Opened within the label window.
    pub opened: bool,
}

/// What a replay leaves: every user's state at the end (or the cutoff), the training rows,
/// and the held-out rows.
#[derive(Debug, Default)]
pub struct Replayed {
    /// User ids by index.
    pub users: Vec<Box<str>>,
    /// User states by index, as of the last event learnt from.
    pub states: Vec<UserState>,
    /// The training rows.
    pub training: TrainingRows,
    /// The held-out campaign's sends.
    pub held_out: Vec<HeldOutRow>,
    /// Events learnt from (before the cutoff).
    pub learnt_from: u64,
    /// The stream's span.
    pub stats: StreamStats,
}

/// Pass 2: replays the events as `plan` says.
pub fn replay(input: impl EventSource, plan: &ReplayPlan) -> Result<Replayed, PlanError> {
    let campaign_index: Map<&str, u16> = plan
        .campaigns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), u16::try_from(i).unwrap_or(u16::MAX)))
        .collect();
    if plan.campaigns.len() > usize::from(u16::MAX) {
        return Err(PlanError::TooManyCampaigns(plan.campaigns.len()));
    }
    let mut user_index: Map<Box<str>, u32> = Map::default();
    let mut out = Replayed::default();
    // (row, its send's time): an open labels the row within the window of its own send.
    let mut pending: Map<(u32, u16), (u32, i64)> = Map::default();
    let mut held: Map<u32, (u32, i64)> = Map::default();
    let sampler = foldhash::fast::FixedState::with_seed(20_261_204);
    let threshold = (plan.sample_rate * u64::MAX as f64) as u64;
    let cutoff = plan.cutoff.map(|c| c.timestamp());
    let window = plan.label_window.num_seconds();
    out.stats = input.each_event(&mut |_line, e: &Event<'_>| {
        let at = e.at.timestamp();
        let frozen = cutoff.is_some_and(|c| at >= c);
        let campaign = match e.campaign_id.as_deref() {
            Some(id) => match campaign_index.get(id) {
                Some(&c) => Some(c),
                // An unsubscribe or bounce may name a campaign without a send in the events.
                None if !e.event.needs_campaign() => None,
                // An open or click of a message sent before the events begin: counted by
                // the survey (`orphans`), nothing to learn from.
                None => return Ok(()),
            },
            None => None,
        };
        if frozen && (campaign.is_none() || campaign.map(usize::from) != plan.holdout) {
            return Ok(());
        }
        let user = match user_index.get(e.user_id.as_ref()) {
            Some(&u) => u,
            None => {
                let u = out.users.len() as u32;
                user_index.insert(e.user_id.as_ref().into(), u);
                out.users.push(e.user_id.as_ref().into());
                out.states.push(UserState::default());
                u
            }
        };
        let state = &mut out.states[user as usize];
        let observed = match (e.event, campaign) {
            (EventType::Sent, Some(c)) => {
                let info = &plan.campaigns[c as usize];
                let target = Target::at(info.channel, at);
                if frozen {
                    let (recency, frequency) = state.recency_frequency(at);
                    held.insert(user, (out.held_out.len() as u32, at));
                    out.held_out.push(HeldOutRow {
                        user,
                        features: state.features(at, target),
                        recency,
                        frequency,
                        opened: false,
                    });
                    return Ok(());
                }
                if plan.train[c as usize] && sampler.hash_one((e.user_id.as_ref(), c)) <= threshold
                {
                    pending.insert((user, c), (out.training.y.len() as u32, at));
                    out.training.x.push(state.features(at, target));
                    out.training.y.push(false);
                    out.training.campaign.push(c);
                }
                Observed::Sent {
                    campaign: c,
                    channel: info.channel,
                }
            }
            (EventType::Opened, Some(c)) => {
                let info = &plan.campaigns[c as usize];
                if frozen {
                    if let Some(&(row, sent)) = held.get(&user) {
                        if at < sent + window {
                            out.held_out[row as usize].opened = true;
                        }
                    }
                    return Ok(());
                }
                if let Some(&(row, sent)) = pending.get(&(user, c)) {
                    if at < sent + window {
                        out.training.y[row as usize] = true;
                    }
                }
                Observed::Opened {
                    campaign: c,
                    channel: info.channel,
                }
            }
            (EventType::Clicked, Some(c)) => {
                if frozen {
                    return Ok(());
                }
                Observed::Clicked { campaign: c }
            }
            (EventType::Visit, _) => Observed::Visit,
            (EventType::Purchase, _) => Observed::Purchase,
            // Not yet features of the model (issue [targeting-2] uses them): read, not learnt.
            (EventType::Unsubscribed | EventType::Bounced, _) => return Ok(()),
            // Checked by the reader: these carry a campaign.
            (EventType::Sent | EventType::Opened | EventType::Clicked, None) => return Ok(()),
        };
        state.observe(at, observed);
        out.learnt_from += 1;
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at: &str, event: &str, user: &str, campaign: Option<&str>) -> String {
        let mut text = format!(r#"{{"at":"{at}","event":"{event}","user_id":"{user}""#);
        if let Some(c) = campaign {
            text.push_str(&format!(r#","campaign_id":"{c}""#));
        }
        if event == "sent" {
            text.push_str(r#","channel":"email""#);
        }
        text + "}\n"
    }

    #[test]
    fn an_open_counts_within_the_window_of_its_own_send() {
        // GIVEN a campaign sent over four days: u1 first, u2 80 h later, each opening an hour
        // after their own send
        let text = [
            line("2026-09-01T00:00:00Z", "sent", "u1", Some("c1")),
            line("2026-09-01T01:00:00Z", "opened", "u1", Some("c1")),
            line("2026-09-04T08:00:00Z", "sent", "u2", Some("c1")),
            line("2026-09-04T09:00:00Z", "opened", "u2", Some("c1")),
            line("2026-09-10T00:00:00Z", "visit", "u1", None),
        ]
        .concat();
        let found = survey(JsonLines(text.as_bytes())).unwrap();
        let plan = ReplayPlan::for_scoring(&found, chrono::Duration::hours(72), 100).unwrap();
        // WHEN replayed THEN both sends are opened (not u2's, 81 h after the first send, lost)
        let replayed = replay(JsonLines(text.as_bytes()), &plan).unwrap();
        assert_eq!(replayed.training.y, vec![true, true]);
    }

    #[test]
    fn an_open_or_click_of_a_campaign_without_a_send_is_counted_and_skipped() {
        // GIVEN events that begin after campaign c0 was sent: its open and click arrive alone
        let text = [
            line("2026-09-01T00:00:00Z", "opened", "u1", Some("c0")),
            line("2026-09-01T00:01:00Z", "clicked", "u1", Some("c0")),
            line("2026-09-01T01:00:00Z", "sent", "u1", Some("c1")),
            line("2026-09-01T02:00:00Z", "opened", "u1", Some("c1")),
            line("2026-09-10T00:00:00Z", "visit", "u1", None),
        ]
        .concat();
        // WHEN surveyed and replayed THEN they are counted, not learnt from, and nothing fails
        let found = survey(JsonLines(text.as_bytes())).unwrap();
        assert_eq!(found.orphans, 2);
        assert_eq!(found.campaigns.len(), 1);
        let plan = ReplayPlan::for_scoring(&found, chrono::Duration::hours(72), 100).unwrap();
        let replayed = replay(JsonLines(text.as_bytes()), &plan).unwrap();
        assert_eq!(replayed.training.y, vec![true]);
        assert_eq!(replayed.learnt_from, 3);
    }

    #[test]
    fn a_held_out_campaign_without_its_whole_window_or_opens_is_refused() {
        let window = chrono::Duration::hours(72);
        let early = [
            line("2026-09-01T00:00:00Z", "sent", "u1", Some("c1")),
            line("2026-09-02T00:00:00Z", "opened", "u1", Some("c1")),
            line("2026-09-10T00:00:00Z", "sent", "u1", Some("c2")),
        ]
        .concat();
        let found = survey(JsonLines(early.as_bytes())).unwrap();
        let err = ReplayPlan::for_evaluation(&found, None, window, 100).unwrap_err();
        assert!(
            err.to_string()
                .contains("label window ends after the last event"),
            "{err}"
        );
        let unopened = early + &line("2026-09-20T00:00:00Z", "visit", "u1", None);
        let found = survey(JsonLines(unopened.as_bytes())).unwrap();
        let err = ReplayPlan::for_evaluation(&found, None, window, 100).unwrap_err();
        assert!(err.to_string().contains("no opens"), "{err}");
        assert!(ReplayPlan::for_evaluation(&found, Some("c1"), window, 100)
            .unwrap_err()
            .to_string()
            .contains("no campaign to learn from"));
    }
}
