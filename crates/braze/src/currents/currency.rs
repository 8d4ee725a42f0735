//! Money in minor units: a Currents price (a float in major units, with an ISO 4217 code)
//! to the events format's integer `value`.
//!
//! The exponents ("minor unit" digits) are ISO 4217's, as its maintenance agency publishes
//! them in List One (<https://www.six-group.com/en/products-services/financial-information/data-standards.html>):
//! KRW, JPY and VND have 0 decimals, USD and EUR 2, the dinars of Kuwait, Bahrain, Jordan,
//! Oman, Tunisia, Libya and Iraq 3. A currency not in this table is refused (and counted by
//! the import), never guessed.

/// ISO 4217 code → minor-unit digits, for the currencies this import accepts.
const EXPONENTS: &[(&str, u32)] = &[
    // 0 decimals.
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    // 2 decimals.
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("KZT", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("ZAR", 2),
    // 3 decimals.
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
];

/// Why a price could not become minor units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is not one of [`EXPONENTS`].
    #[error("currency '{0}' is not supported (add its ISO 4217 exponent to crates/braze/src/currents/currency.rs)")]
    Unsupported(String),
    /// NaN, infinite, negative or too large for minor units in an i64.
    #[error("price {0} is not a usable amount")]
    BadAmount(String),
}

/// The minor-unit digits of an ISO 4217 code (upper-cased first), if supported.
pub fn exponent(code: &str) -> Option<u32> {
    let code = code.trim().to_ascii_uppercase();
    EXPONENTS.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
}

/// `price` major units of `code` in minor units, rounded to the nearest (a float price such
/// as 12.99 is 12.98999… in binary: rounding, not truncating, gives 1299); with the code
/// normalised (upper case).
pub fn to_minor(price: f64, code: &str) -> Result<(i64, String), MoneyError> {
    let normalised = code.trim().to_ascii_uppercase();
    let digits = exponent(&normalised).ok_or_else(|| MoneyError::Unsupported(code.to_owned()))?;
    let minor = (price * 10f64.powi(digits as i32)).round();
    if !minor.is_finite() || !(0.0..=9.0e15).contains(&minor) {
        return Err(MoneyError::BadAmount(price.to_string()));
    }
    Ok((minor as i64, normalised))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_become_minor_units_by_their_currencys_exponent() {
        assert_eq!(to_minor(12900.0, "KRW"), Ok((12900, "KRW".into())));
        assert_eq!(
            to_minor(f64::from(12.99f32), "usd"),
            Ok((1299, "USD".into()))
        );
        assert_eq!(to_minor(1500.0, "JPY"), Ok((1500, "JPY".into())));
        assert_eq!(to_minor(1.234, "KWD"), Ok((1234, "KWD".into())));
        assert!(matches!(
            to_minor(1.0, "XYZ"),
            Err(MoneyError::Unsupported(_))
        ));
        assert!(matches!(
            to_minor(f64::NAN, "USD"),
            Err(MoneyError::BadAmount(_))
        ));
        assert!(matches!(
            to_minor(-1.0, "USD"),
            Err(MoneyError::BadAmount(_))
        ));
    }

    #[test]
    fn every_code_in_the_table_is_three_upper_case_letters_and_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for (code, _) in EXPONENTS {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code}"
            );
            assert!(seen.insert(code), "{code} twice");
        }
    }
}
