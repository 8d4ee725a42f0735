//! Every renderer on blocks whose data tries to break them: quotes, ampersands, a script
//! tag, Korean, emoji, a `javascript:` link, titles too long for any channel.

use super::*;
use serde_json::{json, Value};

const EVIL: &str = "\"Best\" shoes & <script>alert(1)</script> 초경량 러닝화 👟";

fn cart_block(stage: &str, extra: Value, items: Value) -> Vec<u8> {
    let mut block = json!({
        "rec_id": "00000000000000aa", "user_id": "u1", "block": "cart", "eligible": true,
        "reason": null, "stage": stage, "source": "cart", "degraded": false,
        "degraded_reason": null, "locale": "ko", "days": 5, "items": items,
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut block, extra) {
        b.extend(e);
    }
    serde_json::to_vec(&block).unwrap()
}

fn evil_item() -> Value {
    json!({
        "id": "i1", "title": EVIL, "category": "shoes",
        "url": "https://shop.example.com/p/1?a=1&b=\"2\"", "image_url": "javascript:alert(1)",
        "price": 89000, "currency": "KRW", "display_price": "₩89,000", "source": "cart",
        "position": 1, "quantity": 1, "stock": 3, "low_stock": true, "discount_pct": 15,
        "sale_price": 75650, "display_sale_price": "₩75,650"
    })
}

fn request(format: Format, channel: &str, locale: Option<Locale>) -> RenderRequest {
    RenderRequest {
        format,
        channel: channels::channel(channel),
        locale,
        default_locale: Locale::En,
    }
}

fn html(json: &[u8], locale: Option<Locale>) -> String {
    match render(
        json,
        &CopyBook::default(),
        &request(Format::Html, "email", locale),
    )
    .unwrap()
    {
        Rendered::Html(h) => h,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_value_is_escaped_in_the_email_fragment_and_no_script_gets_through() {
    let block = cart_block(
        "urgency",
        json!({"urgency": "low_stock"}),
        json!([evil_item()]),
    );
    let h = html(&block, None);
    assert!(!h.contains("<script"), "{h}");
    assert!(!h.contains("javascript:"), "{h}");
    assert!(
        h.contains(
            "&quot;Best&quot; shoes &amp; &lt;script&gt;alert(1)&lt;/script&gt; 초경량 러닝화 👟"
        ),
        "{h}"
    );
    assert!(
        h.contains("href=\"https://shop.example.com/p/1?a=1&amp;b=&quot;2&quot;\""),
        "{h}"
    );
    // every attribute value is quoted and no data breaks out of one
    for tag in h.split('<').skip(1) {
        let quotes = tag.split('>').next().unwrap().matches('"').count();
        assert_eq!(quotes % 2, 0, "<{tag}");
    }
    // Korean copy and money
    assert!(h.contains("품절 임박"), "{h}");
    assert!(h.contains("75,650원") && h.contains("89,000원"), "{h}");
    assert!(h.contains("3개 남음"), "{h}");
}

#[test]
fn the_email_fragment_is_a_width_limited_table_with_alt_text() {
    let mut item = evil_item();
    item["image_url"] = json!("https://img.example.com/1.jpg");
    let block = cart_block("reminder", json!({}), json!([item]));
    let h = html(&block, Some(Locale::En));
    assert!(h.starts_with("<table role=\"presentation\""), "{h}");
    assert!(h.contains("max-width:600px"), "{h}");
    assert!(h.contains("<img src=\"https://img.example.com/1.jpg\" width=\"120\" alt=\"&quot;Best&quot; shoes &amp; &lt;script&gt;"), "{h}");
    assert!(h.contains("You left something in your cart"), "{h}");
    assert!(h.contains("₩75,650"), "{h}");
    assert_eq!(h.matches("<table").count(), h.matches("</table>").count());
    assert_eq!(
        h.matches("<tr>").count() + h.matches("<tr ").count(),
        h.matches("</tr>").count()
    );
}

#[test]
fn locales_write_their_own_copy_and_money() {
    let block = cart_block(
        "urgency",
        json!({"urgency": "discount"}),
        json!([{
            "id": "i1", "title": "러닝화", "url": "https://x.example/1", "image_url": "", "price": 12900,
            "currency": "KRW", "discount_pct": 10, "sale_price": 11610
        }]),
    );
    let ko = render(
        &block,
        &CopyBook::default(),
        &request(Format::Text, "push", None),
    )
    .unwrap();
    assert_eq!(
        ko,
        Rendered::Text("러닝화, 지금 10% 할인된 11,610원이에요.".into())
    );
    let en = render(
        &block,
        &CopyBook::default(),
        &request(Format::Text, "push", Some(Locale::En)),
    )
    .unwrap();
    assert_eq!(en, Rendered::Text("러닝화 is now ₩11,610, 10% off.".into()));
    let usd = cart_block(
        "urgency",
        json!({"urgency": "discount", "locale": "en-US"}),
        json!([{
            "id": "i1", "title": "Shoes", "url": "https://x.example/1", "price": 1290, "currency": "USD",
            "discount_pct": 10, "sale_price": 1161
        }]),
    );
    let Rendered::Json(j) = render(
        &usd,
        &CopyBook::default(),
        &request(Format::Json, "push", None),
    )
    .unwrap() else {
        panic!()
    };
    let v: Value = serde_json::from_slice(&j).unwrap();
    assert_eq!(v["message"]["title"], "Price drop: $11.61");
    assert_eq!(v["message"]["body"], "Shoes is now $11.61, 10% off.");
    assert_eq!(v["message"]["locale"], "en");
    assert_eq!(v["stage"], "urgency", "the block's own fields stay");
}

#[test]
fn sms_is_measured_in_euc_kr_bytes_and_becomes_an_lms_when_longer() {
    let short = cart_block(
        "reminder",
        json!({}),
        json!([{ "id": "i1", "title": "양말", "url": "https://x.kr/1", "price": 3000, "currency": "KRW" }]),
    );
    let book = CopyBook::default();
    let Rendered::Json(j) = render(&short, &book, &request(Format::Json, "sms", None)).unwrap()
    else {
        panic!()
    };
    let m: Value = serde_json::from_slice::<Value>(&j).unwrap()["message"].clone();
    assert_eq!(m["kind"], "sms", "{m}");
    assert!(m["bytes"].as_u64().unwrap() <= 90);
    assert_eq!(
        text::euc_kr_bytes(m["text"].as_str().unwrap()),
        m["bytes"].as_u64().unwrap() as usize
    );

    let long_title = format!("{} {}", EVIL, "아주 긴 상품 이름 ".repeat(300));
    let items: Vec<Value> = (0..30).map(|n| json!({ "id": format!("i{n}"), "title": long_title, "url": "https://x.kr/1", "price": 3000, "currency": "KRW" })).collect();
    let long = cart_block("reminder", json!({}), Value::Array(items));
    let Rendered::Json(j) = render(&long, &book, &request(Format::Json, "sms", None)).unwrap()
    else {
        panic!()
    };
    let m: Value = serde_json::from_slice::<Value>(&j).unwrap()["message"].clone();
    assert_eq!(m["kind"], "lms");
    let text = m["text"].as_str().unwrap();
    assert!(
        text::euc_kr_bytes(text) <= 2000,
        "{}",
        text::euc_kr_bytes(text)
    );
    assert!(
        text.contains('…') && text.ends_with("장바구니 보기 https://shop.example.com/cart"),
        "{text}"
    );
    assert!(!text.contains('👟'), "emoji replaced: {text}");
    assert!(text::euc_kr_bytes(m["subject"].as_str().unwrap()) <= 40);
}

#[test]
fn push_and_kakao_stay_within_their_limits() {
    let long = "가".repeat(2000);
    let block = cart_block(
        "reminder",
        json!({}),
        json!([{ "id": "i1", "title": long, "url": "https://x.kr/1", "price": 3000, "currency": "KRW" }]),
    );
    let Rendered::Json(j) = render(
        &block,
        &CopyBook::default(),
        &request(Format::Json, "push", None),
    )
    .unwrap() else {
        panic!()
    };
    let m = serde_json::from_slice::<Value>(&j).unwrap()["message"].clone();
    assert!(m["title"].as_str().unwrap().chars().count() <= channels::push::TITLE_CHARS);
    let body = m["body"].as_str().unwrap();
    assert_eq!(body.chars().count(), channels::push::BODY_CHARS);
    assert!(body.ends_with('…'));
    let Rendered::Json(j) = render(
        &block,
        &CopyBook::default(),
        &request(Format::Json, "kakao", None),
    )
    .unwrap() else {
        panic!()
    };
    let m = serde_json::from_slice::<Value>(&j).unwrap()["message"].clone();
    assert_eq!(
        m["text"].as_str().unwrap().chars().count(),
        channels::kakao::TEXT_CHARS
    );
    assert_eq!(m["buttons"][0]["name"], "장바구니 보기");
    assert_eq!(m["buttons"][0]["url"], "https://shop.example.com/cart");
}

#[test]
fn not_eligible_renders_nothing_and_json_says_null() {
    let block = serde_json::to_vec(&json!({"rec_id": "1", "user_id": "u1", "block": "cart", "eligible": false, "reason": "cart_empty", "stage": null, "items": []})).unwrap();
    assert_eq!(
        render(
            &block,
            &CopyBook::default(),
            &request(Format::Html, "email", None)
        )
        .unwrap(),
        Rendered::Nothing
    );
    let Rendered::Json(j) = render(
        &block,
        &CopyBook::default(),
        &request(Format::Json, "sms", None),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&j).unwrap()["message"],
        Value::Null
    );
}

#[test]
fn unrated_social_proof_and_offers_without_a_category_have_their_own_words() {
    let unrated = cart_block(
        "social_proof",
        json!({}),
        json!([{ "id": "i1", "title": "양말", "url": "https://x.kr/1", "price": 3000, "currency": "KRW", "rating": null, "review_count": 0, "review_snippet": null }]),
    );
    let Rendered::Text(t) = render(
        &unrated,
        &CopyBook::default(),
        &request(Format::Text, "email", Some(Locale::En)),
    )
    .unwrap() else {
        panic!()
    };
    assert!(
        t.starts_with("Still in your cart\n\n양말 is still in your cart."),
        "{t}"
    );
    assert!(!t.contains("rated") && !t.contains(" 0 "), "{t}");
    let offer = serde_json::to_vec(&json!({"rec_id": "1", "user_id": "u1", "block": "dormancy", "eligible": true, "stage": "personal_offer", "offer": {"category": null, "discount_pct": 15}, "items": []})).unwrap();
    let Rendered::Text(t) = render(
        &offer,
        &CopyBook::default(),
        &request(Format::Text, "push", Some(Locale::En)),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(t, "Welcome back: we saved you an offer.");
    let Rendered::Json(j) = render(
        &offer,
        &CopyBook::default(),
        &request(Format::Json, "push", Some(Locale::En)),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        serde_json::from_slice::<Value>(&j).unwrap()["message"]["title"],
        "15% off, just for you"
    );
}

#[test]
fn a_copy_record_changes_the_words() {
    let block = cart_block(
        "reminder",
        json!({}),
        json!([{ "id": "i1", "title": "양말", "url": "https://x.kr/1", "price": 3000, "currency": "KRW" }]),
    );
    let record = sendtime_domain::CopyRecord {
        slot: "cart.reminder".into(),
        channel: "push".into(),
        locale: "ko".into(),
        title: None,
        body: Some("{item} {price} 그대로 있어요!".into()),
        cta: None,
        cta_url: None,
        updated_at: None,
    };
    let (book, rejected) = CopyBook::new(&[record]);
    assert!(rejected.is_empty());
    assert_eq!(
        render(&block, &book, &request(Format::Text, "push", None)).unwrap(),
        Rendered::Text("양말 3,000원 그대로 있어요!".into())
    );
    // other channels keep the default
    let Rendered::Text(t) = render(&block, &book, &request(Format::Text, "kakao", None)).unwrap()
    else {
        panic!()
    };
    assert!(t.contains("양말, 아직 기다리고 있어요."), "{t}");
}

#[test]
fn every_channel_has_an_html_view_and_its_text_is_escaped() {
    let block = cart_block("reminder", json!({}), json!([evil_item()]));
    for name in ["push", "sms", "kakao"] {
        let Rendered::Html(h) = render(
            &block,
            &CopyBook::default(),
            &request(Format::Html, name, None),
        )
        .unwrap() else {
            panic!("{name}")
        };
        assert!(
            h.starts_with("<p>") && !h.contains("<script"),
            "{name}: {h}"
        );
    }
    let Rendered::Html(h) = render(
        &block,
        &CopyBook::default(),
        &request(Format::Html, "kakao", None),
    )
    .unwrap() else {
        panic!()
    };
    assert!(
        h.contains("&lt;script&gt;") && h.matches("<p>").count() == 3,
        "{h}"
    );
}
