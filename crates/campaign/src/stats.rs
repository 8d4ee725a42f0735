//! Latency statistics shared by `campaign send` and `loadtest`: one HDR histogram type
//! (microseconds, 1 µs to 2 min, 3 significant digits: 0.1 % precision at any scale, a fixed
//! few tens of KB whatever the count), recorded without locks by its owner, merged exactly
//! (shards of a load test add up to the histogram of all their samples), and carried in
//! result files as base64 of HdrHistogram's V2 encoding.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest latency recorded exactly, in microseconds (2 minutes); longer ones are clamped.
const MAX_MICROS: u64 = 120_000_000;

/// A latency distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> Self {
        // The bounds are constants that HdrHistogram accepts (low ≥ 1, high ≥ 2 × low, 3
        // significant digits), so this cannot fail; fall back to an auto-resizing one anyway.
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 3).or_else(|_| Histogram::new(3));
        Self(h.unwrap_or_else(|_| unreachable!("constant bounds are valid")))
    }

    /// An empty distribution at 2 significant digits (1 % precision, a few KB): for
    /// per-second timelines, where thousands of them are kept.
    pub fn coarse() -> Self {
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 2).or_else(|_| Histogram::new(2));
        Self(h.unwrap_or_else(|_| unreachable!("constant bounds are valid")))
    }

    /// Adds one sample (clamped to 1 µs ..= 2 min).
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        // Within the bounds by the clamp, so recording cannot fail.
        let _ = self.0.record(micros);
    }

    /// Adds every sample of `other`: exact, like recording them here (at this one's
    /// precision).
    pub fn merge(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0.0–1.0) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    /// The largest sample in milliseconds; 0 when empty.
    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// The mean in milliseconds; 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        self.0.mean() / 1000.0
    }

    /// The V2 encoding in base64, for result files.
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::new();
        // Serializing into a Vec cannot fail for an in-bounds histogram; an empty string
        // reads back as an empty histogram.
        if V2Serializer::new().serialize(&self.0, &mut bytes).is_err() {
            bytes.clear();
        }
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads [`Latency::to_base64`]'s output.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self::new());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram is not HdrHistogram V2: {e:?}"))?;
        if h.high() < MAX_MICROS {
            return Err(format!("histogram tops out at {} µs", h.high()));
        }
        Ok(Self(h))
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_tenth_of_a_percent() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 1000);
        assert!(
            (l.quantile_ms(0.5) - 500.0).abs() <= 0.5,
            "{}",
            l.quantile_ms(0.5)
        );
        assert!(
            (l.quantile_ms(0.99) - 990.0).abs() <= 1.0,
            "{}",
            l.quantile_ms(0.99)
        );
        assert!((l.max_ms() - 1000.0).abs() <= 1.0);
    }

    #[test]
    fn merged_halves_equal_the_whole_and_survive_a_round_trip() {
        let (mut a, mut b, mut all) = (Latency::new(), Latency::new(), Latency::new());
        for i in 0..10_000u64 {
            let d = Duration::from_micros(200 + (i * 7919) % 250_000);
            if i % 2 == 0 {
                a.record(d)
            } else {
                b.record(d)
            }
            all.record(d);
        }
        let a = Latency::from_base64(&a.to_base64()).unwrap();
        let b: Latency = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, all);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(merged.quantile_ms(q), all.quantile_ms(q));
        }
    }

    #[test]
    fn empty_is_zero_and_bad_text_is_an_error() {
        let l = Latency::new();
        assert_eq!((l.count(), l.quantile_ms(0.99), l.max_ms()), (0, 0.0, 0.0));
        assert_eq!(Latency::from_base64("").unwrap(), l);
        assert!(Latency::from_base64("not base64!").is_err());
        assert!(Latency::from_base64("AAAA").is_err());
    }

    #[test]
    fn out_of_range_samples_are_clamped_not_lost() {
        let mut l = Latency::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(600));
        assert_eq!(l.count(), 2);
        assert!(l.max_ms() >= 119_000.0);
    }
}
