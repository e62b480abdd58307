//! One mail transaction's envelope (RFC 5321 §3.3): the sender, where each recipient's
//! copy goes (a local INBOX or the outbound queue), and the message once it is complete.

use rand::Rng;
use sealpost_store::{Account, AccountId, Delivery, LocalTarget, Outbound, Store};
use tracing::warn;

use crate::body::MessageBody;

/// The mailbox local recipients' copies are delivered to.
pub(crate) const INBOX: &str = "INBOX";
/// Where DMARC quarantine puts them instead.
pub(crate) const JUNK: &str = "Junk";

#[derive(Debug)]
pub(crate) struct Transaction {
    /// Names the message in the Received header and the 250 reply.
    id: String,
    /// Empty for the null sender `<>`.
    sender: String,
    smtputf8: bool,
    /// MAIL FROM had REQUIRETLS (RFC 8689): the queued copy must travel over verified TLS.
    require_tls: bool,
    /// Every accepted recipient once, in order, as the client wrote it.
    recipients: Vec<String>,
    local: Vec<AccountId>,
    remote: Vec<String>,
    /// The message so far, once BDAT has begun (RFC 3030); `None` while a chunk is
    /// being read.
    chunks: Option<MessageBody>,
    chunking: bool,
}

impl Transaction {
    pub(crate) fn new(sender: String, smtputf8: bool, require_tls: bool) -> Self {
        let id: u64 = rand::rng().random();
        Self {
            id: format!("{id:016X}"),
            sender,
            smtputf8,
            require_tls,
            recipients: Vec::new(),
            local: Vec::new(),
            remote: Vec::new(),
            chunks: None,
            chunking: false,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The reverse-path; empty for `<>`.
    pub(crate) fn sender(&self) -> &str {
        &self.sender
    }

    /// The domain of the first recipient (for DMARC reports' `envelope_to`).
    pub(crate) fn first_recipient_domain(&self) -> &str {
        self.recipients
            .first()
            .and_then(|address| address.rsplit_once('@'))
            .map_or("", |(_, domain)| domain)
    }

    pub(crate) fn smtputf8(&self) -> bool {
        self.smtputf8
    }

    pub(crate) fn recipient_count(&self) -> usize {
        self.recipients.len()
    }

    /// The recipient, when there is exactly one (for the Received header's `for`).
    pub(crate) fn single_recipient(&self) -> Option<&str> {
        match self.recipients.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    pub(crate) fn add_local(&mut self, address: String, account: AccountId) {
        if self.remember(address) && !self.local.contains(&account) {
            self.local.push(account);
        }
    }

    pub(crate) fn add_remote(&mut self, address: String) {
        if self.remember(address.clone()) {
            self.remote.push(address);
        }
    }

    /// Adds `address` to the recipients; false if it was there already.
    fn remember(&mut self, address: String) -> bool {
        let known = self
            .recipients
            .iter()
            .any(|r| r.to_lowercase() == address.to_lowercase());
        if !known {
            self.recipients.push(address);
        }
        !known
    }

    /// Whether BDAT has begun, after which DATA and RCPT are out of sequence.
    pub(crate) fn is_chunking(&self) -> bool {
        self.chunking
    }

    /// The message so far, for the next chunk to be added to.
    pub(crate) fn take_chunks(&mut self, max_size: usize) -> MessageBody {
        self.chunking = true;
        self.chunks
            .take()
            .unwrap_or_else(|| MessageBody::new(max_size))
    }

    pub(crate) fn put_chunks(&mut self, body: MessageBody) {
        self.chunks = Some(body);
    }

    /// The store's view of this transaction, with `raw` the bytes to store and `mailbox`
    /// where local copies go.
    pub(crate) fn into_delivery(self, raw: Vec<u8>, internal_date: i64, mailbox: &str) -> Delivery {
        Delivery {
            raw: raw.into(),
            internal_date,
            local: self
                .local
                .into_iter()
                .map(|account| LocalTarget {
                    account,
                    mailbox: mailbox.to_string(),
                })
                .collect(),
            outbound: if self.remote.is_empty() {
                None
            } else {
                Some(Outbound {
                    sender: self.sender,
                    recipients: self.remote,
                    require_tls: self.require_tls,
                })
            },
        }
    }
}

/// A recipient to look up before RCPT is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecipientQuery {
    pub address: String,
    /// Lower-case.
    pub domain: String,
}

impl RecipientQuery {
    /// `address` as given in RCPT; empty stands for `<postmaster>` (RFC 5321 §4.5.1),
    /// which we read as the postmaster of our own hostname.
    pub(crate) fn new(address: &str, hostname: &str) -> Self {
        let address = if address.is_empty() {
            format!("postmaster@{hostname}")
        } else {
            address.to_string()
        };
        let domain = address
            .rsplit_once('@')
            .map(|(_, domain)| domain.to_lowercase())
            .unwrap_or_default();
        Self { address, domain }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecipientLookup {
    /// A local account.
    Account(Account),
    /// A local domain, but no such account.
    UnknownLocal,
    /// Not one of our domains.
    Remote,
    /// The store failed; the client should try again later.
    Unavailable,
}

/// Finds where a recipient's copy would go. Address literals (`[192.0.2.1]`) are never
/// local.
pub(crate) async fn look_up(store: &dyn Store, query: &RecipientQuery) -> RecipientLookup {
    if query.domain.starts_with('[') {
        return RecipientLookup::Remote;
    }
    match classify(store, query).await {
        Ok(lookup) => lookup,
        Err(error) => {
            warn!(%error, "recipient lookup failed");
            RecipientLookup::Unavailable
        }
    }
}

async fn classify(
    store: &dyn Store,
    query: &RecipientQuery,
) -> sealpost_store::Result<RecipientLookup> {
    if !store.is_local_domain(&query.domain).await? {
        return Ok(RecipientLookup::Remote);
    }
    Ok(match store.account(&query.address).await? {
        Some(account) => RecipientLookup::Account(account),
        None => RecipientLookup::UnknownLocal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_recipients_count_once_and_get_one_copy() {
        let mut txn = Transaction::new("a@x.test".into(), false, false);
        txn.add_local("bob@example.test".into(), 7);
        txn.add_local("BOB@example.test".into(), 7);
        txn.add_remote("carol@remote.test".into());
        txn.add_remote("carol@remote.test".into());
        assert_eq!(txn.recipient_count(), 2);
        let delivery = txn.into_delivery(b"m".to_vec(), 0, INBOX);
        assert_eq!(
            delivery.local,
            vec![LocalTarget {
                account: 7,
                mailbox: "INBOX".into()
            }]
        );
        assert_eq!(
            delivery.outbound,
            Some(Outbound {
                sender: "a@x.test".into(),
                recipients: vec!["carol@remote.test".into()],
                require_tls: false,
            })
        );
    }

    #[test]
    fn requiretls_is_carried_into_the_queued_copy() {
        let mut txn = Transaction::new("a@x.test".into(), false, true);
        txn.add_remote("carol@remote.test".into());
        let outbound = txn.into_delivery(b"m".to_vec(), 0, INBOX).outbound;
        assert!(outbound.expect("queued").require_tls);
    }

    #[test]
    fn local_only_transaction_has_no_outbound_part() {
        let mut txn = Transaction::new(String::new(), false, false);
        txn.add_local("bob@example.test".into(), 1);
        assert_eq!(txn.single_recipient(), Some("bob@example.test"));
        assert_eq!(txn.into_delivery(Vec::new(), 0, INBOX).outbound, None);
    }

    #[test]
    fn recipient_domain_is_lower_case_and_postmaster_is_ours() {
        let query = RecipientQuery::new("Bob@Example.TEST", "mx.example.test");
        assert_eq!(query.domain, "example.test");
        let query = RecipientQuery::new("", "mx.example.test");
        assert_eq!(query.address, "postmaster@mx.example.test");
        assert_eq!(query.domain, "mx.example.test");
    }
}
