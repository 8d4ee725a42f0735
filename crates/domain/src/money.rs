//! Display prices. Templates should not have to format money in Liquid, so every price in a
//! block comes with a ready-to-print string.

/// Formats an amount in minor units: `₩12,900`, `$12.90`, `€5.00`, or `12.90 CHF` for others.
pub fn display_price(minor: i64, currency: &str) -> String {
    let (symbol, decimals) = match currency {
        "KRW" => (Some("₩"), 0),
        "JPY" => (Some("¥"), 0),
        "USD" => (Some("$"), 2),
        "EUR" => (Some("€"), 2),
        "GBP" => (Some("£"), 2),
        _ => (None, 2),
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let number = if decimals == 0 {
        group_thousands(abs)
    } else {
        let scale = 10u64.pow(decimals);
        format!(
            "{}.{:0width$}",
            group_thousands(abs / scale),
            abs % scale,
            width = decimals as usize
        )
    };
    match symbol {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{number} {currency}"),
    }
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
    }

    #[test]
    fn discounts_round_half_up() {
        assert_eq!(discounted(12_900, 10), 11_610);
        assert_eq!(discounted(999, 15), 849);
        assert_eq!(discounted(1000, 0), 1000);
        assert_eq!(discounted(1000, 100), 0);
    }
}
