//! What one attempt did for one recipient, decided by the class of the reply that
//! settled it (RFC 5321 §4.2.1, RFC 3463): 2xx delivered; 5xx failed for good; 4xx, and
//! everything that went wrong on the way (no connection, a timeout, TLS, garbage),
//! deferred for another try.

use std::net::IpAddr;

use sealpost_smtp::client::{ClientError, Reply, Transaction};

/// One recipient's result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecipientOutcome {
    pub verdict: Verdict,
    /// Why, in words, as the queue keeps it (`last_error`) and a DSN explains it.
    pub reason: String,
    /// The remote server's reply that decided it (`550 5.1.1 no such user`), if any.
    pub reply: Option<String>,
    /// The MX that gave that reply.
    pub remote_mta: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Delivered,
    /// Worth another try later.
    Deferred,
    /// Permanent, with the RFC 3463 status a DSN carries (class 5).
    Failed {
        status: (u8, u16, u16),
    },
}

/// The server we were talking to, for the words of an outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer<'a> {
    pub mx: &'a str,
    pub ip: IpAddr,
}

impl RecipientOutcome {
    /// A failure of ours or of DNS rather than a remote reply (null MX, REQUIRETLS that
    /// cannot be met): permanent with `status`.
    pub fn failed(status: (u8, u16, u16), reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Failed { status },
            reason: reason.into(),
            reply: None,
            remote_mta: None,
        }
    }

    pub fn deferred(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Deferred,
            reason: reason.into(),
            reply: None,
            remote_mta: None,
        }
    }

    /// The remote's reply to `stage` (`RCPT TO`, `end of data`) decided it.
    pub fn from_reply(reply: &Reply, stage: &str, peer: Peer<'_>) -> Self {
        let said = format!(
            "{} [{}] said: {reply} (in reply to {stage})",
            peer.mx, peer.ip
        );
        let verdict = match reply.code {
            200..=299 => Verdict::Delivered,
            500..=599 => Verdict::Failed {
                status: status_of(reply),
            },
            // 4xx, and a code that is no final answer at this point (a 3xx to RCPT).
            _ => Verdict::Deferred,
        };
        Self {
            verdict,
            reason: if verdict == Verdict::Delivered {
                String::new()
            } else {
                said
            },
            reply: Some(reply.to_string()),
            remote_mta: Some(peer.mx.to_string()),
        }
    }

    /// A session error while this recipient's message was under way: permanent only when
    /// the client says no retry can help (a 5xx refusal, a message this server cannot
    /// take), else deferred. An error after the message was sent may mean it arrived
    /// anyway; a retry then is a possible duplicate, never a loss.
    pub fn from_error(error: &ClientError, peer: Peer<'_>) -> Self {
        let reason = format!("{} [{}]: {error}", peer.mx, peer.ip);
        let reply = match error {
            ClientError::Rejected { reply, .. } => Some(reply.to_string()),
            _ => None,
        };
        let verdict = if error.is_permanent() {
            Verdict::Failed {
                status: error
                    .enhanced()
                    .filter(|(class, _, _)| *class == 5)
                    .unwrap_or((5, 0, 0)),
            }
        } else {
            Verdict::Deferred
        };
        Self {
            verdict,
            reason,
            reply,
            remote_mta: Some(peer.mx.to_string()),
        }
    }
}

/// Each recipient's outcome of one transaction, in the envelope's order.
pub(crate) fn transaction_outcomes(
    transaction: &Transaction,
    recipients: usize,
    peer: Peer<'_>,
) -> Vec<RecipientOutcome> {
    (0..recipients)
        .map(|index| {
            if !transaction.mail.is_positive() {
                return RecipientOutcome::from_reply(&transaction.mail, "MAIL FROM", peer);
            }
            match (transaction.recipients.get(index), &transaction.data) {
                (Some(rcpt), _) if !rcpt.is_positive() => {
                    RecipientOutcome::from_reply(rcpt, "RCPT TO", peer)
                }
                (Some(_), Some(data)) => RecipientOutcome::from_reply(data, "end of data", peer),
                // An accepted recipient without a verdict on the message, or a recipient
                // the server never answered: the client would have said so with an
                // error; defer rather than guess.
                _ => RecipientOutcome::deferred(format!(
                    "{} [{}]: no reply for this recipient",
                    peer.mx, peer.ip
                )),
            }
        })
        .collect()
}

/// The RFC 3463 status of a 5xx reply: its enhanced code when that is of class 5 too
/// (§3: the classes must agree; the reply code wins), else `5.0.0`.
fn status_of(reply: &Reply) -> (u8, u16, u16) {
    reply
        .enhanced
        .filter(|(class, _, _)| u16::from(*class) == reply.code / 100)
        .unwrap_or(((reply.code / 100) as u8, 0, 0))
}

#[cfg(test)]
mod tests {
    use std::io;

    use sealpost_smtp::client::Stage;

    use super::*;

    fn peer() -> Peer<'static> {
        Peer {
            mx: "mx.example.org",
            ip: IpAddr::from([192, 0, 2, 25]),
        }
    }

    fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, text: &str) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    fn ok() -> Reply {
        reply(250, Some((2, 0, 0)), "ok")
    }

    #[test]
    fn reply_2xx_delivers_4xx_defers_5xx_fails_with_its_status() {
        let delivered = RecipientOutcome::from_reply(&ok(), "end of data", peer());
        assert_eq!(delivered.verdict, Verdict::Delivered);
        assert_eq!(delivered.reply.as_deref(), Some("250 2.0.0 ok"));

        let deferred =
            RecipientOutcome::from_reply(&reply(451, Some((4, 3, 0)), "later"), "RCPT TO", peer());
        assert_eq!(deferred.verdict, Verdict::Deferred);
        assert_eq!(
            deferred.reason,
            "mx.example.org [192.0.2.25] said: 451 4.3.0 later (in reply to RCPT TO)"
        );

        let failed = RecipientOutcome::from_reply(
            &reply(550, Some((5, 1, 1)), "no such user"),
            "RCPT TO",
            peer(),
        );
        assert_eq!(failed.verdict, Verdict::Failed { status: (5, 1, 1) });
        assert_eq!(failed.reply.as_deref(), Some("550 5.1.1 no such user"));
        assert_eq!(failed.remote_mta.as_deref(), Some("mx.example.org"));
    }

    #[test]
    fn a_5xx_without_enhanced_code_is_status_5_0_0() {
        let failed = RecipientOutcome::from_reply(&reply(554, None, "no"), "end of data", peer());
        assert_eq!(failed.verdict, Verdict::Failed { status: (5, 0, 0) });
        // A class that disagrees with the reply code is not believed (RFC 3463 §3).
        let odd =
            RecipientOutcome::from_reply(&reply(550, Some((4, 2, 2)), "x"), "RCPT TO", peer());
        assert_eq!(odd.verdict, Verdict::Failed { status: (5, 0, 0) });
    }

    #[test]
    fn a_reply_that_is_no_final_answer_defers() {
        let odd = RecipientOutcome::from_reply(&reply(354, None, "go on"), "RCPT TO", peer());
        assert_eq!(odd.verdict, Verdict::Deferred);
    }

    #[test]
    fn connection_problems_and_timeouts_defer() {
        for error in [
            ClientError::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            ClientError::Timeout {
                stage: Stage::EndOfData,
            },
            ClientError::Malformed("garbage".into()),
            ClientError::Tls("handshake".into()),
            ClientError::Rejected {
                stage: Stage::Greeting,
                reply: reply(421, Some((4, 7, 0)), "busy"),
            },
        ] {
            let outcome = RecipientOutcome::from_error(&error, peer());
            assert_eq!(outcome.verdict, Verdict::Deferred, "{error}");
            assert!(outcome.reason.starts_with("mx.example.org [192.0.2.25]: "));
        }
    }

    #[test]
    fn permanent_client_errors_fail_with_their_status() {
        let outcome = RecipientOutcome::from_error(
            &ClientError::Unsupported("5.6.7 the server does not offer SMTPUTF8".into()),
            peer(),
        );
        assert_eq!(outcome.verdict, Verdict::Failed { status: (5, 6, 7) });
        let outcome = RecipientOutcome::from_error(
            &ClientError::Rejected {
                stage: Stage::Greeting,
                reply: reply(554, None, "go away"),
            },
            peer(),
        );
        assert_eq!(outcome.verdict, Verdict::Failed { status: (5, 0, 0) });
        assert_eq!(outcome.reply.as_deref(), Some("554 go away"));
    }

    #[test]
    fn each_recipient_gets_its_rcpt_refusal_or_the_verdict_on_the_message() {
        let transaction = Transaction {
            mail: ok(),
            recipients: vec![
                ok(),
                reply(550, Some((5, 1, 1)), "unknown"),
                reply(452, Some((4, 5, 3)), "too many"),
            ],
            data: Some(reply(250, Some((2, 0, 0)), "queued as 1")),
        };
        let verdicts: Vec<Verdict> = transaction_outcomes(&transaction, 3, peer())
            .into_iter()
            .map(|o| o.verdict)
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Delivered,
                Verdict::Failed { status: (5, 1, 1) },
                Verdict::Deferred
            ]
        );
    }

    #[test]
    fn a_refused_mail_from_decides_every_recipient() {
        let refusal = reply(553, Some((5, 7, 1)), "sender refused");
        let transaction = Transaction {
            mail: refusal.clone(),
            recipients: vec![refusal.clone(), refusal],
            data: None,
        };
        let outcomes = transaction_outcomes(&transaction, 2, peer());
        assert!(
            outcomes
                .iter()
                .all(|o| o.verdict == Verdict::Failed { status: (5, 7, 1) })
        );
        assert!(outcomes[0].reason.ends_with("(in reply to MAIL FROM)"));
    }

    #[test]
    fn a_refused_message_fails_or_defers_every_accepted_recipient() {
        let transaction = Transaction {
            mail: ok(),
            recipients: vec![ok(), ok()],
            data: Some(reply(451, Some((4, 7, 1)), "greylisted")),
        };
        let outcomes = transaction_outcomes(&transaction, 2, peer());
        assert!(outcomes.iter().all(|o| o.verdict == Verdict::Deferred));
        assert!(outcomes[1].reason.ends_with("(in reply to end of data)"));
    }
}
