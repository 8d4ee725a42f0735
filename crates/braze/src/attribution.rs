//! Attribution: each Braze send that carries sendtime's `message_extras` joined with the
//! opens, clicks and purchases that followed it, reported per block, stage, answer source,
//! item position and item source (`sendtime events attribution`).
//!
//! The rules, each with its reason:
//! - An open or click belongs to the send of the same user with the same `dispatch_id` when
//!   both have one, else to the latest earlier send of the same user and campaign (whose own
//!   dispatch id, if any, does not contradict the event's).
//! - A purchase converts a send when it comes within the window after the send and after a
//!   click on it ([`Credit::Click`], the default: a purchase after a mere open says little
//!   about what the message showed) or after an open or click ([`Credit::Open`]).
//! - One purchase credits one send, the latest eligible one, so revenue adds up across rows
//!   (Braze itself credits every campaign whose deadline covers the conversion — "If a user
//!   performs one conversion event within the conversion deadlines of two separate campaigns
//!   or Canvases that they received, then the conversion will register on both", from
//!   <https://www.braze.com/docs/user_guide/engagement_tools/messaging_fundamentals/conversion_events>;
//!   we deliberately do not, so no purchase is counted twice).
//! - A send converts once however many purchases it is credited with (Braze: "If a user who
//!   receives this campaign makes two separate purchases within the conversion deadline,
//!   then only one conversion will be counted", same page); every credited purchase's value
//!   counts as revenue, per currency, never one currency added to another.
//! - The window defaults to Braze's default conversion deadline, three days ("If there are no
//!   conversion events selected during campaign creation, the time defaults to three days",
//!   same page), and is at most Braze's 30 ("You have the option of allowing up to a 30-day
//!   window during which the conversion will be counted", same page). It also bounds memory:
//!   a send is forgotten once the window after it has passed, so an open or click later than
//!   that is counted as unattributed.

mod chart;
mod extras;
mod join;
mod markdown;
mod report;

pub use chart::{svg, ChartError};
pub use extras::{
    BLOCK, DEGRADED, MAX_POSITION, POPULAR, POSITION_PARAMETER, REC_ID, SOURCE, SOURCES, STAGE,
};
pub use join::Attributor;
pub use markdown::markdown;
pub use report::{
    BlockRow, Input, ItemRow, PositionRow, Report, Revenue, Row, SendCounts, SettingsOut,
    SourceItemRow, SourceRow, StageRow, Unattributed,
};

use sendtime_targeting::events::{for_each_event, EventsError, StreamStats};
use std::io::BufRead;

/// Braze's default conversion deadline, in hours (three days; see the module's doc).
pub const DEFAULT_WINDOW_HOURS: u32 = 72;
/// Braze's longest conversion deadline, in hours (30 days).
pub const MAX_WINDOW_HOURS: u32 = 30 * 24;
/// The currency key of a purchase that has a value but no `currency`.
pub const NO_CURRENCY: &str = "unknown";

/// What must come between a send and a purchase for the purchase to convert it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Credit {
    /// A click on the send.
    #[default]
    Click,
    /// An open or a click of the send.
    Open,
}

impl std::str::FromStr for Credit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "click" => Ok(Credit::Click),
            "open" => Ok(Credit::Open),
            _ => Err(format!("unknown credit '{s}' (expected click or open)")),
        }
    }
}

/// How the join credits sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Hours after a send during which its opens, clicks and purchases count (1–720).
    pub window_hours: u32,
    /// What a purchase must follow.
    pub credit: Credit,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window_hours: DEFAULT_WINDOW_HOURS,
            credit: Credit::Click,
        }
    }
}

impl Settings {
    /// Why the settings cannot be used, naming the flag that fixes them.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_WINDOW_HOURS).contains(&self.window_hours) {
            return Err(format!(
                "--window-hours must be 1–{MAX_WINDOW_HOURS} (Braze's conversion deadline is at most 30 days), not {}",
                self.window_hours
            ));
        }
        Ok(())
    }
}

/// Reads an events file to its end and reports it; `progress` is called every
/// `progress_every` events with the count so far and the sends in the window.
pub fn attribute(
    input: impl BufRead,
    settings: Settings,
    progress_every: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, EventsError> {
    let mut join = Attributor::new(settings);
    let mut read = 0u64;
    let stats: StreamStats = for_each_event::<EventsError>(input, |_, event| {
        join.push(event);
        read += 1;
        if progress_every > 0 && read.is_multiple_of(progress_every) {
            progress(read, join.live_sends());
        }
        Ok(())
    })?;
    Ok(Report::from_join(join, stats.events))
}

#[cfg(test)]
mod tests;
