//! The names of the HTTP contract, shared by the server (the router) and our own clients
//! (`campaign send`, `loadtest`): the block path and the caller-key header. Plain strings,
//! no HTTP types: written once here so the two sides cannot drift apart.

use crate::ids::UserId;
use crate::rules::BlockKind;

/// The route of every block, in the router's path syntax. The user id is a path segment
/// because Braze caches by URL.
pub const BLOCK_ROUTE: &str = "/v1/users/{user_id}/{block}";

/// The prefix of every block path, up to the user id.
pub const USERS_PREFIX: &str = "/v1/users/";

/// The header a caller sends its key in (or `Authorization: Bearer <key>`).
pub const KEY_HEADER: &str = "x-sendtime-key";

/// The path of `block` for `user`: `/v1/users/{user}/{block}`. Valid user ids need no
/// percent-encoding (letters, digits and `_ - . @ + :` only).
pub fn block_path(user: &UserId, block: BlockKind) -> String {
    format!("{USERS_PREFIX}{user}/{block}")
}

/// [`block_path`] under `base_url` (its trailing `/` ignored).
pub fn block_url(base_url: &str, user: &UserId, block: BlockKind) -> String {
    format!(
        "{}{}",
        base_url.trim_end_matches('/'),
        block_path(user, block)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_fills_the_route() {
        let user = UserId::parse("a.b@example.com").unwrap();
        let path = block_path(&user, BlockKind::Cart);
        assert_eq!(path, "/v1/users/a.b@example.com/cart");
        assert_eq!(
            BLOCK_ROUTE
                .replace("{user_id}", user.as_str())
                .replace("{block}", "cart"),
            path
        );
        assert_eq!(
            block_url("https://api.example.com/", &user, BlockKind::Onboarding),
            "https://api.example.com/v1/users/a.b@example.com/onboarding"
        );
    }
}
