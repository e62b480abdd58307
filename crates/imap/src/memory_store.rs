//! A `Store` in memory for the session and driver tests: the same contract as the
//! embedded backend (UIDs and MODSEQs never reused, flags canonical, a change feed),
//! without a database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use sealpost_store::{
    Account, AccountId, Appended, Change, Copied, Delivered, Delivery, FlagOperation, FlagUpdate,
    FlagsUpdated, Mailbox, MailboxId, MessageMeta, NewMessage, QueueEntry, QueueId, Result, Store,
    StoreError,
};
use tokio::sync::broadcast;

struct StoredMessage {
    meta: MessageMeta,
    raw: Arc<Vec<u8>>,
}

#[derive(Default)]
struct State {
    accounts: Vec<Account>,
    mailboxes: BTreeMap<MailboxId, Mailbox>,
    messages: BTreeMap<(MailboxId, u32), StoredMessage>,
    /// (mailbox, uid, modseq of the expunge)
    expunged: Vec<(MailboxId, u32, u64)>,
    next_id: i64,
    next_validity: u32,
}

pub struct MemoryStore {
    state: Mutex<State>,
    feed: broadcast::Sender<Change>,
}

impl MemoryStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                next_id: 1,
                next_validity: 1000,
                ..State::default()
            }),
            feed: broadcast::channel(64).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, changes: Vec<Change>) {
        for change in changes {
            let _ = self.feed.send(change);
        }
    }

    /// An account with the default mailboxes and a fast password hash.
    pub async fn add_account(&self, address: &str, password: &str) -> Account {
        let hash = sealpost_store::password::hash(password).expect("hash");
        self.create_account(address, &hash).await.expect("account")
    }
}

fn canonical_flags(flags: &[String]) -> Vec<String> {
    const SYSTEM: [&str; 5] = ["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"];
    let mut out: Vec<String> = Vec::new();
    for flag in flags {
        let flag = SYSTEM
            .iter()
            .find(|s| s.eq_ignore_ascii_case(flag))
            .map_or_else(|| flag.clone(), |s| s.to_string());
        if !out.iter().any(|f| f.eq_ignore_ascii_case(&flag)) {
            out.push(flag);
        }
    }
    out.sort();
    out
}

fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

fn fold(name: &str) -> &str {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        name
    }
}

impl State {
    fn mailbox_named(&self, account: AccountId, name: &str) -> Option<&Mailbox> {
        let name = fold(name);
        self.mailboxes
            .values()
            .find(|m| m.account == account && m.name == name)
    }

    fn new_mailbox(&mut self, account: AccountId, name: &str, special: Option<&str>) -> Mailbox {
        let mailbox = Mailbox {
            id: self.next_id,
            account,
            name: fold(name).to_string(),
            uid_validity: self.next_validity,
            uid_next: 1,
            highest_modseq: 1,
            special_use: special.map(str::to_string),
            subscribed: false,
        };
        self.next_id += 1;
        self.next_validity += 1;
        self.mailboxes.insert(mailbox.id, mailbox.clone());
        mailbox
    }

    /// Next UID and MODSEQ of a mailbox.
    fn slot(&mut self, mailbox: MailboxId) -> Result<(u32, u64)> {
        let m = self
            .mailboxes
            .get_mut(&mailbox)
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        let uid = m.uid_next;
        m.uid_next += 1;
        m.highest_modseq += 1;
        Ok((uid, m.highest_modseq))
    }

    fn next_modseq(&mut self, mailbox: MailboxId) -> u64 {
        let m = self.mailboxes.get_mut(&mailbox).expect("mailbox exists");
        m.highest_modseq += 1;
        m.highest_modseq
    }

    fn insert(
        &mut self,
        mailbox: MailboxId,
        raw: Arc<Vec<u8>>,
        flags: Vec<String>,
        date: i64,
    ) -> Result<u32> {
        let (uid, modseq) = self.slot(mailbox)?;
        let meta = MessageMeta {
            mailbox,
            uid,
            flags: canonical_flags(&flags),
            internal_date: date,
            size: raw.len() as u64,
            modseq,
        };
        self.messages
            .insert((mailbox, uid), StoredMessage { meta, raw });
        Ok(uid)
    }

    fn account_of(&self, mailbox: MailboxId) -> AccountId {
        self.mailboxes.get(&mailbox).map_or(0, |m| m.account)
    }

    fn remove(&mut self, mailbox: MailboxId, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let modseq = self.next_modseq(mailbox);
        for &uid in uids {
            self.messages.remove(&(mailbox, uid));
            self.expunged.push((mailbox, uid, modseq));
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn add_domain(&self, _domain: &str) -> Result<()> {
        Ok(())
    }

    async fn domains(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn is_local_domain(&self, _domain: &str) -> Result<bool> {
        Ok(true)
    }

    async fn create_account(&self, address: &str, password_hash: &str) -> Result<Account> {
        let mut state = self.lock();
        let account = Account {
            id: state.next_id,
            address: address.to_lowercase(),
            password_hash: password_hash.to_string(),
        };
        state.next_id += 1;
        state.accounts.push(account.clone());
        for (name, special) in sealpost_store::DEFAULT_MAILBOXES {
            let mailbox = state.new_mailbox(account.id, name, *special);
            if let Some(m) = state.mailboxes.get_mut(&mailbox.id) {
                m.subscribed = true;
            }
        }
        Ok(account)
    }

    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let address = address.trim().to_lowercase();
        Ok(self
            .lock()
            .accounts
            .iter()
            .find(|a| a.address == address)
            .cloned())
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.lock().accounts.clone())
    }

    async fn set_password_hash(&self, _address: &str, _password_hash: &str) -> Result<()> {
        Ok(())
    }

    async fn remove_account(&self, _address: &str) -> Result<()> {
        Ok(())
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        Ok(self
            .lock()
            .mailboxes
            .values()
            .filter(|m| m.account == account)
            .cloned()
            .collect())
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        Ok(self.lock().mailbox_named(account, name).cloned())
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Delivered> {
        let mut changes = Vec::new();
        let mut messages = Vec::new();
        {
            let mut state = self.lock();
            for target in &delivery.local {
                let mailbox = state
                    .mailbox_named(target.account, &target.mailbox)
                    .map(|m| m.id)
                    .ok_or_else(|| StoreError::NotFound(target.mailbox.clone()))?;
                let uid = state.insert(
                    mailbox,
                    Arc::clone(&delivery.raw),
                    Vec::new(),
                    delivery.internal_date,
                )?;
                messages.push((mailbox, uid));
                changes.push(Change::MessageAdded {
                    account: target.account,
                    mailbox,
                    uid,
                });
            }
        }
        self.send(changes);
        Ok(Delivered {
            messages,
            queue_id: None,
        })
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        Ok(self
            .lock()
            .messages
            .range((mailbox, 0)..=(mailbox, u32::MAX))
            .map(|(_, m)| m.meta.clone())
            .collect())
    }

    async fn message_raw(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .messages
            .get(&(mailbox, uid))
            .map(|m| m.raw.as_ref().clone()))
    }

    async fn create_mailbox(&self, account: AccountId, name: &str) -> Result<Mailbox> {
        let mailbox = {
            let mut state = self.lock();
            if state.mailbox_named(account, name).is_some() {
                return Err(StoreError::AlreadyExists(name.to_string()));
            }
            if name.is_empty() || name.split('/').any(str::is_empty) {
                return Err(StoreError::Invalid {
                    what: "mailbox name",
                    value: name.to_string(),
                });
            }
            state.new_mailbox(account, name, None)
        };
        self.send(vec![Change::MailboxesChanged { account }]);
        Ok(mailbox)
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        {
            let mut state = self.lock();
            if fold(name) == "INBOX" {
                return Err(StoreError::Invalid {
                    what: "mailbox to delete",
                    value: name.to_string(),
                });
            }
            let id = state
                .mailbox_named(account, name)
                .map(|m| m.id)
                .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
            state.mailboxes.remove(&id);
            state.messages.retain(|&(m, _), _| m != id);
        }
        self.send(vec![Change::MailboxesChanged { account }]);
        Ok(())
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        {
            let mut state = self.lock();
            if state.mailbox_named(account, to).is_some() {
                return Err(StoreError::AlreadyExists(to.to_string()));
            }
            let id = state
                .mailbox_named(account, from)
                .map(|m| m.id)
                .ok_or_else(|| StoreError::NotFound(from.to_string()))?;
            if let Some(m) = state.mailboxes.get_mut(&id) {
                m.name = to.to_string();
            }
        }
        self.send(vec![Change::MailboxesChanged { account }]);
        Ok(())
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let mut state = self.lock();
        let id = state
            .mailbox_named(account, name)
            .map(|m| m.id)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        if let Some(m) = state.mailboxes.get_mut(&id) {
            m.subscribed = subscribed;
        }
        Ok(())
    }

    async fn append(&self, mailbox: MailboxId, message: NewMessage) -> Result<Appended> {
        let (appended, account) = {
            let mut state = self.lock();
            let uid = state.insert(mailbox, message.raw, message.flags, message.internal_date)?;
            let validity = state.mailboxes[&mailbox].uid_validity;
            (
                Appended {
                    uid_validity: validity,
                    uid,
                },
                state.account_of(mailbox),
            )
        };
        self.send(vec![Change::MessageAdded {
            account,
            mailbox,
            uid: appended.uid,
        }]);
        Ok(appended)
    }

    async fn update_flags(&self, mailbox: MailboxId, update: FlagUpdate) -> Result<FlagsUpdated> {
        let mut result = FlagsUpdated {
            changed: Vec::new(),
            modified: Vec::new(),
        };
        let account = {
            let mut state = self.lock();
            let wanted = canonical_flags(&update.flags);
            for uid in update.uids {
                let Some(current) = state.messages.get(&(mailbox, uid)).map(|m| m.meta.clone())
                else {
                    continue;
                };
                if update
                    .unchanged_since
                    .is_some_and(|since| current.modseq > since)
                {
                    result.modified.push(uid);
                    continue;
                }
                let mut flags = current.flags.clone();
                match update.operation {
                    FlagOperation::Add => flags.extend(wanted.iter().cloned()),
                    FlagOperation::Remove => flags.retain(|f| !has(&wanted, f)),
                    FlagOperation::Replace => flags = wanted.clone(),
                }
                let flags = canonical_flags(&flags);
                if flags == current.flags {
                    continue;
                }
                let modseq = state.next_modseq(mailbox);
                let message = state.messages.get_mut(&(mailbox, uid)).expect("present");
                message.meta.flags = flags;
                message.meta.modseq = modseq;
                result.changed.push(message.meta.clone());
            }
            state.account_of(mailbox)
        };
        if !result.changed.is_empty() {
            self.send(vec![Change::FlagsChanged {
                account,
                mailbox,
                uids: result.changed.iter().map(|m| m.uid).collect(),
            }]);
        }
        Ok(result)
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>> {
        let (removed, account) = {
            let mut state = self.lock();
            let removed: Vec<u32> = state
                .messages
                .range((mailbox, 0)..=(mailbox, u32::MAX))
                .filter(|(_, m)| has(&m.meta.flags, "\\Deleted"))
                .map(|(&(_, uid), _)| uid)
                .filter(|uid| uids.as_ref().is_none_or(|only| only.contains(uid)))
                .collect();
            state.remove(mailbox, &removed);
            (removed, state.account_of(mailbox))
        };
        if !removed.is_empty() {
            self.send(vec![Change::Expunged {
                account,
                mailbox,
                uids: removed.clone(),
            }]);
        }
        Ok(removed)
    }

    async fn copy_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        let (copied, account) = {
            let mut state = self.lock();
            let validity = state
                .mailboxes
                .get(&to)
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {to}")))?
                .uid_validity;
            let mut pairs = Vec::new();
            for uid in uids {
                let Some((raw, flags, date)) = state.messages.get(&(from, uid)).map(|m| {
                    (
                        Arc::clone(&m.raw),
                        m.meta.flags.clone(),
                        m.meta.internal_date,
                    )
                }) else {
                    continue;
                };
                let new = state.insert(to, raw, flags, date)?;
                pairs.push((uid, new));
            }
            (
                Copied {
                    uid_validity: validity,
                    uids: pairs,
                },
                state.account_of(to),
            )
        };
        self.send(
            copied
                .uids
                .iter()
                .map(|&(_, uid)| Change::MessageAdded {
                    account,
                    mailbox: to,
                    uid,
                })
                .collect(),
        );
        Ok(copied)
    }

    async fn move_messages(
        &self,
        from: MailboxId,
        uids: Vec<u32>,
        to: MailboxId,
    ) -> Result<Copied> {
        let copied = self.copy_messages(from, uids, to).await?;
        let sources: Vec<u32> = copied.uids.iter().map(|&(uid, _)| uid).collect();
        let account = {
            let mut state = self.lock();
            state.remove(from, &sources);
            state.account_of(from)
        };
        if !sources.is_empty() {
            self.send(vec![Change::Expunged {
                account,
                mailbox: from,
                uids: sources,
            }]);
        }
        Ok(copied)
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>> {
        Ok(self
            .lock()
            .expunged
            .iter()
            .filter(|&&(m, _, at)| m == mailbox && at > modseq)
            .map(|&(_, uid, _)| uid)
            .collect())
    }

    async fn mailbox_by_id(&self, mailbox: MailboxId) -> Result<Option<Mailbox>> {
        Ok(self.lock().mailboxes.get(&mailbox).cloned())
    }

    async fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        Ok(Vec::new())
    }

    async fn queue_message(&self, _id: QueueId) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    async fn claim_queue_entries(
        &self,
        _now: i64,
        _lease_until: i64,
        _limit: usize,
    ) -> sealpost_store::Result<Vec<QueueEntry>> {
        Ok(Vec::new())
    }

    async fn renew_queue_leases(
        &self,
        _ids: Vec<QueueId>,
        _lease_until: i64,
    ) -> sealpost_store::Result<()> {
        // No queue here: nothing is leased.
        Ok(())
    }

    async fn finish_queue_attempt(
        &self,
        _attempt: sealpost_store::QueueAttempt,
    ) -> sealpost_store::Result<()> {
        Err(sealpost_store::StoreError::NotFound("queue entry".into()))
    }

    async fn retry_queue_entry(&self, _id: QueueId, _now: i64) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn drop_queue_entry(&self, _id: QueueId) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn delivery_memo(
        &self,
        _kind: &str,
        _domain: &str,
    ) -> sealpost_store::Result<Option<String>> {
        Ok(None)
    }

    async fn set_delivery_memo(
        &self,
        _kind: &str,
        _domain: &str,
        _value: Option<String>,
    ) -> sealpost_store::Result<()> {
        Ok(())
    }

    async fn delivery_memos(&self, _kind: &str) -> sealpost_store::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    async fn record_tls_results(
        &self,
        _results: Vec<sealpost_store::TlsSessionResult>,
    ) -> sealpost_store::Result<()> {
        Ok(())
    }

    async fn tls_results(
        &self,
        _from: i64,
        _until: i64,
    ) -> sealpost_store::Result<Vec<sealpost_store::TlsSessionResult>> {
        Ok(Vec::new())
    }

    async fn prune_tls_results(&self, _before: i64) -> sealpost_store::Result<u64> {
        Ok(0)
    }

    async fn queue_tls_report(
        &self,
        _report: sealpost_store::OutgoingReport,
    ) -> sealpost_store::Result<Option<QueueId>> {
        Ok(None)
    }

    async fn record_dmarc_evaluation(
        &self,
        _record: sealpost_store::DmarcEvaluationRecord,
    ) -> sealpost_store::Result<()> {
        Ok(())
    }

    async fn dmarc_evaluations(
        &self,
        _from: i64,
        _until: i64,
    ) -> sealpost_store::Result<Vec<sealpost_store::DmarcEvaluationRecord>> {
        Ok(Vec::new())
    }

    async fn prune_dmarc_evaluations(&self, _before: i64) -> sealpost_store::Result<u64> {
        Ok(0)
    }

    async fn queue_dmarc_report(
        &self,
        _report: sealpost_store::OutgoingReport,
    ) -> sealpost_store::Result<Option<QueueId>> {
        Ok(None)
    }

    async fn store_dmarc_report(
        &self,
        _report: sealpost_store::DmarcAggregateReport,
    ) -> sealpost_store::Result<bool> {
        Ok(false)
    }

    async fn dmarc_reports(
        &self,
        _policy_domain: &str,
    ) -> sealpost_store::Result<Vec<sealpost_store::DmarcAggregateReport>> {
        Ok(Vec::new())
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}
