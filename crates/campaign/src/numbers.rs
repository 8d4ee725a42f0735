//! Numbers for people in our reports and tables: thousands separators and fixed decimals,
//! written once for the plan table, the load-test report and the chart's axes.

use sendtime_domain::money::group_thousands;

/// `x` with thousands separators and `places` decimals (`12,345.7`); `–` when not finite.
pub fn decimals(x: f64, places: usize) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let text = format!("{:.*}", places, x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let negative = x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0');
    let grouped = group_thousands(int.parse().unwrap_or(0));
    match (negative, frac.is_empty()) {
        (false, true) => grouped,
        (false, false) => format!("{grouped}.{frac}"),
        (true, true) => format!("-{grouped}"),
        (true, false) => format!("-{grouped}.{frac}"),
    }
}

/// A whole number with thousands separators (`1,234,567`).
pub fn group(x: f64) -> String {
    decimals(x, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_decimals() {
        assert_eq!(group(1_234_567.4), "1,234,567");
        assert_eq!(group(999.5), "1,000");
        assert_eq!(group(-12_000.0), "-12,000");
        assert_eq!(decimals(12_345.67, 1), "12,345.7");
        assert_eq!(decimals(-0.001, 2), "0.00");
        assert_eq!(decimals(f64::NAN, 1), "–");
    }
}
