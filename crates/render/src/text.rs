//! Text rules every renderer shares: HTML escaping, which URLs may become links, and cutting
//! text to a channel's limit at a character boundary (a whole grapheme: a Hangul syllable, an
//! emoji with its modifiers), never mid-character, with an ellipsis.

use unicode_segmentation::UnicodeSegmentation;

/// The ellipsis a cut text ends with (one character; two bytes in EUC-KR).
pub const ELLIPSIS: &str = "…";

/// `text` with `& < > " '` as entities: safe in HTML text and in quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// `url` if it may be a link: `http(s)://` only (no `javascript:`, `data:`, relative or
/// protocol-relative links from data), without whitespace or control characters.
pub fn safe_url(url: &str) -> Option<&str> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    (scheme_ok && clean && url.len() > "https://".len()).then_some(url)
}

/// Control characters (but newlines) out, runs of blanks within a line as one space, each
/// line trimmed: data goes into short messages as one tidy line.
pub fn tidy(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Characters (Unicode scalar values), as push and KakaoTalk limits count them.
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Bytes in EUC-KR (Korean SMS/LMS): ASCII one, Hangul and the other KS X 1001 characters
/// two. Characters EUC-KR cannot carry must be replaced first ([`to_euc_kr_text`]).
pub fn euc_kr_bytes(text: &str) -> usize {
    let (bytes, _, _) = encoding_rs::EUC_KR.encode(text);
    bytes.len()
}

/// `text` with every character EUC-KR cannot encode (emoji, most symbols outside KS X 1001)
/// replaced by `?`, as Korean carriers would; what remains is measured by [`euc_kr_bytes`].
pub fn to_euc_kr_text(text: &str) -> String {
    let mut buf = [0u8; 4];
    text.chars()
        .map(|ch| {
            let (_, _, unmappable) = encoding_rs::EUC_KR.encode(ch.encode_utf8(&mut buf));
            if unmappable {
                '?'
            } else {
                ch
            }
        })
        .collect()
}

/// `text` if it measures at most `max`, else its longest prefix of whole graphemes that
/// fits with [`ELLIPSIS`] after it (trailing blanks trimmed).
pub fn fit(text: &str, max: usize, measure: impl Fn(&str) -> usize) -> String {
    if measure(text) <= max {
        return text.to_owned();
    }
    let budget = max.saturating_sub(measure(ELLIPSIS));
    let mut used = 0;
    let mut end = 0;
    for (start, grapheme) in text.grapheme_indices(true) {
        let size = measure(grapheme);
        if used + size > budget {
            break;
        }
        used += size;
        end = start + grapheme.len();
    }
    let kept = text[..end].trim_end();
    if measure(ELLIPSIS) > max {
        return kept.to_owned();
    }
    format!("{kept}{ELLIPSIS}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn html_specials_become_entities() {
        assert_eq!(
            escape_html(r#"<script>alert("x&y")</script> it's"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; it&#39;s"
        );
        assert_eq!(escape_html("신발 한 켤레"), "신발 한 켤레");
    }

    #[test]
    fn only_web_links_are_links() {
        assert_eq!(
            safe_url("https://x.example/a?b=1&c=2"),
            Some("https://x.example/a?b=1&c=2")
        );
        assert_eq!(safe_url("HTTP://x.example"), Some("HTTP://x.example"));
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//evil",
            "/relative",
            "https://",
            "https://a b",
            "https://a\u{0}",
        ] {
            assert_eq!(safe_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn korean_counts_two_bytes_in_euc_kr() {
        assert_eq!(euc_kr_bytes("abc"), 3);
        assert_eq!(euc_kr_bytes("장바구니"), 8);
        assert_eq!(euc_kr_bytes("…"), 2);
        assert_eq!(to_euc_kr_text("신발 👟 ok"), "신발 ? ok");
    }

    #[test]
    fn cuts_fall_between_characters_with_an_ellipsis() {
        assert_eq!(fit("장바구니에 담긴 상품", 10, euc_kr_bytes), "장바구니…");
        assert_eq!(fit("장바구니에 담긴 상품", 9, euc_kr_bytes), "장바구…");
        assert_eq!(fit("short", 10, chars), "short");
        assert_eq!(fit("hello world", 8, chars), "hello w…");
        assert_eq!(fit("hello world", 7, chars), "hello…");
        // a family emoji is one grapheme of several characters: kept whole or not at all
        let family = "👨‍👩‍👧";
        assert_eq!(fit(&format!("ab{family}cd"), 5, chars), "ab…");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, rng_seed: proptest::test_runner::RngSeed::Fixed(20261123), ..ProptestConfig::default() })]

        #[test]
        fn a_cut_fits_is_a_prefix_and_stays_valid_text(text in "[a-z가-힣 👍&<\"]{0,80}", max in 1usize..60) {
            let sms = to_euc_kr_text(&text);
            let cut = fit(&sms, max, euc_kr_bytes);
            prop_assert!(euc_kr_bytes(&cut) <= max);
            let kept = cut.trim_end_matches(ELLIPSIS);
            prop_assert!(sms.starts_with(kept));
            let by_chars = fit(&text, max, chars);
            prop_assert!(chars(&by_chars) <= max);
            prop_assert!(text.starts_with(by_chars.trim_end_matches(ELLIPSIS)));
        }
    }
}
