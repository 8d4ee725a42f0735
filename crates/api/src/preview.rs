//! `GET /preview?user_id=…[&locale=ko|en]`: every block for one user as each channel would
//! send it, on one page, for a marketer to check before a send. Everything from data is
//! escaped by the renderers (and here), and the page's Content-Security-Policy allows no
//! script at all. `sendtime serve` offers it (`--no-preview` turns it off); the Lambda
//! functions never do; with keys configured it asks for one like every block route.

use crate::service::BlockService;
use sendtime_domain::{BlockKind, UserId};
use sendtime_render::text::escape_html;
use sendtime_render::{channel, BlockView, CopyBook, Locale};
use std::fmt::Write;

/// The page without a user: a form asking for one.
pub const ASK_FOR_A_USER: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sendtime preview</title></head>\
<body style=\"font-family:Arial,Helvetica,sans-serif;margin:24px\"><h1>sendtime preview</h1>\
<form method=\"get\" action=\"/preview\"><label>user id <input name=\"user_id\" required></label> \
<select name=\"locale\"><option value=\"\">profile language</option><option value=\"ko\">한국어</option><option value=\"en\">English</option></select> \
<button type=\"submit\">Preview</button></form></body></html>\n";

/// The page's Content-Security-Policy: no script, no frames, no forms; images from the web
/// (item images), inline styles (email HTML is inline-styled).
pub const CSP: &str = "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The preview page of `user` (`locale`: asked for, else each block's profile language).
pub async fn page(
    service: &BlockService,
    user: &UserId,
    locale: Option<Locale>,
    default: Locale,
) -> String {
    let book = service.copy_book().await;
    let mut h = String::with_capacity(64 * 1024);
    let user_html = escape_html(user.as_str());
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>sendtime preview: {user_html}</title>\n\
         <style>body{{font-family:Arial,Helvetica,sans-serif;margin:24px;background:#f4f4f6;color:#222}}\
         section{{background:#fff;border-radius:8px;padding:16px 20px;margin:0 0 24px}}\
         .channels{{display:grid;grid-template-columns:minmax(320px,620px) 1fr;gap:16px}}\
         .card{{border:1px solid #ddd;border-radius:8px;padding:10px 12px;margin:0 0 10px;background:#fafafa}}\
         .card h4{{margin:0 0 6px;font-size:12px;color:#666;text-transform:uppercase}}\
         pre{{white-space:pre-wrap;margin:0;font-family:inherit}} .meta{{color:#666;font-size:13px}}\
         .no{{color:#b00020}}</style></head><body>\n<h1>sendtime preview: {user_html}</h1>\n\
         <p class=\"meta\">Every block as each channel would send it{}. \
         <a href=\"?user_id={user_html}&amp;locale=ko\">한국어</a> · <a href=\"?user_id={user_html}&amp;locale=en\">English</a></p>\n",
        locale.unwrap_or(default),
        locale.map(|l| format!(" (locale {l})")).unwrap_or_default(),
    );
    for kind in BlockKind::ALL {
        let limit = kind.rule().limits(service.rules()).default_limit;
        let answer = service.answer(kind, user, limit).await;
        section(&mut h, kind, &answer.json, &book, locale, default);
    }
    h.push_str("</body></html>\n");
    h
}

fn section(
    h: &mut String,
    kind: BlockKind,
    json: &[u8],
    book: &CopyBook,
    locale: Option<Locale>,
    default: Locale,
) {
    let view = BlockView::from_json(json).unwrap_or_default();
    let _ = write!(
        h,
        "<section id=\"block-{kind}\" data-block=\"{kind}\">\n<h2>{kind}</h2>\n"
    );
    let mut meta = match (&view.stage, &view.reason) {
        (Some(stage), _) => format!("stage <b>{}</b>", escape_html(stage)),
        (None, Some(reason)) => format!(
            "<span class=\"no\">not eligible: <b>{}</b> (the template aborts)</span>",
            escape_html(reason)
        ),
        _ => String::new(),
    };
    if view.degraded {
        let _ = write!(
            meta,
            " · degraded ({})",
            escape_html(view.degraded_reason.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"meta\">{meta} · rec_id {}</p>",
        escape_html(&view.rec_id)
    );
    let request = |name| sendtime_render::RenderRequest {
        format: sendtime_render::Format::Json,
        channel: channel(name),
        locale,
        default_locale: default,
    };
    let locale = sendtime_render::locale_of(&view, &request("email"));
    let message_of = |name: &str| {
        sendtime_render::compose(&view, book, name, locale)
            .and_then(|m| channel(name).map(|c| (c, m)))
    };
    if !view.eligible {
        h.push_str("</section>\n");
        return;
    }
    h.push_str("<div class=\"channels\">\n<div>\n");
    if let Some((email, m)) = message_of("email") {
        let _ = write!(
            h,
            "<div class=\"card\" data-channel=\"email\"><h4>email · subject: {}</h4>\n{}\n</div>\n",
            escape_html(&m.title),
            email.html(&m)
        );
    }
    h.push_str("</div>\n<div>\n");
    for name in ["push", "sms", "kakao"] {
        let Some((renderer, m)) = message_of(name) else {
            continue;
        };
        let value = renderer.json(&m);
        let head = match name {
            "push" => format!(
                "push · {}",
                escape_html(value["title"].as_str().unwrap_or_default())
            ),
            "sms" => format!(
                "{} · {} bytes (EUC-KR)",
                value["kind"].as_str().unwrap_or_default(),
                value["bytes"]
            ),
            _ => format!(
                "kakaotalk · button: {}",
                escape_html(value["buttons"][0]["name"].as_str().unwrap_or("-"))
            ),
        };
        let _ = writeln!(
            h,
            "<div class=\"card\" data-channel=\"{name}\"><h4>{head}</h4><pre>{}</pre></div>",
            escape_html(&renderer.text(&m))
        );
    }
    if let Some((email, m)) = message_of("email") {
        let _ = writeln!(h, "<div class=\"card\" data-channel=\"email-text\"><h4>email · text part</h4><pre>{}</pre></div>", escape_html(&email.text(&m)));
    }
    h.push_str("</div>\n</div>\n</section>\n");
}
