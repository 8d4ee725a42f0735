//! Just enough of Braze's Liquid to render our documented templates in tests: the `liquid`
//! crate's standard library plus Braze's `hmac_sha256_hex` (input is the message, the
//! argument the secret — Braze's documented order) and `url_param_escape` filters, and its
//! `${attribute}` syntax for user attributes (rendered as the global of that name).

use hmac::{KeyInit, Mac};
use liquid_core::{
    Display_filter, Expression, Filter, FilterParameters, FilterReflection, FromFilterParameters,
    ParseFilter, Result, Runtime, Value, ValueView,
};

#[derive(Debug, FilterParameters)]
struct HmacArgs {
    #[parameter(description = "The secret key.", arg_type = "str")]
    key: Expression,
}

/// `{{ message | hmac_sha256_hex: 'secret' }}`: hex HMAC-SHA256 of the input under the key.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "hmac_sha256_hex",
    description = "Hex HMAC-SHA256 of the input, keyed by the argument.",
    parameters(HmacArgs),
    parsed(HmacFilter)
)]
pub struct HmacSha256Hex;

#[derive(Debug, FromFilterParameters, Display_filter)]
#[name = "hmac_sha256_hex"]
struct HmacFilter {
    #[parameters]
    args: HmacArgs,
}

impl Filter for HmacFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(args.key.as_bytes())
            .expect("HMAC takes any key");
        mac.update(input.to_kstr().as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Value::scalar(hex))
    }
}

/// `{{ value | url_param_escape }}`: percent-encodes everything but unreserved characters.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "url_param_escape",
    description = "Percent-encodes a URL parameter, & included.",
    parsed(UrlParamEscapeFilter)
)]
pub struct UrlParamEscape;

#[derive(Debug, Default, Display_filter)]
#[name = "url_param_escape"]
struct UrlParamEscapeFilter;

impl Filter for UrlParamEscapeFilter {
    fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
        let escaped: String = input
            .to_kstr()
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Ok(Value::scalar(escaped))
    }
}

/// Renders a Braze template for a user with these attributes (`${name}` → `name`).
pub fn render(template: &str, attributes: &[(&str, &str)]) -> String {
    let mut text = template.to_owned();
    let mut globals = liquid::Object::new();
    for (name, value) in attributes {
        text = text.replace(&format!("${{{name}}}"), name);
        globals.insert(
            (*name).to_owned().into(),
            Value::scalar((*value).to_owned()),
        );
    }
    let parser = liquid::ParserBuilder::with_stdlib()
        .filter(HmacSha256Hex)
        .filter(UrlParamEscape)
        .build()
        .expect("a Liquid parser");
    parser
        .parse(&text)
        .unwrap_or_else(|e| panic!("template does not parse: {e}"))
        .render(&globals)
        .unwrap_or_else(|e| panic!("template does not render: {e}"))
}
