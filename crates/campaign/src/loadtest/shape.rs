//! The load shape as data: an explicit plan of steps (`500/s for 1m, ramp to 5000/s over 2m,
//! 5000/s for 5m`) or a campaign (audience × channel mix × Braze rate, each minute
//! front-loaded), both turned into one [`Profile`] of rate segments, from which the schedule
//! of intended send times follows. `--scale` multiplies every rate, `--duration` cuts the
//! schedule, `--shard i/n` keeps every n-th event: shards of one schedule add up to it.

use crate::plan::{calls_per_message, Channel};
use std::fmt;
use std::time::Duration;

/// A stretch of time whose event rate moves linearly from `from` to `to` events per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Length of the stretch.
    pub duration: Duration,
    /// Events per second at its start.
    pub from: f64,
    /// Events per second at its end (equal to `from` for a constant rate).
    pub to: f64,
}

impl Segment {
    /// Events the segment holds (the area under its rate).
    pub fn events(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }
}

/// A rate over time: segments one after another.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// Stop after this many events even if the segments hold more (a campaign's audience).
    pub max_events: Option<u64>,
}

impl Profile {
    /// Total length.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// The same shape at `factor` (> 0) × its rates: the same timing (a campaign's minutes stay
    /// minutes, front-loaded as Braze sends them), `factor` × the events per second, and
    /// `factor` × a campaign's audience, so the run takes as long as the real one.
    pub fn scaled(&self, factor: f64) -> Profile {
        let segments = self
            .segments
            .iter()
            .map(|s| Segment {
                duration: s.duration,
                from: s.from * factor,
                to: s.to * factor,
            })
            .collect();
        Profile {
            segments,
            max_events: self
                .max_events
                .map(|m| ((m as f64) * factor).round().max(1.0) as u64),
        }
    }

    /// The intended offsets of every event from the start, in order: event k is due when the
    /// integral of the rate reaches k (the first at 0). Cut at `until` when given.
    pub fn event_times(&self, until: Option<Duration>) -> EventTimes<'_> {
        EventTimes {
            profile: self,
            segment: 0,
            segment_start: Duration::ZERO,
            events_before: 0.0,
            next: 0,
            until: until.map(|d| d.as_secs_f64()),
        }
    }
}

/// The iterator of [`Profile::event_times`]: offsets in seconds.
pub struct EventTimes<'a> {
    profile: &'a Profile,
    segment: usize,
    /// Exact (a float sum of many segments would drift past a `--duration` cut).
    segment_start: Duration,
    events_before: f64,
    next: u64,
    until: Option<f64>,
}

impl Iterator for EventTimes<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        if self.profile.max_events.is_some_and(|m| self.next >= m) {
            return None;
        }
        loop {
            let seg = self.profile.segments.get(self.segment)?;
            let k = self.next as f64 - self.events_before;
            let area = seg.events();
            // (a hair under the area: a segment of exactly n events holds events 0..n, and
            // floating-point sums must not let an (n+1)th in)
            if k < area - 1e-6 {
                let t = offset_for(seg, k.max(0.0));
                let at = self.segment_start.as_secs_f64() + t;
                if self.until.is_some_and(|u| at >= u - 1e-9) {
                    return None;
                }
                self.next += 1;
                return Some(at);
            }
            self.segment_start += seg.duration;
            self.events_before += area;
            self.segment += 1;
        }
    }
}

/// Seconds into `seg` at which its rate's integral reaches `k` (0 ≤ k < its events).
fn offset_for(seg: &Segment, k: f64) -> f64 {
    let d = seg.duration.as_secs_f64();
    let slope = (seg.to - seg.from) / d;
    if slope.abs() < 1e-12 {
        return k / seg.from;
    }
    // from·t + slope·t²/2 = k
    let disc = (seg.from * seg.from + 2.0 * slope * k).max(0.0);
    ((disc.sqrt() - seg.from) / slope).clamp(0.0, d)
}

/// Why a plan or a campaign cannot be turned into a load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

/// Parses an explicit plan: steps separated by commas, each `RATE/s for DURATION` or
/// `ramp to RATE/s over DURATION` (a ramp starts at the previous step's rate, or 0), with
/// durations like `90s`, `2m`, `1h`, `1m30s`.
pub fn parse_plan(text: &str) -> Result<Profile, ShapeError> {
    let mut segments = Vec::new();
    let mut last_rate = 0.0;
    for (n, raw) in text.split(',').enumerate() {
        let step = raw.trim();
        let what = || format!("step {} ('{step}')", n + 1);
        let words: Vec<&str> = step.split_whitespace().collect();
        let (from, to, duration) = match words.as_slice() {
            [rate, "for", duration] => {
                let r = parse_rate(rate).map_err(|e| ShapeError(format!("{}: {e}", what())))?;
                (r, r, *duration)
            }
            ["ramp", "to", rate, "over", duration] => {
                let r = parse_rate(rate).map_err(|e| ShapeError(format!("{}: {e}", what())))?;
                (last_rate, r, *duration)
            }
            _ => {
                return Err(ShapeError(format!(
                    "{}: expected 'RATE/s for DURATION' or 'ramp to RATE/s over DURATION', \
                     e.g. '500/s for 1m, ramp to 5000/s over 2m'",
                    what()
                )))
            }
        };
        let duration =
            parse_duration(duration).map_err(|e| ShapeError(format!("{}: {e}", what())))?;
        segments.push(Segment { duration, from, to });
        last_rate = to;
    }
    Ok(Profile {
        segments,
        max_events: None,
    })
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text
        .strip_suffix("/s")
        .ok_or_else(|| format!("rate '{text}' must end in /s, e.g. 500/s"))?;
    match number.replace('_', "").parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "rate '{text}' is not a number of requests per second"
        )),
    }
}

/// Parses `90s`, `2m`, `1h`, `1m30s`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("duration '{text}' must look like 90s, 2m, 1h or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(seconds);
        rest = next;
    }
    if total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

/// A campaign's traffic, as Braze would send it.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignShape {
    /// Recipients.
    pub audience: u64,
    /// (channel, share); shares sum to 1.
    pub channels: Vec<(Channel, f64)>,
    /// Braze rate limit, messages per minute.
    pub rate_per_minute: f64,
    /// Peak-to-average message rate inside a minute: Braze sends as fast as it can at the
    /// start of each minute, so the minute's messages go out in its first 60/`burst` s.
    pub burst_factor: f64,
}

impl CampaignShape {
    /// The profile of messages per second: each minute `burst` × the average for its first
    /// 60/`burst` seconds, then nothing; it ends when the audience is done.
    pub fn profile(&self) -> Result<Profile, ShapeError> {
        if self.audience == 0 || !self.rate_per_minute.is_finite() || self.rate_per_minute <= 0.0 {
            return Err(ShapeError(
                "--audience and --rate must be above zero".to_owned(),
            ));
        }
        let sum: f64 = self.channels.iter().map(|(_, s)| s).sum();
        if self.channels.is_empty() || (sum - 1.0).abs() > 1e-6 {
            return Err(ShapeError(format!(
                "--channel shares must sum to 1 (got {sum})"
            )));
        }
        let burst = self.burst_factor.max(1.0);
        let busy = Duration::from_secs_f64(60.0 / burst);
        let peak = self.rate_per_minute / 60.0 * burst;
        let minutes = (self.audience as f64 / self.rate_per_minute).ceil() as usize;
        let mut segments = Vec::with_capacity(minutes * 2);
        for _ in 0..minutes {
            segments.push(Segment {
                duration: busy,
                from: peak,
                to: peak,
            });
            if burst > 1.0 {
                segments.push(Segment {
                    duration: Duration::from_secs(60) - busy,
                    from: 0.0,
                    to: 0.0,
                });
            }
        }
        Ok(Profile {
            segments,
            max_events: Some(self.audience),
        })
    }

    /// The channel of message `n`: a low-discrepancy spread, so every stretch of the send
    /// has the mix's proportions and the same `n` always gets the same channel.
    pub fn channel_of(&self, n: u64) -> Channel {
        let x = ((n as f64 + 0.5) * 0.618_033_988_749_894_9).fract();
        let mut cumulative = 0.0;
        for (channel, share) in &self.channels {
            cumulative += share;
            if x < cumulative {
                return *channel;
            }
        }
        self.channels.last().map_or(Channel::Email, |c| c.0)
    }

    /// Calls one message of `channel` makes to each block: an email's HTML, text and AMP
    /// parts are rendered separately, all with the same URL.
    pub fn calls_per_block(channel: Channel) -> u32 {
        calls_per_message(channel) as u32
    }
}

/// One of `count` machines' share of a schedule: event k belongs to shard `k % count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This machine's index, 0-based.
    pub index: u32,
    /// How many machines share the schedule.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Parses `i/n` with 1 ≤ i ≤ n (people count machines from 1).
    pub fn parse(text: &str) -> Result<Self, ShapeError> {
        let bad = || {
            ShapeError(format!(
                "--shard '{text}' must be i/n with 1 ≤ i ≤ n, e.g. 1/2"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Self {
            index: i - 1,
            count: n,
        })
    }

    /// Whether event `k` is this shard's.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count.max(1)) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(profile: &Profile) -> Vec<usize> {
        let mut out = vec![0; profile.duration().as_secs() as usize + 1];
        for t in profile.event_times(None) {
            out[t as usize] += 1;
        }
        out
    }

    #[test]
    fn a_plan_parses_into_steps_with_ramps_from_the_previous_rate() {
        let p = parse_plan("500/s for 1m, ramp to 5000/s over 2m, 5000/s for 5m").unwrap();
        assert_eq!(
            p.segments,
            [
                Segment {
                    duration: Duration::from_secs(60),
                    from: 500.0,
                    to: 500.0
                },
                Segment {
                    duration: Duration::from_secs(120),
                    from: 500.0,
                    to: 5000.0
                },
                Segment {
                    duration: Duration::from_secs(300),
                    from: 5000.0,
                    to: 5000.0
                },
            ]
        );
        assert_eq!(p.duration(), Duration::from_secs(480));
        let p = parse_plan("ramp to 100/s over 10s").unwrap();
        assert_eq!(p.segments[0].from, 0.0);
    }

    #[test]
    fn bad_plans_say_which_step_and_what_was_expected() {
        for (text, needle) in [
            ("500 for 1m", "step 1"),
            ("500/s for 1m, 10/s during 2m", "step 2"),
            ("500/s for soon", "duration"),
            ("-5/s for 1m", "rate"),
            ("", "expected"),
        ] {
            let err = parse_plan(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn constant_and_ramped_rates_give_the_scheduled_events_per_second() {
        let p = parse_plan("100/s for 3s, ramp to 300/s over 2s").unwrap();
        let counts = per_second(&p);
        assert_eq!(&counts[..3], [100, 100, 100]);
        // ramp 100 → 300 over 2 s: 150 in its first second, 250 in its second
        assert!((counts[3] as i64 - 150).abs() <= 1, "{counts:?}");
        assert!((counts[4] as i64 - 250).abs() <= 1, "{counts:?}");
        assert_eq!(p.event_times(None).count(), 700);
        // times never go backwards
        let times: Vec<f64> = p.event_times(None).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn scale_keeps_the_timing_and_duration_cuts() {
        let p = parse_plan("1000/s for 10s").unwrap().scaled(0.1);
        assert_eq!(p.duration(), Duration::from_secs(10));
        assert_eq!(per_second(&p)[0], 100);
        assert_eq!(p.event_times(None).count(), 1_000);
        assert_eq!(p.event_times(Some(Duration::from_secs(5))).count(), 500);
        // a campaign keeps its minutes and sends to the same share of its audience
        let shape = CampaignShape {
            audience: 10_000,
            channels: vec![(Channel::Push, 1.0)],
            rate_per_minute: 1_200.0,
            burst_factor: 2.0,
        };
        let p = shape.profile().unwrap().scaled(0.5);
        let counts = per_second(&p);
        assert_eq!((counts[0], counts[29], counts[30]), (20, 20, 0));
        assert_eq!(p.event_times(None).count(), 5_000);
        // a cut at a minute boundary keeps exactly the whole minutes before it
        let big = CampaignShape {
            audience: 1_000_000,
            channels: vec![(Channel::Email, 1.0)],
            rate_per_minute: 100_000.0,
            burst_factor: 2.0,
        };
        let p = big.profile().unwrap().scaled(0.2);
        let three_minutes: Vec<f64> = p.event_times(Some(Duration::from_secs(180))).collect();
        assert_eq!(three_minutes.len(), 60_000);
        assert!(three_minutes
            .iter()
            .all(|t| (*t % 60.0) < 30.0 + 1e-9 || (60.0 - *t % 60.0) < 1e-6));
    }

    #[test]
    fn a_campaign_front_loads_each_minute_and_ends_with_the_audience() {
        // 1,000 messages at 600/min, burst ×2: 20/s for the first 30 s of each minute.
        let shape = CampaignShape {
            audience: 1_000,
            channels: vec![(Channel::Email, 0.7), (Channel::Push, 0.3)],
            rate_per_minute: 600.0,
            burst_factor: 2.0,
        };
        let p = shape.profile().unwrap();
        let counts = per_second(&p);
        assert_eq!(counts[0], 20);
        assert_eq!(counts[29], 20);
        assert_eq!(counts[30], 0);
        assert_eq!(counts[60], 20);
        assert_eq!(p.event_times(None).count(), 1_000);
        let emails = (0..1_000)
            .filter(|n| shape.channel_of(*n) == Channel::Email)
            .count();
        assert!((emails as i64 - 700).abs() <= 2, "{emails}");
        assert_eq!(CampaignShape::calls_per_block(Channel::Email), 3);
        assert_eq!(CampaignShape::calls_per_block(Channel::Push), 1);
    }

    #[test]
    fn shards_partition_the_events() {
        let s1 = Shard::parse("1/2").unwrap();
        let s2 = Shard::parse("2/2").unwrap();
        assert_eq!(s1.to_string(), "1/2");
        assert!((0..100).all(|k| s1.owns(k) != s2.owns(k)));
        for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
