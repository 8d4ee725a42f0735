//! Display prices. Templates should not have to format money in Liquid, so every price in a
//! block comes with a ready-to-print string.

/// Formats an amount in minor units: `₩12,900`, `$12.90`, `€5.00`, or `12.90 CHF` for others.
pub fn display_price(minor: i64, currency: &str) -> String {
    Money::new(minor, currency).to_string()
}

/// An amount ready to print, formatted only when written (a block serialises it straight
/// into the answer, with no intermediate string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money<'a> {
    /// Minor units of `currency`.
    pub minor: i64,
    /// ISO 4217 code.
    pub currency: &'a str,
}

impl<'a> Money<'a> {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: &'a str) -> Self {
        Self { minor, currency }
    }
}

impl std::fmt::Display for Money<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (minor, currency) = (self.minor, self.currency);
        let (symbol, decimals) = match currency {
            "KRW" => (Some("₩"), 0),
            "JPY" => (Some("¥"), 0),
            "USD" => (Some("$"), 2),
            "EUR" => (Some("€"), 2),
            "GBP" => (Some("£"), 2),
            _ => (None, 2),
        };
        if minor < 0 {
            f.write_str("-")?;
        }
        if let Some(s) = symbol {
            f.write_str(s)?;
        }
        let abs = minor.unsigned_abs();
        if decimals == 0 {
            write_grouped(f, abs)?;
        } else {
            let scale = 10u64.pow(decimals);
            write_grouped(f, abs / scale)?;
            write!(f, ".{:0width$}", abs % scale, width = decimals as usize)?;
        }
        if symbol.is_none() {
            write!(f, " {currency}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Money<'_> {
    /// Formatted on the stack, then written as one string (a price is a few dozen bytes).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = StackText::default();
        match std::fmt::write(&mut buf, format_args!("{self}")) {
            Ok(()) => s.serialize_str(buf.as_str()),
            Err(_) => s.collect_str(self), // longer than the buffer: an odd currency code
        }
    }
}

/// A short text formatted without allocating; refuses (an error) what does not fit.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        if end > self.bytes.len() {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl PartialEq<&str> for Money<'_> {
    fn eq(&self, other: &&str) -> bool {
        let printed: String = self.to_string();
        printed.as_str() == *other
    }
}

/// Writes `n` with a comma every three digits, without allocating.
fn write_grouped(f: &mut std::fmt::Formatter<'_>, n: u64) -> std::fmt::Result {
    if n < 1000 {
        return write!(f, "{n}");
    }
    write_grouped(f, n / 1000)?;
    write!(f, ",{:03}", n % 1000)
}

/// Price after a percentage discount, rounded half up to the minor unit.
pub fn discounted(minor: i64, pct: u8) -> i64 {
    let pct = i64::from(pct.min(100));
    (minor * (100 - pct) + 50).div_euclid(100)
}

/// `n` with a comma every three digits (`1,234,567`).
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_common_currencies() {
        assert_eq!(display_price(12_900, "KRW"), "₩12,900");
        assert_eq!(display_price(1_234_567, "KRW"), "₩1,234,567");
        assert_eq!(display_price(0, "KRW"), "₩0");
        assert_eq!(display_price(1290, "USD"), "$12.90");
        assert_eq!(display_price(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(display_price(5, "EUR"), "€0.05");
        assert_eq!(display_price(1290, "CHF"), "12.90 CHF");
        assert_eq!(display_price(-500, "KRW"), "-₩500");
        assert_eq!(display_price(1_000_000, "KRW"), "₩1,000,000");
        assert_eq!(display_price(100_000_005, "USD"), "$1,000,000.05");
        assert_eq!(display_price(-123_456, "JPY"), "-¥123,456");
        assert_eq!(
            serde_json::to_string(&Money::new(12_900, "KRW")).unwrap(),
            "\"₩12,900\""
        );
        let long = "X".repeat(60);
        assert_eq!(
            serde_json::to_string(&Money::new(i64::MIN, &long)).unwrap(),
            format!("\"-92,233,720,368,547,758.08 {long}\"")
        );
    }

    #[test]
    fn discounts_round_half_up() {
        assert_eq!(discounted(12_900, 10), 11_610);
        assert_eq!(discounted(999, 15), 849);
        assert_eq!(discounted(1000, 0), 1000);
        assert_eq!(discounted(1000, 100), 0);
    }
}
