//! One POP3 session per maildrop (RFC 1939 §8, PASS: "exclusive-access lock"). Two
//! sessions deleting by message number from two snapshots of one INBOX would each
//! believe its own view; the second login is refused with `[IN-USE]` (RFC 2449 §8.1).
//!
//! The lock lives in this process. Every POP3 listener must share one registry (see
//! [`MaildropLocks::process_wide`]) so a session on 110 also excludes one on 995. When
//! several nodes share one store, the lock also holds the store's session lock (see
//! `Store::try_session_lock`), so a session on another node is excluded as well.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use sealpost_store::{AccountId, SessionLockGuard};

/// The set of accounts with a POP3 session in the TRANSACTION state.
#[derive(Debug, Clone, Default)]
pub struct MaildropLocks {
    held: Arc<Mutex<HashSet<AccountId>>>,
}

impl MaildropLocks {
    /// The registry all listeners of this process share.
    pub fn process_wide() -> MaildropLocks {
        static SHARED: OnceLock<MaildropLocks> = OnceLock::new();
        SHARED.get_or_init(MaildropLocks::default).clone()
    }

    /// Locks the account's maildrop, or `None` when another session holds it.
    pub fn try_lock(&self, account: AccountId) -> Option<MaildropLock> {
        if self.held().insert(account) {
            Some(MaildropLock {
                locks: self.clone(),
                account,
                shared: None,
            })
        } else {
            None
        }
    }

    pub fn is_locked(&self, account: AccountId) -> bool {
        self.held().contains(&account)
    }

    fn held(&self) -> MutexGuard<'_, HashSet<AccountId>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held for as long as the session lives; dropping it (however the session ends, even
/// when its task is cancelled) frees the maildrop.
#[derive(Debug)]
pub struct MaildropLock {
    locks: MaildropLocks,
    account: AccountId,
    /// The store's lock across nodes, freed with this one.
    shared: Option<SessionLockGuard>,
}

impl MaildropLock {
    /// Keeps the store's lock on the same maildrop for as long as this one.
    pub fn hold_shared(&mut self, shared: SessionLockGuard) {
        self.shared = Some(shared);
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        self.locks.held().remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maildrop_is_locked_once_until_the_lock_is_dropped() {
        let locks = MaildropLocks::default();
        let first = locks.try_lock(1).expect("free");
        assert!(locks.try_lock(1).is_none());
        let other = locks.try_lock(2).expect("another account is independent");
        drop(first);
        assert!(!locks.is_locked(1));
        assert!(locks.try_lock(1).is_some());
        drop(other);
    }

    #[test]
    fn the_process_wide_registry_is_one_registry() {
        let a = MaildropLocks::process_wide();
        let b = MaildropLocks::process_wide();
        let account = -4242;
        let lock = a.try_lock(account).expect("free");
        assert!(b.is_locked(account));
        drop(lock);
        assert!(!b.is_locked(account));
    }
}
