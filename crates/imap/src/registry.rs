//! How many sessions each account has open, in this process, so one account cannot
//! take every connection slot (or every file descriptor) for itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use sealpost_store::AccountId;

#[derive(Debug, Default)]
pub struct SessionRegistry {
    open: Mutex<HashMap<AccountId, usize>>,
}

/// One open session of an account; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionSlot {
    registry: Arc<SessionRegistry>,
    account: AccountId,
}

impl SessionRegistry {
    /// A slot for `account`, unless it already has `max` sessions.
    pub fn acquire(self: &Arc<Self>, account: AccountId, max: usize) -> Option<SessionSlot> {
        let mut open = self.lock();
        let count = open.entry(account).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(SessionSlot {
            registry: Arc::clone(self),
            account,
        })
    }

    pub fn open_sessions(&self, account: AccountId) -> usize {
        self.lock().get(&account).copied().unwrap_or(0)
    }

    /// Counting cannot be left half-done by a panic, so a poisoned lock is still sound.
    fn lock(&self) -> MutexGuard<'_, HashMap<AccountId, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        if let Some(count) = open.get_mut(&self.account) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_per_account_are_limited_and_freed_on_drop() {
        let registry = Arc::new(SessionRegistry::default());
        let a = registry.acquire(1, 2).unwrap();
        let _b = registry.acquire(1, 2).unwrap();
        assert!(registry.acquire(1, 2).is_none());
        assert!(registry.acquire(2, 2).is_some());
        drop(a);
        assert_eq!(registry.open_sessions(1), 1);
        assert!(registry.acquire(1, 2).is_some());
    }
}
