//! One store contract, two adapters: every case below runs against the embedded
//! `MemoryStore` and against `DynamoStore` on a real DynamoDB Local, with the same assertions.

use sendtime_domain::{CopyRecord, PopularScope, UserId};
use sendtime_store::{BlockStore, Record, RecordsPut};
use sendtime_tests::*;

/// The cases, each generic over the adapter.
mod cases {
    use super::*;

    pub async fn known_user_reads_profile_list_and_cart<S: BlockStore>(store: &S) {
        // GIVEN the fixture WHEN alice is read THEN all three records come back intact
        let data = store.user_data(&uid("alice")).await.unwrap();
        let expected = fixture();
        let find = |f: &dyn Fn(&Record) -> bool| expected.iter().find(|r| f(r)).cloned();
        assert_eq!(
            data.profile.clone().map(Record::User),
            find(&|r| matches!(r, Record::User(u) if u.user_id.as_str() == "alice"))
        );
        assert_eq!(
            data.recs.clone().map(Record::Recs),
            find(&|r| matches!(r, Record::Recs(l) if l.user_id.as_str() == "alice"))
        );
        assert_eq!(
            data.cart.clone().map(Record::Cart),
            find(&|r| matches!(r, Record::Cart(c) if c.user_id.as_str() == "alice"))
        );
    }

    pub async fn unknown_user_is_empty_not_an_error<S: BlockStore>(store: &S) {
        let data = store.user_data(&uid("nobody-here")).await.unwrap();
        assert_eq!(data, Default::default());
    }

    pub async fn expired_lists_are_filtered_at_read_time<S: BlockStore>(store: &S) {
        let data = store.user_data(&uid("bob")).await.unwrap();
        assert!(data.profile.is_some());
        assert!(data.cart.is_some());
        assert_eq!(data.recs, None, "bob's list expired 3 days ago");
    }

    pub async fn users_without_a_list_have_none<S: BlockStore>(store: &S) {
        let data = store.user_data(&uid("carol")).await.unwrap();
        assert!(data.profile.is_some());
        assert_eq!(data.recs, None);
    }

    pub async fn items_returns_known_ids_and_omits_unknown<S: BlockStore>(store: &S) {
        let found = store
            .items(&[iid("s1"), iid("nope"), iid("b2"), iid("s1")])
            .await
            .unwrap();
        let mut keys: Vec<&str> = found.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["b2", "s1"]);
        let b2 = &found[&iid("b2")];
        assert_eq!(b2.stock, 3);
        assert_eq!(b2.discount.as_ref().map(|d| d.pct), Some(15));
        assert_eq!(b2.title, "상품 b2 / Item b2");
        assert_eq!(b2.rating, Some(4.5));
    }

    pub async fn items_reads_more_than_one_batch<S: BlockStore>(store: &S) {
        // 60 filler + 8 named + 40 unknown = 108 ids: more than one BatchGetItem.
        let mut ids: Vec<_> = (1..=60).map(|n| iid(&format!("k{n:02}"))).collect();
        ids.extend(["s1", "s2", "s3", "s4", "b1", "b2", "b3", "t1"].map(iid));
        ids.extend((0..40).map(|n| iid(&format!("missing{n}"))));
        let found = store.items(&ids).await.unwrap();
        assert_eq!(found.len(), 68);
        assert_eq!(found[&iid("k60")].stock, 65);
    }

    pub async fn popular_lists_by_scope<S: BlockStore>(store: &S) {
        let global = store.popular(&PopularScope::Global).await.unwrap().unwrap();
        assert_eq!(global.items, [iid("t1"), iid("s1"), iid("b1"), iid("b3")]);
        let bags = store
            .popular(&PopularScope::category("bags"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bags.scope, PopularScope::category("bags"));
        assert_eq!(bags.items.len(), 3);
        assert_eq!(
            store
                .popular(&PopularScope::category("없는 카테고리"))
                .await
                .unwrap(),
            None
        );
    }

    pub async fn writes_overwrite_by_key_so_reloads_are_idempotent<S: BlockStore + RecordsPut>(
        store: &S,
    ) {
        let mut records = fixture();
        load_fixture(store).await; // a second full load changes nothing
        let Some(Record::Item(s1)) = records
            .iter_mut()
            .find(|r| matches!(r, Record::Item(i) if i.item_id.as_str() == "s1"))
        else {
            panic!("fixture has s1")
        };
        s1.stock = 99;
        let changed = Record::Item(s1.clone());
        let report = store
            .put_records(&[changed.clone(), changed])
            .await
            .unwrap();
        assert_eq!(report.written, 2);
        assert!(report.failed.is_empty());
        let found = store.items(&[iid("s1")]).await.unwrap();
        assert_eq!(found[&iid("s1")].stock, 99);
        let again = store.user_data(&uid("alice")).await.unwrap();
        assert!(again.recs.is_some() && again.cart.is_some());
    }

    pub async fn onboarding_fields_round_trip<S: BlockStore>(store: &S) {
        // GIVEN erin, a newcomer WHEN read THEN what onboarding reads comes back intact
        let erin = store
            .user_data(&uid("erin"))
            .await
            .unwrap()
            .profile
            .clone()
            .unwrap();
        assert!(!erin.activated);
        assert_eq!(erin.features_used, ["wishlist"]);
        assert_eq!(erin.preferred_categories, ["bags"]);
        let expected = fixture().into_iter().find_map(|r| match r {
            Record::User(u) if u.user_id.as_str() == "erin" => Some(u),
            _ => None,
        });
        assert_eq!(Some(erin), expected);
        // an empty list comes back empty (not absent, not an error)
        let fran = store
            .user_data(&uid("fran"))
            .await
            .unwrap()
            .profile
            .clone()
            .unwrap();
        assert!(fran.features_used.is_empty());
    }

    pub async fn copy_records_round_trip_and_overwrite_by_slot_channel_and_locale<
        S: BlockStore + RecordsPut,
    >(
        store: &S,
    ) {
        let copy = |slot: &str, channel: &str, locale: &str, body: &str| CopyRecord {
            slot: slot.into(),
            channel: channel.into(),
            locale: locale.into(),
            title: None,
            body: Some(body.into()),
            cta: Some("장바구니 \"보기\" & <b>".into()),
            cta_url: None,
            updated_at: Some(now()),
        };
        assert!(
            store.copy_records().await.unwrap().is_empty(),
            "no copy yet"
        );
        let first = [
            copy("cart.reminder", "any", "ko", "{item} 잊지 마세요"),
            copy("cart.reminder", "sms", "ko", "SMS {item}"),
            copy("cart.reminder", "any", "en", "Don't forget {item}"),
        ];
        let records: Vec<Record> = first.iter().cloned().map(Record::Copy).collect();
        assert_eq!(store.put_records(&records).await.unwrap().written, 3);
        let replaced = copy("cart.reminder", "sms", "ko", "바뀐 문구 {item}");
        store
            .put_records(&[Record::Copy(replaced.clone())])
            .await
            .unwrap();
        let mut read: Vec<CopyRecord> = store.copy_records().await.unwrap().to_vec();
        read.sort_by_key(|r| r.key());
        let mut expected = vec![first[0].clone(), first[2].clone(), replaced];
        expected.sort_by_key(|r| r.key());
        assert_eq!(read, expected);
    }

    pub async fn send_scores_round_trip_next_to_the_profile_and_a_new_one_replaces_the_old<
        S: BlockStore + RecordsPut,
    >(
        store: &S,
    ) {
        // GIVEN the fixture, where nobody has a score
        let before = store.user_data(&uid("alice")).await.unwrap();
        assert_eq!(before.score, None);
        // WHEN alice's score is put
        let first = send_score("alice", 0.4132);
        assert_eq!(
            store
                .put_records(std::slice::from_ref(&first))
                .await
                .unwrap()
                .written,
            1
        );
        // THEN it is read with her other records, exactly, and they are unchanged
        let data = store.user_data(&uid("alice")).await.unwrap();
        assert_eq!(data.score.clone().map(Record::Score), Some(first));
        assert_eq!(
            (&data.profile, &data.recs, &data.cart),
            (&before.profile, &before.recs, &before.cart)
        );
        // WHEN a newer score is put THEN it replaces the old one: one score per user, as put
        let Record::Score(mut newer) = send_score("alice", 0.1 + 0.2) else {
            unreachable!()
        };
        newer.computed_at += chrono::Duration::days(7);
        newer.model = "logistic-l2-v2".into();
        store
            .put_records(&[Record::Score(newer.clone())])
            .await
            .unwrap();
        let data = store.user_data(&uid("alice")).await.unwrap();
        assert_eq!(data.score.as_ref(), Some(&newer));
        assert_eq!(data.score.as_ref().map(|s| s.score), Some(0.1 + 0.2));
        // AND a score alone (a user with no profile yet) is read as just that
        store
            .put_records(&[send_score("zoe-scored-only", 0.5)])
            .await
            .unwrap();
        let zoe = store.user_data(&uid("zoe-scored-only")).await.unwrap();
        assert_eq!(zoe.score.as_ref().map(|s| s.score), Some(0.5));
        assert_eq!((&zoe.profile, &zoe.recs, &zoe.cart), (&None, &None, &None));
        // AND other users still have none
        assert_eq!(store.user_data(&uid("bob")).await.unwrap().score, None);
    }

    pub async fn user_ids_are_exact_keys<S: BlockStore>(store: &S) {
        // Ids that differ only in case or by a prefix are different users.
        for id in ["Alice", "alic", "alice2"] {
            let data = store.user_data(&UserId::parse(id).unwrap()).await.unwrap();
            assert_eq!(data, Default::default(), "{id}");
        }
    }
}

async fn memory() -> sendtime_store::MemoryStore {
    let store = sendtime_store::MemoryStore::new(clock());
    load_fixture(&store).await;
    store
}

async fn dynamodb_local() -> sendtime_dynamo::DynamoStore {
    let store = fresh_dynamo_store("contract").await.with_clock(clock());
    load_fixture(&store).await;
    store
}

macro_rules! contract_for {
    ($adapter:ident) => {
        mod $adapter {
            use super::cases;

            #[tokio::test]
            async fn known_user_reads_profile_list_and_cart() {
                cases::known_user_reads_profile_list_and_cart(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn unknown_user_is_empty_not_an_error() {
                cases::unknown_user_is_empty_not_an_error(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn expired_lists_are_filtered_at_read_time() {
                cases::expired_lists_are_filtered_at_read_time(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn users_without_a_list_have_none() {
                cases::users_without_a_list_have_none(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn items_returns_known_ids_and_omits_unknown() {
                cases::items_returns_known_ids_and_omits_unknown(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn items_reads_more_than_one_batch() {
                cases::items_reads_more_than_one_batch(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn popular_lists_by_scope() {
                cases::popular_lists_by_scope(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn writes_overwrite_by_key_so_reloads_are_idempotent() {
                cases::writes_overwrite_by_key_so_reloads_are_idempotent(&super::$adapter().await)
                    .await
            }
            #[tokio::test]
            async fn onboarding_fields_round_trip() {
                cases::onboarding_fields_round_trip(&super::$adapter().await).await
            }
            #[tokio::test]
            async fn copy_records_round_trip_and_overwrite_by_slot_channel_and_locale() {
                cases::copy_records_round_trip_and_overwrite_by_slot_channel_and_locale(
                    &super::$adapter().await,
                )
                .await
            }
            #[tokio::test]
            async fn send_scores_round_trip_next_to_the_profile_and_a_new_one_replaces_the_old() {
                cases::send_scores_round_trip_next_to_the_profile_and_a_new_one_replaces_the_old(
                    &super::$adapter().await,
                )
                .await
            }
            #[tokio::test]
            async fn user_ids_are_exact_keys() {
                cases::user_ids_are_exact_keys(&super::$adapter().await).await
            }
        }
    };
}

contract_for!(memory);
contract_for!(dynamodb_local);
