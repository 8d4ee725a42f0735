//! The Braze emulator's own rules, each checked against the documentation it quotes
//! (`tests/support/braze_liquid.rs`), with endpoints on local threads that answer as told.

use sendtime_tests::braze_liquid::{Braze, Message, Outcome, MESSAGE_EXTRAS_LIMIT};
use std::io::{Read, Write};
use std::net::TcpListener;

/// An endpoint whose n-th request gets `answers[n]` (the last one from then on): status,
/// content type, body. Its URL.
fn serving(answers: Vec<(u16, &'static str, &'static str)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let (status, content_type, body) = answers[n.min(answers.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Answer\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/block")
}

fn sent(outcome: Outcome) -> Message {
    match outcome {
        Outcome::Sent(message) => message,
        Outcome::Aborted(reason) => panic!("aborted: {reason}"),
    }
}

#[test]
fn a_text_body_is_inserted_in_place_of_the_tag_and_saves_nothing_even_with_save() {
    // GIVEN an endpoint answering HTML (not JSON)
    let url = serving(vec![(200, "text/html", "<p>Hello &amp; welcome</p>")]);
    // WHEN a template saves it and prints the variable
    let message = sent(Braze::new().send(
        &format!("before {{% connected_content {url} :save page %}} after [{{{{ page }}}}]"),
        &[],
    ));
    // THEN, as Braze documents ("If the endpoint returns text, it will be directly inserted
    // into the message in place of the connected_content tag"; "the entire Connected
    // Content response will be interpreted as text and be templated into the message, and
    // none of the variables will be saved"), the body stands at the tag and `page` is nil
    assert_eq!(message.body, "before <p>Hello &amp; welcome</p> after []");
    // AND without :save the same
    let message = sent(Braze::new().send(
        &format!("[{{% connected_content {url} %}}][{{{{ connected }}}}]"),
        &[],
    ));
    assert_eq!(message.body, "[<p>Hello &amp; welcome</p>][]");
}

#[test]
fn the_old_fetch_pattern_sends_an_empty_email_to_a_user_who_is_not_eligible() {
    // GIVEN a not-eligible `format=html` answer: 200 with an empty text body
    let url = serving(vec![(200, "text/html; charset=utf-8", "")]);
    // WHEN the pattern the *.email-fetch templates used before is sent (save the HTML,
    // abort on "")
    let old = format!(
        "{{% connected_content {url} :retry :save sendtime_html %}}\
         {{% if sendtime_html == \"\" %}}{{% abort_message(\"not eligible\") %}}{{% endif %}}\
         {{{{ sendtime_html }}}}"
    );
    let outcome = Braze::new().send(&old, &[]);
    // THEN nothing was saved, nil is not "", and an empty message goes out: why the
    // templates now fetch the JSON
    assert_eq!(sent(outcome).body, "");
}

#[test]
fn a_json_object_is_saved_with_its_status_and_inserts_nothing() {
    // GIVEN an endpoint answering a JSON object
    let url = serving(vec![(
        200,
        "application/json",
        r#"{"eligible":true,"n":2}"#,
    )]);
    // WHEN it is saved and read
    let message = sent(Braze::new().send(
        &format!("a{{% connected_content {url} :save x %}}b {{{{ x.n }}}} {{{{ x.__http_status_code__ }}}} {{{{ x.eligible }}}}"),
        &[],
    ));
    // THEN its fields and `__http_status_code__` are there, and nothing stands at the tag
    assert_eq!(message.body, "ab 2 200 true");
}

#[test]
fn a_json_array_is_saved_without_a_status_code() {
    // GIVEN an endpoint answering a JSON array
    let url = serving(vec![(200, "application/json", "[1,2,3]")]);
    // WHEN it is saved
    let message = sent(Braze::new().send(
        &format!("{{% connected_content {url} :save x %}}{{{{ x | size }}}} [{{{{ x.__http_status_code__ }}}}]"),
        &[],
    ));
    // THEN it is the array, and "If the endpoint returns an array or other type, that key
    // cannot be automatically set in the response."
    assert_eq!(message.body, "3 []");
}

#[test]
fn a_failed_call_saves_nothing_and_renders_nothing() {
    // GIVEN a 404 and a 500 with JSON bodies, and a port nobody listens on
    let not_found = serving(vec![(404, "application/json", r#"{"error":"x"}"#)]);
    let failing = serving(vec![(500, "application/json", r#"{"error":"x"}"#)]);
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        format!(
            "http://{}/block",
            listener.local_addr().expect("its address")
        )
    };
    for url in [not_found, failing, closed] {
        // WHEN a template without :retry calls it
        let mut braze = Braze::new();
        let message = sent(braze.send(
            &format!("a{{% connected_content {url} :save x %}}b[{{{{ x.error }}}}{{{{ x.__http_status_code__ }}}}]"),
            &[],
        ));
        // THEN "Braze will render an empty string in its place", the variable stays nil,
        // and the message goes out
        assert_eq!(message.body, "ab[]", "{url}");
        assert_eq!(braze.calls().len(), 1, "{url}: no retry without :retry");
    }
}

#[test]
fn a_sent_message_records_the_extras_of_its_last_render_only() {
    // GIVEN an endpoint failing once with 503, then answering
    let url = serving(vec![
        (503, "application/json", r#"{"error":"busy"}"#),
        (
            200,
            "application/json",
            r#"{"rec_id":"abc","stage":"welcome"}"#,
        ),
    ]);
    // WHEN a template with :retry records Liquid variables, and a key twice
    let mut braze = Braze::new();
    let message = sent(braze.send(
        &format!(
            "{{%- connected_content {url} :retry :save x -%}}\
             {{%- message_extras :key sendtime_rec_id :value {{{{x.rec_id}}}} -%}}\
             {{%- message_extras :key sendtime_stage :value  {{{{ x.stage }}}}  -%}}\
             {{%- message_extras :key sendtime_rec_id :value again -%}}hi"
        ),
        &[],
    ));
    // THEN the message is the second render's, the tags render nothing, the values are the
    // variables' (trimmed), the first of a key wins, and the failed render left nothing
    assert_eq!(braze.calls().len(), 2, "the call and one retry");
    assert_eq!(message.body, "hi");
    let pairs: Vec<(&str, &str)> = message
        .extras
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("sendtime_rec_id", "abc"), ("sendtime_stage", "welcome")]
    );
    assert_eq!(
        message.extras.to_json(),
        r#"{"sendtime_rec_id":"abc","sendtime_stage":"welcome"}"#
    );
}

#[test]
fn an_aborted_message_records_no_extras() {
    // GIVEN a template recording a pair, with and without an abort after it
    let recorded = "{% message_extras :key k :value v %}sent";
    let aborted = "{% message_extras :key k :value v %}{% abort_message('stop') %}";
    // WHEN each is sent
    // THEN the first carries its pair; the second is aborted, with no Send event and so no
    // extras ("Braze does not count aborted messages towards the send count [...] in
    // Currents")
    let message = sent(Braze::new().send(recorded, &[]));
    assert_eq!(message.extras.get("k"), Some("v"));
    assert_eq!(
        Braze::new().send(aborted, &[]),
        Outcome::Aborted("stop".into())
    );
}

#[test]
fn extras_past_1000_bytes_are_cut_at_the_limit() {
    // GIVEN a value of 1,200 bytes, built with Liquid and assigned before the tag
    let template =
        "{%- capture big -%}{%- for i in (1..120) -%}0123456789{%- endfor -%}{%- endcapture -%}\
                    {%- message_extras :key big :value {{big}} -%}\
                    {%- message_extras :key later :value 1 -%}ok";
    // WHEN it is sent
    let message = sent(Braze::new().send(template, &[]));
    // THEN "If your key-values exceed 1 KB, they'll truncate": 1,000 bytes kept, the later
    // pair dropped
    assert!(message.extras.truncated());
    assert_eq!(message.extras.bytes(), MESSAGE_EXTRAS_LIMIT);
    assert_eq!(message.extras.get("later"), None);
}
