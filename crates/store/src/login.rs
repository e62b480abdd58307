//! Password and certificate logins for every protocol, with the per-address throttle
//! that makes guessing slow: after a few failures from one IP each further attempt is
//! delayed, and past a limit the IP is refused outright for a while.
//!
//! argon2id is slow and memory-hungry on purpose (about 19 MiB and tens of milliseconds
//! per check), so checks run a few at a time, and a password that verified recently is
//! recognised again by a keyed hash instead of a second argon2 run (as Dovecot's auth
//! cache does): a mail client that reconnects every minute costs one argon2 run, not one
//! per connection. Wrong passwords always pay the full argon2 price.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use tokio::sync::Semaphore;

use crate::{Account, Store, StoreError, password};

/// Recently verified logins kept at most; past that, expired ones are dropped first.
const MAX_VERIFIED: usize = 10_000;

#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures from one IP before each further attempt is slowed down.
    pub free_failures: u32,
    /// Added per failure beyond `free_failures`, capped at `max_delay`.
    pub delay_step: Duration,
    pub max_delay: Duration,
    /// Failures from one IP after which it is refused for `lockout`.
    pub max_failures: u32,
    pub lockout: Duration,
    /// How long a verified password is recognised without argon2; zero turns that off.
    pub verified_ttl: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            delay_step: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            max_failures: 10,
            lockout: Duration::from_secs(15 * 60),
            verified_ttl: Duration::from_secs(5 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed logins from this address; retry in {}s", retry_after.as_secs())]
    Throttled { retry_after: Duration },
    #[error("invalid credentials")]
    BadCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Failures {
    count: u32,
    last: Instant,
}

/// A password that verified: a keyed hash of address and password, and the stored hash
/// it verified against, so a password change makes the entry useless at once.
struct Verified {
    tag: hmac::Tag,
    password_hash: String,
    at: Instant,
}

pub struct Login {
    store: Arc<dyn Store>,
    policy: LoginPolicy,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// One argon2 run per core at a time, so a burst of logins queues instead of taking
    /// every core and ~19 MiB per attempt.
    hashing: Semaphore,
    /// Random per process; never leaves memory.
    verified_key: hmac::Key,
    verified: Mutex<HashMap<String, Verified>>,
}

impl Login {
    pub fn new(store: Arc<dyn Store>, policy: LoginPolicy) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Generation fails only if the system's random source does; then caching is
        // simply never used (a fresh random key per process is what matters).
        let verified_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, &[]));
        Self {
            store,
            policy,
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(cores),
            verified_key,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `address`/`password` for a client at `peer`. The password is never logged.
    pub async fn password(
        &self,
        peer: IpAddr,
        address: &str,
        password: &str,
    ) -> Result<Account, LoginError> {
        let delay = self.admission(peer)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let account = self.store.account(address).await?;
        if let Some(account) = &account
            && self.recently_verified(account, password)
        {
            self.lock().remove(&peer);
            return Ok(account.clone());
        }
        // Verify even for unknown accounts, so timing does not reveal which exist.
        let stored = account
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let matches = {
            let _turn = self.hashing.acquire().await;
            let password = password.to_string();
            tokio::task::spawn_blocking(move || password::verify(&password, &stored))
                .await
                .unwrap_or(false)
        };
        match account {
            Some(account) if matches => {
                self.lock().remove(&peer);
                self.remember_verified(&account, password);
                Ok(account)
            }
            _ => {
                self.record_failure(peer);
                Err(LoginError::BadCredentials)
            }
        }
    }

    /// The first of a verified client certificate's identities that is an account.
    pub async fn certificate(&self, identities: &[String]) -> Result<Option<Account>, LoginError> {
        for identity in identities {
            if let Some(account) = self.store.account(identity).await? {
                return Ok(Some(account));
            }
        }
        Ok(None)
    }

    fn verified_message(account: &Account, password: &str) -> Vec<u8> {
        [account.address.as_bytes(), b"\0", password.as_bytes()].concat()
    }

    fn recently_verified(&self, account: &Account, password: &str) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = verified.get(&account.address) else {
            return false;
        };
        entry.at.elapsed() < self.policy.verified_ttl
            && entry.password_hash == account.password_hash
            && hmac::verify(
                &self.verified_key,
                &Self::verified_message(account, password),
                entry.tag.as_ref(),
            )
            .is_ok()
    }

    fn remember_verified(&self, account: &Account, password: &str) {
        if self.policy.verified_ttl.is_zero() {
            return;
        }
        let tag = hmac::sign(
            &self.verified_key,
            &Self::verified_message(account, password),
        );
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_VERIFIED {
            let ttl = self.policy.verified_ttl;
            verified.retain(|_, v| v.at.elapsed() < ttl);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(
            account.address.clone(),
            Verified {
                tag,
                password_hash: account.password_hash.clone(),
                at: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long to wait before checking this attempt, or a refusal.
    fn admission(&self, peer: IpAddr) -> Result<Duration, LoginError> {
        let mut failures = self.lock();
        let Some(f) = failures.get(&peer) else {
            return Ok(Duration::ZERO);
        };
        let since = f.last.elapsed();
        if since >= self.policy.lockout {
            failures.remove(&peer);
            return Ok(Duration::ZERO);
        }
        if f.count >= self.policy.max_failures {
            return Err(LoginError::Throttled {
                retry_after: self.policy.lockout - since,
            });
        }
        let extra = f.count.saturating_sub(self.policy.free_failures);
        Ok((self.policy.delay_step * extra).min(self.policy.max_delay))
    }

    fn record_failure(&self, peer: IpAddr) {
        let mut failures = self.lock();
        let entry = failures.entry(peer).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        entry.count += 1;
        entry.last = Instant::now();
    }
}

/// A valid argon2id hash of a random string, verified against when the account does
/// not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2VhbHBvc3RkdW1teQ$2p3WJpYc3dTsH8C3Vv8eQ0mIzQ0y8rVt2mX6cO7sJ1Q";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedStore;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn login_with(policy: LoginPolicy) -> (tempfile::TempDir, Arc<dyn Store>, Login) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let hash = password::hash("right horse").unwrap();
        store
            .create_account("alice@example.test", &hash)
            .await
            .unwrap();
        let login = Login::new(store.clone(), policy);
        (dir, store, login)
    }

    #[tokio::test]
    async fn right_password_logs_in_again_from_the_verified_cache() {
        let (_dir, _store, login) = login_with(LoginPolicy::default()).await;
        for _ in 0..2 {
            let account = login
                .password(PEER, "Alice@Example.test", "right horse")
                .await
                .unwrap();
            assert_eq!(account.address, "alice@example.test");
        }
        assert!(
            login
                .verified
                .lock()
                .unwrap()
                .contains_key("alice@example.test")
        );
    }

    #[tokio::test]
    async fn wrong_password_is_refused_even_after_a_verified_login() {
        let (_dir, _store, login) = login_with(LoginPolicy::default()).await;
        login
            .password(PEER, "alice@example.test", "right horse")
            .await
            .unwrap();
        let err = login
            .password(PEER, "alice@example.test", "wrong horse")
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::BadCredentials));
    }

    #[tokio::test]
    async fn a_password_change_makes_the_old_password_fail_at_once() {
        let (_dir, store, login) = login_with(LoginPolicy::default()).await;
        login
            .password(PEER, "alice@example.test", "right horse")
            .await
            .unwrap();
        let new_hash = password::hash("new horse").unwrap();
        store
            .set_password_hash("alice@example.test", &new_hash)
            .await
            .unwrap();
        assert!(
            login
                .password(PEER, "alice@example.test", "right horse")
                .await
                .is_err()
        );
        login
            .password(PEER, "alice@example.test", "new horse")
            .await
            .unwrap();
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_users_cost_the_same() {
        use argon2::password_hash::phc::PasswordHash;
        let parsed = PasswordHash::new(DUMMY_HASH).expect("DUMMY_HASH must parse");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.hash.is_some());
    }

    #[tokio::test]
    async fn unknown_accounts_fail_like_wrong_passwords() {
        let (_dir, _store, login) = login_with(LoginPolicy::default()).await;
        let err = login
            .password(PEER, "nobody@example.test", "right horse")
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::BadCredentials));
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_address_out_even_for_the_right_password() {
        let policy = LoginPolicy {
            free_failures: 10,
            max_failures: 2,
            ..LoginPolicy::default()
        };
        let (_dir, _store, login) = login_with(policy).await;
        for _ in 0..2 {
            let _ = login.password(PEER, "alice@example.test", "wrong").await;
        }
        let err = login
            .password(PEER, "alice@example.test", "right horse")
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Throttled { .. }));
    }

    #[tokio::test]
    async fn a_zero_ttl_turns_the_verified_cache_off() {
        let policy = LoginPolicy {
            verified_ttl: Duration::ZERO,
            ..LoginPolicy::default()
        };
        let (_dir, _store, login) = login_with(policy).await;
        login
            .password(PEER, "alice@example.test", "right horse")
            .await
            .unwrap();
        assert!(login.verified.lock().unwrap().is_empty());
    }
}
