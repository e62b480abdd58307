//! Password and certificate logins for every protocol, with the per-address throttle
//! that makes guessing slow: after a few failures from one IP each further attempt is
//! delayed, and past a limit the IP is refused outright for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Account, Store, StoreError, password};

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
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            delay_step: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            max_failures: 10,
            lockout: Duration::from_secs(15 * 60),
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

pub struct Login {
    store: Arc<dyn Store>,
    policy: LoginPolicy,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Login {
    pub fn new(store: Arc<dyn Store>, policy: LoginPolicy) -> Self {
        Self {
            store,
            policy,
            failures: Mutex::new(HashMap::new()),
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
        // Verify even for unknown accounts, so timing does not reveal which exist.
        let stored = account
            .as_ref()
            .map(|a| a.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || password::verify(&password, &stored))
            .await
            .unwrap_or(false);
        match account {
            Some(account) if matches => {
                self.lock().remove(&peer);
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
