//! The one line every delivery attempt logs (target `delivery`, level info), so an admin
//! can see for each message and domain where it went, over what TLS, under which policy,
//! and what the other side said:
//!
//! `delivery <delivered|deferred|bounced> id=<queue id> domain=<d> mx=<host> ip=<addr>
//! tls=<TLSv1.3|none> cipher=<..> policy=<kind> verified=<yes|no|-> check="<..>"
//! reason="<why>" reply="<remote reply>"`
//!
//! Values that could hold spaces are quoted; quotes and control characters inside them
//! are replaced, so one attempt is always exactly one parseable line.

use std::fmt;
use std::net::IpAddr;

use sealpost_store::QueueId;

use crate::outcome::{RecipientOutcome, Verdict};

/// The policy fields when no host was reached because the domain had no route.
pub(crate) const NO_ROUTE_POLICY: &str = "policy=- verified=- check=\"no route\"";

pub(crate) struct DeliveryLine<'a> {
    pub id: QueueId,
    pub domain: &'a str,
    pub mx: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// The negotiated version and cipher; `None` for plaintext (or no connection).
    pub tls: Option<(&'a str, &'a str)>,
    /// `policy=.. verified=.. check=".."`, from `PolicyEngine::explain`.
    pub policy: &'a str,
    /// The recipients' outcomes; the line reports the one that matters most.
    pub outcomes: &'a [(String, RecipientOutcome)],
}

impl DeliveryLine<'_> {
    pub fn log(&self) {
        tracing::info!(target: "delivery", "{self}");
    }
}

impl fmt::Display for DeliveryLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, decisive) = summary(self.outcomes);
        write!(
            f,
            "delivery {word} id={} domain={}",
            self.id,
            token(self.domain)
        )?;
        write!(
            f,
            " mx={}",
            self.mx.map(token).unwrap_or_else(|| "-".into())
        )?;
        match self.ip {
            Some(ip) => write!(f, " ip={ip}")?,
            None => f.write_str(" ip=-")?,
        }
        match self.tls {
            Some((version, cipher)) => {
                write!(f, " tls={} cipher={}", token(version), token(cipher))?
            }
            None => f.write_str(" tls=none cipher=-")?,
        }
        // The policy's check text carries remote words too (a certificate's names, a
        // handshake error): its quoting is the engine's, its line breaks are not allowed.
        write!(f, " {}", one_line(self.policy))?;
        let reason = decisive.map_or("", |o| o.reason.as_str());
        let reply = decisive.and_then(|o| o.reply.as_deref()).unwrap_or("-");
        write!(
            f,
            " reason=\"{}\" reply=\"{}\"",
            quoted(reason),
            quoted(reply)
        )
    }
}

/// The parcel's word and the outcome it is told by: deferred if any recipient was,
/// else bounced if any failed, else delivered.
fn summary(outcomes: &[(String, RecipientOutcome)]) -> (&'static str, Option<&RecipientOutcome>) {
    let find = |wanted: fn(&Verdict) -> bool| {
        outcomes
            .iter()
            .map(|(_, outcome)| outcome)
            .find(|outcome| wanted(&outcome.verdict))
    };
    if let Some(outcome) = find(|v| *v == Verdict::Deferred) {
        ("deferred", Some(outcome))
    } else if let Some(outcome) = find(|v| matches!(v, Verdict::Failed { .. })) {
        ("bounced", Some(outcome))
    } else {
        ("delivered", outcomes.first().map(|(_, outcome)| outcome))
    }
}

/// A value without spaces: anything else becomes `_`.
fn token(value: &str) -> String {
    if value.is_empty() {
        return "-".into();
    }
    value
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || c == '"' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn quoted(value: &str) -> String {
    one_line(&value.replace('"', "'"))
}

/// Control characters (CR, LF, NEL...) and the Unicode line and paragraph separators
/// become spaces: nothing a remote server says can start a log line of its own.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(verdict: Verdict, reason: &str, reply: Option<&str>) -> (String, RecipientOutcome) {
        (
            "bob@example.org".into(),
            RecipientOutcome {
                verdict,
                reason: reason.into(),
                reply: reply.map(String::from),
                remote_mta: None,
            },
        )
    }

    #[test]
    fn delivered_line_has_every_field() {
        let outcomes = [outcome(
            Verdict::Delivered,
            "",
            Some("250 2.0.0 queued as 7"),
        )];
        let line = DeliveryLine {
            id: 7,
            domain: "example.org",
            mx: Some("mx.example.org"),
            ip: Some(IpAddr::from([192, 0, 2, 25])),
            tls: Some(("TLSv1.3", "TLS13_AES_256_GCM_SHA384")),
            policy: "policy=mta-sts-enforce verified=yes check=\"pkix\"",
            outcomes: &outcomes,
        };
        assert_eq!(
            line.to_string(),
            "delivery delivered id=7 domain=example.org mx=mx.example.org ip=192.0.2.25 tls=TLSv1.3 cipher=TLS13_AES_256_GCM_SHA384 policy=mta-sts-enforce verified=yes check=\"pkix\" reason=\"\" reply=\"250 2.0.0 queued as 7\""
        );
    }

    #[test]
    fn a_deferred_recipient_makes_the_line_deferred_even_beside_deliveries() {
        let outcomes = [
            outcome(Verdict::Delivered, "", Some("250 ok")),
            outcome(
                Verdict::Failed { status: (5, 1, 1) },
                "no such user",
                Some("550 5.1.1 no"),
            ),
            outcome(
                Verdict::Deferred,
                "greylisted \"try later\"",
                Some("451 4.7.1 later\nsecond line"),
            ),
        ];
        let line = DeliveryLine {
            id: 1,
            domain: "example.org",
            mx: None,
            ip: None,
            tls: None,
            policy: NO_ROUTE_POLICY,
            outcomes: &outcomes,
        }
        .to_string();
        assert!(
            line.starts_with(
                "delivery deferred id=1 domain=example.org mx=- ip=- tls=none cipher=- policy=- "
            ),
            "{line}"
        );
        assert!(
            line.ends_with(
                "reason=\"greylisted 'try later'\" reply=\"451 4.7.1 later second line\""
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn failures_alone_make_the_line_bounced() {
        let outcomes = [outcome(
            Verdict::Failed { status: (5, 1, 10) },
            "null MX",
            None,
        )];
        let line = DeliveryLine {
            id: 2,
            domain: "example.org",
            mx: None,
            ip: None,
            tls: None,
            policy: NO_ROUTE_POLICY,
            outcomes: &outcomes,
        }
        .to_string();
        assert!(line.starts_with("delivery bounced id=2 "), "{line}");
        assert!(line.ends_with("reason=\"null MX\" reply=\"-\""), "{line}");
    }

    #[test]
    fn remote_words_with_line_breaks_stay_on_one_line() {
        let outcomes = [outcome(
            Verdict::Deferred,
            "mx [192.0.2.1]: garbage\r\ndelivery delivered id=9",
            Some("421 4.3.0 bye\r\nfake\u{2028}line\u{85}"),
        )];
        let line = DeliveryLine {
            id: 3,
            domain: "example.org",
            mx: Some("mx.example.org"),
            ip: Some(IpAddr::from([192, 0, 2, 1])),
            tls: None,
            policy: "policy=mta-sts-testing verified=no check=\"validation-failure: not valid for \r\nevil\"",
            outcomes: &outcomes,
        }
        .to_string();
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(
            !line.contains(['\r', '\n', '\u{2028}', '\u{85}']),
            "{line:?}"
        );
        assert!(
            line.contains("check=\"validation-failure: not valid for   evil\""),
            "{line}"
        );
    }
}
