//! The evaluation never learns from the held-out campaign or anything after it: whatever
//! happens at or after its first send (its opens, later visits, opens and sends of other
//! campaigns) leaves every training row and every held-out row's features unchanged.

use chrono::{DateTime, Utc};
use sendtime_targeting::events::{for_each_event, Event, EventType, EventsError};
use sendtime_targeting::replay::{replay, survey, JsonLines, ReplayPlan};
use sendtime_targeting::synth::{generate, SynthSpec};
use std::convert::Infallible;

fn generated(users: usize) -> String {
    let spec = SynthSpec {
        users,
        seed: 11,
        as_of: "2026-12-01T00:00:00Z".parse().unwrap(),
        days: 60,
        campaigns: 6,
    };
    let mut text = String::new();
    generate::<Infallible>(
        &spec,
        |e| {
            text.push_str(&serde_json::to_string(e).unwrap());
            text.push('\n');
            Ok(())
        },
        |_| Ok(()),
    )
    .unwrap();
    text
}

/// The events with everything at or after `cutoff` rewritten: the held-out campaign's opens
/// dropped, every later visit dropped, and an open of every other campaign added for every
/// user at the end — all of which a leaking evaluation would learn from.
fn tampered(text: &str, cutoff: DateTime<Utc>, holdout: &str) -> String {
    let mut out = String::new();
    let mut users = std::collections::BTreeSet::new();
    let mut campaigns = std::collections::BTreeSet::new();
    let mut last = cutoff;
    for_each_event::<EventsError>(text.as_bytes(), |_, e: &Event<'_>| {
        users.insert(e.user_id.to_string());
        last = e.at;
        let campaign = e.campaign_id.as_deref();
        if e.event == EventType::Sent && campaign != Some(holdout) {
            campaigns.insert(campaign.unwrap_or_default().to_string());
        }
        let after = e.at >= cutoff;
        let drop = after
            && (e.event == EventType::Visit
                || (e.event == EventType::Opened && campaign == Some(holdout)));
        if !drop {
            out.push_str(&serde_json::to_string(e).unwrap());
            out.push('\n');
        }
        Ok(())
    })
    .unwrap();
    for user in &users {
        for campaign in &campaigns {
            out.push_str(&format!(
                "{{\"at\":\"{}\",\"event\":\"opened\",\"user_id\":\"{user}\",\"campaign_id\":\"{campaign}\"}}\n",
                last.to_rfc3339()
            ));
        }
    }
    out
}

#[test]
fn nothing_at_or_after_the_held_out_send_changes_what_is_learnt() {
    // GIVEN generated events and an evaluation plan holding out the last campaign
    let text = generated(1_500);
    let found = survey(JsonLines(text.as_bytes())).unwrap();
    let window = chrono::Duration::hours(72);
    let plan = ReplayPlan::for_evaluation(&found, None, window, 1_000_000).unwrap();
    let holdout = &plan.campaigns[plan.holdout.unwrap()];
    let cutoff = plan.cutoff.unwrap();
    assert_eq!(cutoff, holdout.first_send);
    // THEN only campaigns whose label window closed before the cutoff are learnt from
    let trained: Vec<_> = plan.training_campaigns().collect();
    assert!(trained.len() >= 4, "{}", trained.len());
    assert!(trained.iter().all(|c| c.first_send + window <= cutoff));
    assert!(trained.iter().all(|c| c.id != holdout.id));

    // WHEN the same evaluation runs on events rewritten after the cutoff
    let a = replay(JsonLines(text.as_bytes()), &plan).unwrap();
    let b = replay(
        JsonLines(tampered(&text, cutoff, &holdout.id).as_bytes()),
        &plan,
    )
    .unwrap();

    // THEN the training rows are identical, and none is of the held-out campaign
    assert!(!a.training.y.is_empty());
    assert_eq!(a.training, b.training);
    let held_index = plan.holdout.unwrap() as u16;
    assert!(a.training.campaign.iter().all(|&c| c != held_index));
    // AND the held-out rows see the same features; only their outcomes differ
    assert_eq!(a.held_out.len(), b.held_out.len());
    assert!(a
        .held_out
        .iter()
        .zip(&b.held_out)
        .all(|(x, y)| x.features == y.features && x.recency == y.recency));
    assert!(a.held_out.iter().any(|r| r.opened));
    assert!(b.held_out.iter().all(|r| !r.opened));
}

#[test]
fn generation_is_deterministic_and_in_time_order() {
    let a = generated(300);
    assert_eq!(a, generated(300));
    let stats = for_each_event::<EventsError>(a.as_bytes(), |_, _| Ok(())).unwrap();
    assert!(stats.events > 1_000, "{}", stats.events);
}
