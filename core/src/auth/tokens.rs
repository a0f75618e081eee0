//! Simple tokens (etcd's `simple_token.go`): `<random>.<index>` strings, installed
//! on every member when the Authenticate entry at `index` applies, valid for a TTL
//! that each use renews, dropped when their user is deleted or changes password
//! and all at once when auth is disabled. The random part comes from outside
//! core with the request; expiry runs on the member's `now_ms`.
//!
//! The table is bounded: when full, the token closest to expiry goes first
//! (etcd's table is unbounded, which a login storm can grow without limit).

use std::collections::BTreeMap;

/// etcd's `--auth-token-ttl` default: 300 s.
pub const TOKEN_TTL_MS_DEFAULT: u64 = 300_000;
/// Tokens one member keeps at once (detcd's bound).
pub const TOKENS_MAX_DEFAULT: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    user: String,
    expires_ms: u64,
}

/// The installed tokens of one member.
#[derive(Clone, Debug)]
pub struct SimpleTokens {
    ttl_ms: u64,
    tokens_max: usize,
    tokens: BTreeMap<String, Entry>,
    /// (expiry, token), to expire and evict in order.
    by_expiry: BTreeMap<(u64, String), ()>,
}

impl SimpleTokens {
    pub fn new(ttl_ms: u64, tokens_max: usize) -> SimpleTokens {
        assert!(tokens_max > 0, "a token table holds at least one token");
        SimpleTokens {
            ttl_ms,
            tokens_max,
            tokens: BTreeMap::new(),
            by_expiry: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn remove(&mut self, token: &str) -> Option<Entry> {
        let entry = self.tokens.remove(token)?;
        self.by_expiry.remove(&(entry.expires_ms, token.to_string()));
        Some(entry)
    }

    /// Installs `token` for `user` (evicting the token nearest expiry when full).
    pub fn assign(&mut self, token: &str, user: &str, now_ms: u64) {
        self.remove(token);
        if self.tokens.len() >= self.tokens_max {
            if let Some(((_, oldest), ())) = self.by_expiry.pop_first() {
                self.tokens.remove(&oldest);
            }
        }
        let expires_ms = now_ms + self.ttl_ms;
        self.by_expiry.insert((expires_ms, token.to_string()), ());
        self.tokens.insert(
            token.to_string(),
            Entry {
                user: user.to_string(),
                expires_ms,
            },
        );
    }

    /// The user of a live token, renewing its TTL.
    pub fn use_token(&mut self, token: &str, now_ms: u64) -> Option<String> {
        let entry = self.remove(token)?;
        if entry.expires_ms <= now_ms {
            return None;
        }
        let user = entry.user.clone();
        self.assign(token, &user, now_ms);
        Some(user)
    }

    /// Drops every token of `user`.
    pub fn invalidate_user(&mut self, user: &str) {
        let gone: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, e)| e.user == user)
            .map(|(t, _)| t.clone())
            .collect();
        for t in gone {
            self.remove(&t);
        }
    }

    /// Drops tokens whose TTL ran out.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some(((expires_ms, _), ())) = self.by_expiry.first_key_value() {
            if *expires_ms > now_ms {
                break;
            }
            let ((_, token), ()) = self.by_expiry.pop_first().expect("checked");
            self.tokens.remove(&token);
        }
    }

    pub fn clear(&mut self) {
        self.tokens.clear();
        self.by_expiry.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_for_its_ttl_and_each_use_renews_it() {
        let mut t = SimpleTokens::new(1_000, 10);
        t.assign("abc.5", "alice", 0);
        assert_eq!(t.use_token("abc.5", 900), Some("alice".to_string()));
        assert_eq!(t.use_token("abc.5", 1_800), Some("alice".to_string()));
        t.expire(2_799);
        assert_eq!(t.len(), 1);
        t.expire(2_800);
        assert!(t.is_empty());
        assert_eq!(t.use_token("abc.5", 2_800), None);
    }

    #[test]
    fn user_changes_drop_that_users_tokens_only() {
        let mut t = SimpleTokens::new(1_000, 10);
        t.assign("a.1", "alice", 0);
        t.assign("b.2", "bob", 0);
        t.assign("c.3", "alice", 0);
        t.invalidate_user("alice");
        assert_eq!(t.use_token("a.1", 1), None);
        assert_eq!(t.use_token("c.3", 1), None);
        assert_eq!(t.use_token("b.2", 1), Some("bob".to_string()));
    }

    #[test]
    fn a_full_table_evicts_the_token_nearest_expiry() {
        let mut t = SimpleTokens::new(1_000, 2);
        t.assign("a.1", "alice", 0);
        t.assign("b.2", "bob", 10);
        t.assign("c.3", "carol", 20);
        assert_eq!(t.len(), 2);
        assert_eq!(t.use_token("a.1", 30), None);
        assert_eq!(t.use_token("b.2", 30), Some("bob".to_string()));
    }
}
