//! Shared test support: a small hand-made dataset whose every value the tests know, a
//! counting store wrapper, and access to DynamoDB Local.
//!
//! DynamoDB Local is started by `scripts/test.sh` (or `scripts/dynamodb-local.sh start`),
//! which exports `SENDTIME_TEST_DYNAMODB_ENDPOINT`. Tests that need it fail, loudly, when it
//! is missing: they are never skipped.

pub mod braze_liquid;
pub mod braze_track;
pub mod events_api;
pub mod fault;
pub mod openapi;
pub mod proxy;
pub mod s3;
pub mod throttle;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sendtime_domain::{
    Cart, CartLine, Clock, CopyRecord, Discount, FixedClock, Item, ItemId, PopularList,
    PopularScope, RecList, SendScore, User, UserId,
};
use sendtime_dynamo::{DynamoConfig, DynamoStore};
use sendtime_store::{
    CopyGet, ItemsGet, PopularGet, Record, RecordsPut, StoreError, UserData, UserDataGet,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub const ENDPOINT_VAR: &str = "SENDTIME_TEST_DYNAMODB_ENDPOINT";

/// The DynamoDB Local endpoint, or a panic that says how to start it.
pub fn dynamodb_endpoint() -> String {
    std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{ENDPOINT_VAR} is not set: DynamoDB Local is needed. Run `scripts/test.sh`, \
             or `eval $(scripts/dynamodb-local.sh start)` before `cargo test`."
        )
    })
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Utc::now().timestamp_micros()
    )
}

/// A DynamoStore on DynamoDB Local with a fresh, empty table.
pub async fn fresh_dynamo_store(prefix: &str) -> DynamoStore {
    let mut config = DynamoConfig::new(unique_table(prefix));
    config.endpoint = Some(dynamodb_endpoint());
    config.region = Some("us-east-1".into());
    // DynamoDB Local on a shared CI machine can be slow; these are correctness tests.
    config.operation_timeout = std::time::Duration::from_secs(20);
    config.attempt_timeout = std::time::Duration::from_secs(10);
    config.connect_timeout = std::time::Duration::from_secs(5);
    let store = sendtime_dynamo::connect(&config).await;
    store
        .create_table_if_missing()
        .await
        .expect("create table on DynamoDB Local");
    store
}

/// The instant the fixture is built around: noon UTC of the day the tests started, fixed for
/// the run. Not a fixed date: the fixture's lists carry a real-time `ttl`, and DynamoDB Local
/// deletes items past it in the background, so a fixed date would lose them a week later.
pub fn now() -> DateTime<Utc> {
    static NOW: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(|| {
        let today = Utc::now().date_naive();
        Utc.from_utc_datetime(&today.and_hms_opt(12, 0, 0).unwrap_or_default())
    });
    *NOW
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock(now()))
}

pub fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

pub fn iid(id: &str) -> ItemId {
    ItemId::new(id)
}

fn ids(list: &[&str]) -> Vec<ItemId> {
    list.iter().map(|s| iid(s)).collect()
}

pub fn item(id: &str, category: &str, stock: u32) -> Item {
    Item {
        marks: None,
        item_id: iid(id),
        title: format!("상품 {id} / Item {id}"),
        category: category.into(),
        url: format!("https://shop.example.com/products/{id}"),
        image_url: format!("https://cdn.shop.example.com/{id}.jpg"),
        price: 12_900,
        currency: "KRW".into(),
        stock,
        rating: Some(4.5),
        review_count: 12,
        top_review: Some("배송이 빨라요".into()),
        discount: None,
        encoded: Default::default(),
    }
}

fn user(id: &str, last_active_days: i64) -> User {
    User {
        journal: None,
        user_id: uid(id),
        signed_up_at: now() - Duration::days(400),
        last_active_at: now() - Duration::days(last_active_days),
        activated: true,
        last_purchase_at: None,
        preferred_categories: vec!["shoes".into()],
        category_purchases: BTreeMap::new(),
        purchased_items: vec![],
        recent_views: vec![],
        winback_unanswered: 0,
        features_used: vec![],
        locale: None,
    }
}

fn cart(id: &str, days: i64, items: &[&str]) -> Cart {
    Cart {
        mark: None,
        user_id: uid(id),
        updated_at: now() - Duration::days(days),
        lines: items
            .iter()
            .map(|i| CartLine {
                item_id: iid(i),
                quantity: 2,
            })
            .collect(),
    }
}

/// The fixture:
/// - `alice`: live list, cart changed 3 days ago (social_proof), active.
/// - `bob`: expired list, cart 5 days ago with a low-stock item (urgency), dormant 40 days,
///   1 unanswered win-back (personal_offer on `bags`).
/// - `carol`: no list (unknown to the model), cart 8 days ago (alternatives), dormant with
///   0 unanswered (last_interest).
/// - `dave`: dormant with 3 unanswered (feedback), bought after his cart changed (purchased).
/// - `erin`: signed up 2 days ago, not activated, tried the wishlist (onboarding welcome).
/// - `fran`: signed up 6 days ago, not activated, prefers bags (onboarding incentive).
/// - `gus` 4 days in (guide), `hal` 20 days in (expired), `ivy` 2 hours in (too early):
///   none activated.
/// - items `s1..s4` shoes, `b1..b3` bags, `t1` toys; `s4` out of stock; `b2` low stock and
///   on sale; plus `k01..k60` filler (so multi-batch reads are exercised).
pub fn fixture() -> Vec<Record> {
    let mut records = Vec::new();
    let mut b2 = item("b2", "bags", 3);
    b2.discount = Some(Discount {
        pct: 15,
        ends_at: Some(now() + Duration::days(3)),
    });
    let mut catalog = vec![
        item("s1", "shoes", 10),
        item("s2", "shoes", 10),
        item("s3", "shoes", 10),
        item("s4", "shoes", 0),
        item("b1", "bags", 10),
        b2,
        item("b3", "bags", 10),
        item("t1", "toys", 10),
    ];
    catalog.extend((1..=60).map(|n| item(&format!("k{n:02}"), "filler", 5 + n)));
    records.extend(catalog.into_iter().map(Record::Item));
    records.push(Record::Popular(PopularList::new(
        PopularScope::Global,
        ids(&["t1", "s1", "b1", "b3"]),
    )));
    records.push(Record::Popular(PopularList::new(
        PopularScope::category("shoes"),
        ids(&["s2", "s4", "s3", "s1"]),
    )));
    records.push(Record::Popular(PopularList::new(
        PopularScope::category("bags"),
        ids(&["b3", "b1", "b2"]),
    )));

    records.push(Record::User(user("alice", 1)));
    records.push(Record::Recs(RecList {
        mark: None,
        user_id: uid("alice"),
        generated_at: now() - Duration::hours(6),
        expires_at: now() + Duration::days(7),
        items: ids(&["s1", "s2", "s3", "s4", "b1", "gone"]),
    }));
    records.push(Record::Cart(cart("alice", 3, &["s1", "b1"])));

    let mut bob = user("bob", 40);
    bob.winback_unanswered = 1;
    bob.category_purchases = BTreeMap::from([("bags".into(), 2)]);
    bob.purchased_items = ids(&["b1"]);
    bob.last_purchase_at = Some(now() - Duration::days(60));
    records.push(Record::User(bob));
    records.push(Record::Recs(RecList {
        mark: None,
        user_id: uid("bob"),
        generated_at: now() - Duration::days(10),
        expires_at: now() - Duration::days(3),
        items: ids(&["s1"]),
    }));
    records.push(Record::Cart(cart("bob", 5, &["b2", "s1"])));

    let mut carol = user("carol", 31);
    carol.recent_views = ids(&["s4", "s3", "b3"]);
    records.push(Record::User(carol));
    records.push(Record::Cart(cart("carol", 8, &["s1"])));

    let mut dave = user("dave", 90);
    dave.winback_unanswered = 3;
    dave.last_purchase_at = Some(now() - Duration::days(1));
    records.push(Record::User(dave));
    records.push(Record::Cart(cart("dave", 2, &["t1"])));

    records.push(Record::User(newcomer("erin", 2, &["wishlist"])));
    records.push(Record::User(newcomer("fran", 6, &[])));
    records.push(Record::User(newcomer("gus", 4, &[])));
    records.push(Record::User(newcomer("hal", 20, &[])));
    let mut ivy = newcomer("ivy", 0, &[]);
    ivy.signed_up_at = now() - Duration::hours(2);
    records.push(Record::User(ivy));
    records
}

/// When the fixture's send scores were computed: the midnight before [`now`].
pub fn scored_at() -> DateTime<Utc> {
    now() - Duration::hours(12)
}

/// A send score of `score` for `id`, computed at [`scored_at`].
pub fn send_score(id: &str, score: f64) -> Record {
    Record::Score(SendScore {
        user_id: uid(id),
        score,
        computed_at: scored_at(),
        model: "logistic-l2".into(),
    })
}

/// Send scores for the fixture's users: `alice` likely to open (0.82), `bob` unlikely
/// (0.07); every other user has none.
pub fn fixture_scores() -> Vec<Record> {
    vec![send_score("alice", 0.82), send_score("bob", 0.07)]
}

/// A user who signed up `days` ago and has not made the first key action yet.
fn newcomer(id: &str, days: i64, features_used: &[&str]) -> User {
    let mut u = user(id, 0);
    u.signed_up_at = now() - Duration::days(days) - Duration::hours(1);
    u.last_active_at = now() - Duration::hours(3);
    u.activated = false;
    u.preferred_categories = vec!["bags".into()];
    u.features_used = features_used.iter().map(|f| f.to_string()).collect();
    u
}

/// Wraps a store and counts calls to each read, optionally delaying them so concurrent
/// callers really overlap.
pub struct CountingStore<S> {
    pub inner: S,
    pub delay: std::time::Duration,
    pub user_loads: AtomicU64,
    pub item_loads: AtomicU64,
    pub popular_loads: AtomicU64,
    /// When above zero, that many user loads fail before loads succeed again.
    pub fail_user_loads: AtomicU64,
    /// When above zero, that many item loads fail before loads succeed again.
    pub fail_item_loads: AtomicU64,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S, delay: std::time::Duration) -> Self {
        Self {
            inner,
            delay,
            user_loads: AtomicU64::new(0),
            item_loads: AtomicU64::new(0),
            popular_loads: AtomicU64::new(0),
            fail_user_loads: AtomicU64::new(0),
            fail_item_loads: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
struct Injected;
impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected failure")
    }
}
impl std::error::Error for Injected {}

#[async_trait]
impl<S: UserDataGet> UserDataGet for CountingStore<S> {
    async fn user_data(&self, user_id: &UserId) -> Result<std::sync::Arc<UserData>, StoreError> {
        self.user_loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self
            .fail_user_loads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::unavailable("test", Injected));
        }
        self.inner.user_data(user_id).await
    }
}

#[async_trait]
impl<S: ItemsGet> ItemsGet for CountingStore<S> {
    async fn items(&self, ids: &[ItemId]) -> Result<sendtime_domain::Catalog, StoreError> {
        self.item_loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self
            .fail_item_loads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::unavailable("test", Injected));
        }
        self.inner.items(ids).await
    }
}

#[async_trait]
impl<S: PopularGet> PopularGet for CountingStore<S> {
    async fn popular(
        &self,
        scope: &PopularScope,
    ) -> Result<Option<std::sync::Arc<PopularList>>, StoreError> {
        self.popular_loads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.popular(scope).await
    }
}

#[async_trait]
impl<S: CopyGet> CopyGet for CountingStore<S> {
    async fn copy_records(&self) -> Result<std::sync::Arc<[CopyRecord]>, StoreError> {
        self.inner.copy_records().await
    }
}

/// Writes the fixture through the write port (both adapters load data the same way).
pub async fn load_fixture(store: &dyn RecordsPut) {
    let records = fixture();
    let report = store.put_records(&records).await.expect("load fixture");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.written, records.len());
}

/// The `sendtime` binary that `cargo test --workspace` built next to this test executable.
pub fn sendtime_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let bin = dir.join(format!("sendtime{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A `sendtime serve` child (killed when dropped), its URL, and its start-up lines up to and
/// including the events example (`# after the order`), the last one it prints.
pub struct ServeWithBanner {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Every start-up line, in order.
    pub banner: Vec<String>,
    _child: tokio::process::Child,
}

impl ServeWithBanner {
    /// Starts `sendtime serve --addr 127.0.0.1:0 <args>` and reads its start-up lines.
    pub async fn start(args: &[&str]) -> ServeWithBanner {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(sendtime_bin())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("SENDTIME_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sendtime serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                let last = line.contains("# after the order");
                banner.push(line);
                if last {
                    return true;
                }
            }
            false
        };
        let started = tokio::time::timeout(std::time::Duration::from_secs(60), read)
            .await
            .expect("sendtime serve did not start within 60 s");
        assert!(started, "sendtime serve exited: {banner:?}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base_url = banner
            .iter()
            .find_map(|l| l.strip_prefix("sendtime listening on "))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the listening line")
            .to_owned();
        ServeWithBanner {
            base_url,
            banner,
            _child: child,
        }
    }

    /// The first start-up line holding `needle`.
    pub fn line(&self, needle: &str) -> &str {
        self.banner
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {:?}", self.banner))
    }
}

/// A `sendtime serve` child process, killed when dropped.
pub struct ServeProcess {
    pub base_url: String,
    _child: tokio::process::Child,
}

impl ServeProcess {
    /// Starts `sendtime serve --addr 127.0.0.1:0 <args>` and waits for its "listening" line.
    pub async fn start(args: &[&str]) -> ServeProcess {
        let mut command = tokio::process::Command::new(sendtime_bin());
        command.arg("serve");
        Self::spawn(command, args).await
    }

    /// [`ServeProcess::start`] under `ulimit -n {open_files}`.
    pub async fn start_with_file_limit(open_files: u32, args: &[&str]) -> ServeProcess {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "ulimit -n {open_files} && exec \"$0\" serve \"$@\""
            ))
            .arg(sendtime_bin());
        Self::spawn(command, args).await
    }

    async fn spawn(mut command: tokio::process::Command, args: &[&str]) -> ServeProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env("SENDTIME_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sendtime serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let wait = async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.strip_prefix("sendtime listening on ") {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    return Some(url);
                }
            }
            None
        };
        let base_url = tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .expect("sendtime serve did not start within 60 s")
            .expect("sendtime serve exited before listening");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServeProcess {
            base_url,
            _child: child,
        }
    }
}
