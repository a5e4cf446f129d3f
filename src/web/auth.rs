//! HTTP basic auth against the web config's bcrypt hashes, with a cache of
//! successful checks so a scrape every few seconds does not pay bcrypt.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use aws_lc_rs::digest;
use base64::Engine;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Most successful checks remembered; beyond that an arbitrary one is dropped.
const CACHE_SIZE: usize = 100;

/// A bcrypt hash (cost 10) of a random password nobody knows, checked for
/// unknown users so that their response time matches a known user's.
const DECOY_HASH: &str = "$2y$10$5GVX6iVQ3MjfUeOJxxJ/ZOMM8qxIyNf4r/ehE8J6ZVGNivWzdcXrO";

/// Checks `Authorization` headers. One per server, shared by all connections
/// (the cache key includes the stored hash, so config reloads are safe).
pub(crate) struct BasicAuth {
    /// SHA-256 of (user, stored hash, offered password) for checks that passed;
    /// no password is kept in memory.
    passed: Mutex<HashSet<[u8; 32]>>,
    /// bcrypt is CPU-heavy by design: one check at a time, as in the toolkit.
    bcrypt_slot: Semaphore,
}

impl BasicAuth {
    pub(crate) fn new() -> Self {
        BasicAuth { passed: Mutex::new(HashSet::new()), bcrypt_slot: Semaphore::new(1) }
    }

    /// Whether `header` carries a user and password that `users` accepts.
    pub(crate) async fn check(&self, users: &BTreeMap<String, String>, header: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        let (known, hash) = match std::str::from_utf8(&user).ok().and_then(|u| users.get(u)) {
            Some(h) => (true, h.as_str()),
            None => (false, DECOY_HASH),
        };
        let key = cache_key(&user, hash, &password);
        if known && self.lock().contains(&key) {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slot.acquire().await else {
            return false;
        };
        let hash = hash.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if ok && known {
            let mut passed = self.lock();
            if passed.len() >= CACHE_SIZE
                && let Some(evict) = passed.iter().next().copied()
            {
                passed.remove(&evict);
            }
            passed.insert(key);
        }
        ok && known
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // The set holds no invariant a panicking holder could break.
        self.passed.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.lock().len()
    }
}

fn cache_key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [user, hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Splits `Basic base64(user:password)` (scheme case-insensitive, as Go's
/// `Request.BasicAuth`).
fn parse_basic(header: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = header.as_bytes();
    let prefix = b"basic ";
    if v.len() < prefix.len() || !v[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(&v[prefix.len()..]).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // htpasswd -nbBC 4 alice wonderland (cost 4 keeps the tests fast).
    const ALICE: &str = "$2y$04$EVXrWcLVLulBzhQxqUlEVeyLr4VRULj1TpQ3TFFq.0MECOwYW37vO";

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([("alice".to_string(), ALICE.to_string())])
    }

    fn header(user: &str, pass: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {b}")).expect("valid header")
    }

    #[tokio::test]
    async fn right_password_passes_and_is_cached() {
        let auth = BasicAuth::new();
        assert!(auth.check(&users(), Some(&header("alice", "wonderland"))).await);
        assert_eq!(auth.cached(), 1);
        assert!(auth.check(&users(), Some(&header("alice", "wonderland"))).await);
        assert_eq!(auth.cached(), 1);
    }

    #[tokio::test]
    async fn wrong_password_unknown_user_and_garbage_fail_uncached() {
        let auth = BasicAuth::new();
        assert!(!auth.check(&users(), Some(&header("alice", "wrong"))).await);
        assert!(!auth.check(&users(), Some(&header("bob", "wonderland"))).await);
        assert!(!auth.check(&users(), None).await);
        for bad in ["Bearer abc", "Basic !!!", "Basic YWxpY2U=", "basic"] {
            let h = HeaderValue::from_static(bad);
            assert!(!auth.check(&users(), Some(&h)).await, "{bad}");
        }
        assert_eq!(auth.cached(), 0);
    }

    #[tokio::test]
    async fn scheme_is_case_insensitive_and_password_may_contain_colons() {
        let users = BTreeMap::from([("u".to_string(), bcrypt::hash("a:b", 4).expect("hash"))]);
        let b = base64::engine::general_purpose::STANDARD.encode("u:a:b");
        let h = HeaderValue::from_str(&format!("bAsIc {b}")).expect("header");
        assert!(BasicAuth::new().check(&users, Some(&h)).await);
    }

    #[tokio::test]
    async fn a_changed_hash_is_not_served_from_cache() {
        let auth = BasicAuth::new();
        assert!(auth.check(&users(), Some(&header("alice", "wonderland"))).await);
        let changed = BTreeMap::from([("alice".to_string(), bcrypt::hash("new", 4).expect("hash"))]);
        assert!(!auth.check(&changed, Some(&header("alice", "wonderland"))).await);
        assert!(auth.check(&changed, Some(&header("alice", "new"))).await);
    }

    #[test]
    fn decoy_hash_is_a_valid_bcrypt_hash() {
        assert!(DECOY_HASH.parse::<bcrypt::HashParts>().is_ok());
    }
}
