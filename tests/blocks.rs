//! The block registry drives everything that lists blocks: every registered block is routed,
//! in the README's table and deployed in `template.yaml`. The onboarding block through HTTP,
//! `rec_id` attribution, and rules files read by `sendtime serve` (the Lambda side is in
//! `lambda_emulator.rs` and the lambda crate's config tests).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sendtime_api::{router, BlockService};
use sendtime_domain::{BlockKind, RulesConfig};
use sendtime_store::{CacheConfig, CachedStore, MemoryStore, Record};
use sendtime_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

fn workspace_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn registry() -> BTreeSet<String> {
    BlockKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect()
}

async fn memory_app(store: Arc<MemoryStore>, cache: &CacheConfig) -> sendtime_api::App {
    let cached = CachedStore::new(store, cache);
    router(Arc::new(
        BlockService::new(Arc::new(cached), RulesConfig::default(), clock())
            .with_answer_cache(cache),
    ))
}

async fn fixture_store() -> Arc<MemoryStore> {
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    Arc::new(memory)
}

async fn get(app: &sendtime_api::App, uri: &str) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

#[tokio::test]
async fn every_registered_block_is_routed_listed_in_the_readme_and_deployed() {
    // Routed: each answers a block of its own name.
    let app = memory_app(fixture_store().await, &CacheConfig::default()).await;
    for kind in BlockKind::ALL {
        let (status, v) = get(&app, &format!("/v1/users/alice/{kind}")).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {v}");
        assert_eq!(v["block"], kind.as_str());
    }
    // The unknown-block error lists exactly the registry.
    let (status, v) = get(&app, "/v1/users/alice/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.ends_with(&BlockKind::names()), "{message}");

    // Listed: the README's blocks table has one row per block, no more.
    let readme = workspace_file("README.md");
    let table: BTreeSet<String> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| block | stages |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(table, registry(), "README.md blocks table");

    // Deployed: one function per block (SENDTIME_BLOCK) and one route per block.
    let template = workspace_file("template.yaml");
    let deployed: Vec<String> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SENDTIME_BLOCK:"))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect();
    assert_eq!(
        deployed.iter().cloned().collect::<BTreeSet<_>>(),
        registry(),
        "template.yaml SENDTIME_BLOCK values"
    );
    assert_eq!(deployed.len(), registry().len(), "one function per block");
    let routed: BTreeSet<String> = template
        .match_indices("/v1/users/{user_id}/")
        .map(|(at, m)| {
            template[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .collect();
    assert_eq!(routed, registry(), "template.yaml routes");
}

#[test]
fn the_shipped_rules_file_is_the_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("config/rules.toml");
    let rules = sendtime_api::rules_file::load(&path).unwrap();
    assert_eq!(rules, RulesConfig::default());
}

fn item_positions(v: &Value) -> Vec<u64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn onboarding_answers_by_stage_with_its_content() {
    let app = memory_app(fixture_store().await, &CacheConfig::default()).await;

    // GIVEN erin, 2 days after sign-up, who tried the wishlist
    let (status, v) = get(&app, "/v1/users/erin/onboarding").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["block"], "onboarding");
    assert_eq!(
        (v["eligible"].clone(), v["stage"].clone()),
        (true.into(), "welcome".into())
    );
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["days"], 2);
    let features: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["price_alerts", "quick_checkout", "wishlist"]);
    for f in v["features"].as_array().unwrap() {
        for key in ["title", "description", "url"] {
            assert!(f[key].is_string(), "feature lacks {key}: {f}");
        }
    }
    assert!(v.get("guides").is_none() && v.get("benefit").is_none());
    assert_eq!(v["items"], Value::Array(vec![]));

    // fran, 6 days in: the benefit and popular bags, discounted, numbered from 1
    let (_, v) = get(&app, "/v1/users/fran/onboarding?limit=2").await;
    assert_eq!(v["stage"], "incentive");
    assert_eq!(v["benefit"]["code"], "WELCOME10");
    assert_eq!(v["benefit"]["discount_pct"], 10);
    assert_eq!(v["items"][0]["id"], "b3");
    assert_eq!(v["items"][0]["source"], "category_popular");
    assert_eq!(v["items"][0]["display_sale_price"], "₩11,610");
    assert_eq!(item_positions(&v), [1, 2]);
    assert!(v.get("features").is_none());

    // gus, 4 days in: the how-to and FAQ links
    let (_, v) = get(&app, "/v1/users/gus/onboarding").await;
    assert_eq!(
        (v["stage"].clone(), v["days"].clone()),
        ("guide".into(), 4.into())
    );
    let guides = v["guides"].as_array().unwrap();
    assert_eq!(guides.len(), 3);
    assert_eq!(guides[0]["title"], "How to place your first order");
    assert!(guides.iter().all(|g| g["url"].is_string()));
    assert!(v.get("features").is_none() && v.get("benefit").is_none());

    // not eligible: day 0 (ivy), past the window (hal), activated (alice), unknown users
    let (_, v) = get(&app, "/v1/users/ivy/onboarding").await;
    assert_eq!(
        (v["eligible"].clone(), v["reason"].clone()),
        (false.into(), "too_early".into())
    );
    let (_, v) = get(&app, "/v1/users/hal/onboarding").await;
    assert_eq!(
        (v["eligible"].clone(), v["reason"].clone()),
        (false.into(), "expired".into())
    );
    let (_, v) = get(&app, "/v1/users/alice/onboarding").await;
    assert_eq!(
        (v["eligible"].clone(), v["reason"].clone()),
        (false.into(), "activated".into())
    );
    assert_eq!(v["stage"], Value::Null);
    let (status, v) = get(&app, "/v1/users/never-seen/onboarding").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["reason"], "unknown_user");

    // limit bounds are the block's own
    let (status, v) = get(&app, "/v1/users/fran/onboarding?limit=31").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_limit");
}

#[tokio::test]
async fn rec_id_is_stable_on_the_same_data_and_changes_with_it() {
    // Caching off, so every call reads the store and a change is seen at once.
    let store = fixture_store().await;
    let no_cache = CacheConfig {
        user_ttl: std::time::Duration::ZERO,
        item_ttl: std::time::Duration::ZERO,
        popular_ttl: std::time::Duration::ZERO,
        ..CacheConfig::default()
    };
    let app = memory_app(store.clone(), &no_cache).await;
    let mut before = Vec::new();
    for kind in BlockKind::ALL {
        for user in ["alice", "bob", "carol", "erin", "fran", "never-seen"] {
            let uri = format!("/v1/users/{user}/{kind}");
            let (_, first) = get(&app, &uri).await;
            let (_, again) = get(&app, &uri).await;
            let id = first["rec_id"].as_str().unwrap().to_owned();
            assert_eq!(id.len(), 16, "{uri}: {first}");
            // HTML, text and AMP renders of one email agree
            assert_eq!(first["rec_id"], again["rec_id"], "{uri}");
            before.push((uri, id));
        }
    }
    // Different users, blocks or content never share an id.
    let distinct: BTreeSet<&String> = before.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), before.len());

    // WHEN alice's list changes THEN her recommendations get a new id; cart keeps its own
    let Some(Record::Recs(mut list)) = fixture()
        .into_iter()
        .find(|r| matches!(r, Record::Recs(l) if l.user_id.as_str() == "alice"))
    else {
        panic!("fixture has alice's list")
    };
    list.items.reverse();
    store.insert([Record::Recs(list)]);
    let (_, recs) = get(&app, "/v1/users/alice/recommendations").await;
    let old = &before
        .iter()
        .find(|(u, _)| u == "/v1/users/alice/recommendations")
        .unwrap()
        .1;
    assert_ne!(recs["rec_id"].as_str().unwrap(), old);
    let (_, cart) = get(&app, "/v1/users/alice/cart").await;
    let old_cart = &before
        .iter()
        .find(|(u, _)| u == "/v1/users/alice/cart")
        .unwrap()
        .1;
    assert_eq!(cart["rec_id"].as_str().unwrap(), old_cart);
    // AND when an item's price changes, every block showing it changes id
    let Some(Record::Item(mut s1)) = fixture()
        .into_iter()
        .find(|r| matches!(r, Record::Item(i) if i.item_id.as_str() == "s1"))
    else {
        panic!("fixture has s1")
    };
    s1.price += 1000;
    store.insert([Record::Item(s1)]);
    let (_, cart) = get(&app, "/v1/users/alice/cart").await;
    assert_ne!(cart["rec_id"].as_str().unwrap(), old_cart);
}

const AS_OF: &str = "2026-11-22T00:00:00Z";

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_table("sendtime-rules"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn stages(base_url: &str, block: &str, users: usize) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for n in 1..=users {
        let url = format!("{base_url}/v1/users/u{n:06}/{block}");
        let v: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        out.push(v["stage"].clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_file_moves_stage_boundaries_of_serve() {
    // GIVEN serve on demo data with the default rules, and with onboarding's welcome stage
    // stretched over the whole window and the cart's reminder over every age
    let rules = write_temp(
        "rules.toml",
        "[onboarding]\nguide_from_days = 30\nincentive_from_days = 31\nlast_day = 31\n\n\
         [cart]\nreminder_from_days = 0\nsocial_proof_from_days = 100\n\
         urgency_from_days = 101\nalternatives_from_days = 102\n",
    );
    let default = ServeProcess::start(&["--now", AS_OF, "--users", "200"]).await;
    let moved = ServeProcess::start(&[
        "--now",
        AS_OF,
        "--users",
        "200",
        "--rules",
        rules.to_str().unwrap(),
    ])
    .await;

    // WHEN the same users are asked THEN the stages moved as the file says
    for block in ["onboarding", "cart"] {
        let before = stages(&default.base_url, block, 200).await;
        let after = stages(&moved.base_url, block, 200).await;
        let expected = if block == "cart" {
            "reminder"
        } else {
            "welcome"
        };
        let changed = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b.is_string() && *b != *a)
            .count();
        assert!(changed > 0, "{block}: no stage moved");
        for (b, a) in before.iter().zip(&after) {
            if b.is_string() {
                assert_eq!(a, expected, "{block}: was {b}");
            }
        }
    }
}

#[test]
fn a_bad_rules_file_stops_serve_naming_the_key() {
    for (name, text, key) in [
        ("bad.toml", "[cart]\nreminder_days = 2\n", "reminder_days"),
        (
            "bad.json",
            r#"{"dormancy": {"dormant_after_days": "soon"}}"#,
            "dormancy.dormant_after_days",
        ),
        (
            "order.toml",
            "[onboarding]\nguide_from_days = 9\n",
            "onboarding.incentive_from_days",
        ),
    ] {
        let path = write_temp(name, text);
        let out = std::process::Command::new(sendtime_bin())
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--rules",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: serve started");
        assert!(stderr.contains(key), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn a_store_failure_is_counted_in_the_request_metrics() {
    use sendtime_store::metrics::{scope, RequestCounters};
    // GIVEN a store whose next user read fails
    let memory = MemoryStore::new(clock());
    load_fixture(&memory).await;
    let store = Arc::new(CountingStore::new(memory, std::time::Duration::ZERO));
    store
        .fail_user_loads
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let service = BlockService::new(store, RulesConfig::default(), clock());
    // WHEN recommendations and cart both degrade, each in its own request scope
    for (kind, eligible) in [(BlockKind::Recommendations, true), (BlockKind::Cart, false)] {
        let counters = Arc::new(RequestCounters::default());
        let answer = scope(counters.clone(), service.answer(kind, &uid("alice"), 4)).await;
        // THEN the request's log line will say one store error, and the answer is degraded:
        // popular items, or a cart not eligible for `unavailable`
        assert_eq!(counters.snapshot().store_errors, 1, "{kind}");
        let value = answer.value();
        assert_eq!(value["degraded"], true, "{kind}");
        assert_eq!(value["degraded_reason"], "unavailable", "{kind}");
        assert_eq!(value["eligible"], eligible, "{kind}");
        if !eligible {
            assert_eq!(value["reason"], "unavailable", "{kind}");
        }
    }
}
