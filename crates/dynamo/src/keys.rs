//! The single-table key design. Everything about one user shares a partition, so a block
//! needs one `Query`; catalog items and popular lists have partitions of their own.
//!
//! | record  | pk                          | sk        |
//! |---------|-----------------------------|-----------|
//! | user    | `USER#<user_id>`            | `PROFILE` |
//! | recs    | `USER#<user_id>`            | `RECS`    |
//! | cart    | `USER#<user_id>`            | `CART`    |
//! | score   | `USER#<user_id>`            | `SCORE`   |
//! | item    | `ITEM#<item_id>`            | `ITEM`    |
//! | popular | `POPULAR#GLOBAL` or `POPULAR#CATEGORY#<name>` | `POPULAR` |
//! | copy    | `COPY`                      | `<slot>#<channel>#<locale>` |

use sendtime_domain::{ItemId, PopularScope, UserId};
use sendtime_store::Record;

/// Partition key attribute: `USER#…`, `ITEM#…` or `POPULAR#…` (see the table above).
pub const PK: &str = "pk";
/// Sort key attribute: one of the `SK_*` values.
pub const SK: &str = "sk";
/// Epoch seconds after which DynamoDB's TTL may delete the record (recommendation lists).
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Attribute naming the record type (`user`, `item`, `recs`, `cart`, `popular`) on every item.
pub const KIND: &str = "kind";

/// Revision of a row ingest wrote, one more per write: what its conditional write checks
/// (rows written by `data load` have none).
pub const REV: &str = "rev";

/// Sort key of a user's profile.
pub const SK_PROFILE: &str = "PROFILE";
/// Sort key of a user's recommendation list.
pub const SK_RECS: &str = "RECS";
/// Sort key of a user's cart.
pub const SK_CART: &str = "CART";
/// Sort key of a user's send-worthiness score.
pub const SK_SCORE: &str = "SCORE";
/// Sort key of a catalog item.
pub const SK_ITEM: &str = "ITEM";
/// Sort key of a popular list.
pub const SK_POPULAR: &str = "POPULAR";

/// Partition key of every copy record (a few dozen: one `Query` reads them all).
pub const COPY_PK: &str = "COPY";

/// Partition key of everything stored for one user: `USER#<user_id>`.
pub fn user_pk(id: &UserId) -> String {
    format!("USER#{id}")
}

/// Partition key of a catalog item: `ITEM#<item_id>`.
pub fn item_pk(id: &ItemId) -> String {
    format!("ITEM#{id}")
}

/// Partition key of a popular list: `POPULAR#GLOBAL` or `POPULAR#CATEGORY#<name>`.
pub fn popular_pk(scope: &PopularScope) -> String {
    match scope {
        PopularScope::Global => "POPULAR#GLOBAL".to_owned(),
        PopularScope::Category(c) => format!("POPULAR#CATEGORY#{c}"),
    }
}

/// The (pk, sk) a record is stored under.
pub fn record_key(record: &Record) -> (String, String) {
    let (pk, sk) = match record {
        Record::User(u) => (user_pk(&u.user_id), SK_PROFILE),
        Record::Recs(r) => (user_pk(&r.user_id), SK_RECS),
        Record::Cart(c) => (user_pk(&c.user_id), SK_CART),
        Record::Score(s) => (user_pk(&s.user_id), SK_SCORE),
        Record::Item(i) => (item_pk(&i.item_id), SK_ITEM),
        Record::Popular(p) => (popular_pk(&p.scope), SK_POPULAR),
        Record::Copy(c) => {
            let sk = format!("{}#{}#{}", c.slot, c.channel, c.locale);
            return (COPY_PK.to_owned(), sk);
        }
    };
    (pk, sk.to_owned())
}
