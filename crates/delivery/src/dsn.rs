//! Delivery status notifications (RFC 3464): when recipients fail for good or are given
//! up, their sender is told in a `multipart/report; report-type=delivery-status` message
//! with a part for people, the machine-readable `message/delivery-status`, and the
//! original header section (`text/rfc822-headers`, RFC 6522), never the body.
//!
//! A DSN has the null sender, so it can never cause another (RFC 5321 §4.5.5); nothing
//! is sent for a message that itself had the null sender. A sender on one of our domains
//! gets it straight into their INBOX; anyone else through the queue. Addresses that are
//! not ASCII make it an RFC 6533 `message/global-delivery-status`.

use std::sync::Arc;

use sealpost_store::{Delivery, LocalTarget, Outbound, QueueId, Store, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use crate::outcome::{RecipientOutcome, Verdict};

/// Longest diagnostic or reason written into the DSN: header lines stay under RFC 5322's
/// 998 octets.
const MAX_TEXT: usize = 800;

/// What went wrong with one queued message, for its sender.
pub(crate) struct Bounce<'a> {
    /// Our name: `Reporting-MTA` and the `From:` domain.
    pub hostname: &'a str,
    /// The original envelope sender, to whom the DSN goes.
    pub sender: &'a str,
    pub queue_id: QueueId,
    /// When the message was queued (seconds since the epoch).
    pub arrival: i64,
    /// The message was sent with REQUIRETLS: the DSN about it is too (RFC 8689 §5).
    pub require_tls: bool,
    /// The recipients that failed, each with its (failed) outcome.
    pub failed: &'a [(String, RecipientOutcome)],
    pub last_attempt: i64,
    /// The original message's header section.
    pub original_headers: &'a [u8],
}

/// Where a DSN went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Into the local sender's INBOX.
    Inbox,
    /// Queued for the remote sender under this id.
    Queued(QueueId),
    /// Nowhere: the sender was the null sender, or a local address without an account.
    Withheld(&'static str),
}

impl Bounce<'_> {
    /// Delivers the DSN: into the sender's INBOX when the sender's domain is ours,
    /// otherwise into the queue with the null sender.
    pub async fn send(&self, store: &dyn Store, now: OffsetDateTime) -> Result<Sent, StoreError> {
        if self.sender.is_empty() {
            return Ok(Sent::Withheld("the message had the null sender"));
        }
        let raw = Arc::new(self.message(now));
        let domain = self.sender.rsplit_once('@').map_or("", |(_, d)| d);
        if store.is_local_domain(domain).await? {
            let Some(account) = store.account(self.sender).await? else {
                return Ok(Sent::Withheld("the local sender has no account"));
            };
            store
                .deliver(Delivery {
                    raw,
                    internal_date: now.unix_timestamp(),
                    local: vec![LocalTarget {
                        account: account.id,
                        mailbox: "INBOX".into(),
                    }],
                    outbound: None,
                })
                .await?;
            return Ok(Sent::Inbox);
        }
        let delivered = store
            .deliver(Delivery {
                raw,
                internal_date: now.unix_timestamp(),
                local: Vec::new(),
                outbound: Some(Outbound {
                    sender: String::new(),
                    recipients: vec![self.sender.to_string()],
                    require_tls: self.require_tls,
                }),
            })
            .await?;
        Ok(delivered
            .queue_id
            .map_or(Sent::Withheld("the store queued nothing"), Sent::Queued))
    }

    /// The DSN message, CRLF line ends throughout.
    pub fn message(&self, now: OffsetDateTime) -> Vec<u8> {
        let international =
            !self.sender.is_ascii() || self.failed.iter().any(|(address, _)| !address.is_ascii());
        let boundary = format!(
            "{:016x}.{}/{}",
            rand::random::<u64>(),
            self.queue_id,
            self.hostname
        );
        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(text);
            out.push_str("\r\n");
        };
        line(&format!(
            "From: \"Mail Delivery System\" <MAILER-DAEMON@{}>",
            self.hostname
        ));
        line(&format!("To: <{}>", self.sender));
        line("Subject: Undelivered Mail Returned to Sender");
        line(&format!("Date: {}", rfc5322_date(now)));
        line(&format!(
            "Message-ID: <{}.{:016x}@{}>",
            now.unix_timestamp(),
            rand::random::<u64>(),
            self.hostname
        ));
        // RFC 3834 §5: an automatic response, so auto-responders leave it alone.
        line("Auto-Submitted: auto-replied");
        line("MIME-Version: 1.0");
        line(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\""
        ));
        line("");
        line("This is a MIME-encapsulated message.");
        line("");

        line(&format!("--{boundary}"));
        line("Content-Type: text/plain; charset=utf-8");
        line("Content-Transfer-Encoding: 8bit");
        line("Content-Description: Notification");
        line("");
        line(&format!(
            "This is the mail delivery system at {}.",
            self.hostname
        ));
        line("");
        line("Your message could not be delivered to the recipients below; this is final,");
        line("no further attempts will be made.");
        for (address, outcome) in self.failed {
            line("");
            line(&format!("<{address}>:"));
            line(&format!("    {}", bounded(&outcome.reason)));
        }
        line("");
        line("The header section of your message is attached.");
        line("");

        line(&format!("--{boundary}"));
        if international {
            line("Content-Type: message/global-delivery-status");
        } else {
            line("Content-Type: message/delivery-status");
        }
        line("Content-Description: Delivery report");
        line("");
        line(&format!("Reporting-MTA: dns; {}", self.hostname));
        line(&format!("X-Sealpost-Queue-ID: {}", self.queue_id));
        if let Ok(arrival) = OffsetDateTime::from_unix_timestamp(self.arrival) {
            line(&format!("Arrival-Date: {}", rfc5322_date(arrival)));
        }
        let last_attempt = OffsetDateTime::from_unix_timestamp(self.last_attempt).unwrap_or(now);
        for (address, outcome) in self.failed {
            line("");
            let address_type = if address.is_ascii() {
                "rfc822"
            } else {
                "utf-8"
            };
            line(&format!("Final-Recipient: {address_type}; {address}"));
            line("Action: failed");
            line(&format!("Status: {}", status_text(outcome)));
            if let Some(mta) = &outcome.remote_mta {
                line(&format!("Remote-MTA: dns; {mta}"));
            }
            if let Some(reply) = &outcome.reply {
                line(&format!("Diagnostic-Code: smtp; {}", bounded(reply)));
            }
            line(&format!(
                "Last-Attempt-Date: {}",
                rfc5322_date(last_attempt)
            ));
        }
        line("");

        line(&format!("--{boundary}"));
        if international {
            line("Content-Type: message/global-headers");
        } else {
            line("Content-Type: text/rfc822-headers");
        }
        if !self.original_headers.is_ascii() {
            line("Content-Transfer-Encoding: 8bit");
        }
        line("Content-Description: Undelivered Message Headers");
        line("");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&crlf_lines(self.original_headers));
        bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        bytes
    }
}

/// `5.1.1`; `5.0.0` for an outcome that is (wrongly) not a failure.
fn status_text(outcome: &RecipientOutcome) -> String {
    let (class, subject, detail) = match outcome.verdict {
        Verdict::Failed { status } => status,
        Verdict::Delivered | Verdict::Deferred => (5, 0, 0),
    };
    format!("{class}.{subject}.{detail}")
}

/// One line, control characters replaced, at most [`MAX_TEXT`] characters.
fn bounded(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    clean
}

/// The header section with every line ending as CRLF (a stored message may have bare
/// LFs), ending in one.
fn crlf_lines(section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(section.len() + 64);
    for line in section.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn rfc5322_date(at: OffsetDateTime) -> String {
    at.format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests {
    use mail_parser::{MessageParser, MimeHeaders, PartType};

    use super::*;

    fn failed(
        address: &str,
        status: (u8, u16, u16),
        reply: Option<&str>,
    ) -> (String, RecipientOutcome) {
        (
            address.to_string(),
            RecipientOutcome {
                verdict: Verdict::Failed { status },
                reason: format!(
                    "mx.example.org [192.0.2.25] said: {} (in reply to RCPT TO)",
                    reply.unwrap_or("-")
                ),
                reply: reply.map(String::from),
                remote_mta: reply.map(|_| "mx.example.org".to_string()),
            },
        )
    }

    fn bounce<'a>(failed: &'a [(String, RecipientOutcome)], headers: &'a [u8]) -> Bounce<'a> {
        Bounce {
            hostname: "mail.example.test",
            sender: "alice@example.test",
            queue_id: 42,
            arrival: 1_700_000_000,
            require_tls: false,
            failed,
            last_attempt: 1_700_000_600,
            original_headers: headers,
        }
    }

    const HEADERS: &[u8] = b"From: Alice <alice@example.test>\r\nTo: bob@example.org\r\nSubject: hello\r\nMessage-ID: <m1@example.test>\r\n";

    #[test]
    fn dsn_is_a_multipart_report_with_the_three_parts() {
        let failed = [
            failed("bob@example.org", (5, 1, 1), Some("550 5.1.1 no such user")),
            failed(
                "carol@example.org",
                (5, 2, 2),
                Some("552 5.2.2 mailbox full"),
            ),
        ];
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_700).unwrap();
        let raw = bounce(&failed, HEADERS).message(now);
        let message = MessageParser::default()
            .parse(&raw)
            .expect("the DSN parses");

        assert_eq!(
            message
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address()),
            Some("MAILER-DAEMON@mail.example.test")
        );
        assert_eq!(
            message
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.name()),
            Some("Mail Delivery System")
        );
        assert_eq!(
            message
                .to()
                .and_then(|t| t.first())
                .and_then(|a| a.address()),
            Some("alice@example.test")
        );
        assert!(
            message
                .message_id()
                .is_some_and(|id| id.ends_with("@mail.example.test"))
        );
        assert!(message.date().is_some());
        let content_type = message.content_type().expect("a Content-Type");
        assert_eq!(content_type.ctype(), "multipart");
        assert_eq!(content_type.subtype(), Some("report"));
        assert_eq!(
            content_type.attribute("report-type"),
            Some("delivery-status")
        );

        let PartType::Multipart(children) = &message.parts[0].body else {
            panic!("not multipart: {:?}", message.parts[0].body);
        };
        let types: Vec<String> = children
            .iter()
            .map(|&i| {
                let ct = message.parts[i as usize].content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            types,
            [
                "text/plain",
                "message/delivery-status",
                "text/rfc822-headers"
            ]
        );

        let human = message.body_text(0).expect("a text part");
        assert!(human.contains("<bob@example.org>:"), "{human}");
        assert!(human.contains("550 5.1.1 no such user"), "{human}");

        let status = part_text(&raw, "Content-Type: message/delivery-status");
        assert!(
            status.contains("Reporting-MTA: dns; mail.example.test\r\n"),
            "{status}"
        );
        assert!(
            status.contains("Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"),
            "{status}"
        );
        let recipients: Vec<&str> = status
            .split("\r\n\r\n")
            .skip(1)
            .filter(|g| !g.trim().is_empty())
            .collect();
        assert_eq!(recipients.len(), 2, "{status}");
        assert_eq!(
            recipients[0].trim_end(),
            "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\nLast-Attempt-Date: Tue, 14 Nov 2023 22:23:20 +0000"
        );
        assert!(recipients[1].contains("Status: 5.2.2"), "{}", recipients[1]);

        let headers = part_text(&raw, "Content-Type: text/rfc822-headers");
        assert!(
            headers.contains("Subject: hello\r\nMessage-ID: <m1@example.test>\r\n"),
            "{headers}"
        );
    }

    #[test]
    fn failure_without_remote_reply_has_no_diagnostic_code() {
        let failed = [(
            "bob@nomail.example".to_string(),
            RecipientOutcome::failed((5, 1, 10), "nomail.example accepts no mail (null MX)"),
        )];
        let raw = bounce(&failed, HEADERS).message(OffsetDateTime::UNIX_EPOCH);
        let status = part_text(&raw, "Content-Type: message/delivery-status");
        assert!(status.contains("Status: 5.1.10\r\n"), "{status}");
        assert!(
            !status.contains("Remote-MTA") && !status.contains("Diagnostic-Code"),
            "{status}"
        );
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("nomail.example accepts no mail (null MX)"));
    }

    #[test]
    fn international_addresses_make_a_global_delivery_status() {
        let failed = [failed(
            "jörg@exämple.org",
            (5, 1, 1),
            Some("550 5.1.1 unknown"),
        )];
        let raw =
            bounce(&failed, "Subject: grüße\r\n".as_bytes()).message(OffsetDateTime::UNIX_EPOCH);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
        assert!(text.contains("Final-Recipient: utf-8; jörg@exämple.org\r\n"));
        assert!(text.contains(
            "Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n"
        ));
    }

    #[test]
    fn original_bare_lf_headers_come_back_with_crlf() {
        let failed = [failed("bob@example.org", (5, 1, 1), Some("550 x"))];
        let raw = bounce(&failed, b"Subject: a\nX-Other: b\n").message(OffsetDateTime::UNIX_EPOCH);
        let headers = part_text(&raw, "Content-Type: text/rfc822-headers");
        assert!(
            headers.contains("Subject: a\r\nX-Other: b\r\n"),
            "{headers}"
        );
        assert!(
            !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "a bare LF"
        );
    }

    #[test]
    fn remote_text_cannot_inject_lines() {
        let failed = [failed(
            "bob@example.org",
            (5, 1, 1),
            Some("550 5.1.1 x\r\nBcc: evil@example.net"),
        )];
        let raw = bounce(&failed, HEADERS).message(OffsetDateTime::UNIX_EPOCH);
        let text = String::from_utf8(raw).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }

    /// The body of the MIME part that starts with `content_type` (up to the boundary).
    fn part_text(raw: &[u8], content_type: &str) -> String {
        let text = String::from_utf8_lossy(raw);
        let start = text
            .find(content_type)
            .unwrap_or_else(|| panic!("no {content_type} part in\n{text}"));
        let body = &text[start..];
        let body = &body[body.find("\r\n\r\n").unwrap() + 4..];
        body[..body.find("\r\n--").unwrap_or(body.len())].to_string()
    }
}
