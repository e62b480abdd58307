//! The Received trace header every accepted message gets at its top (RFC 5321 §4.4), with
//! the protocol names of RFC 3848 and the TLS clause of RFC 8314 §4.3.

use std::net::IpAddr;

use sealpost_tls::TlsInfo;
use time::OffsetDateTime;

/// The `with` clause: how the message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HELO, no TLS, no AUTH.
    Smtp,
    Esmtp,
    /// ESMTP under TLS.
    Esmtps,
    /// ESMTP with AUTH.
    Esmtpa,
    /// ESMTP under TLS with AUTH.
    Esmtpsa,
}

impl Protocol {
    pub(crate) fn of(extended: bool, tls: bool, authenticated: bool) -> Self {
        match (tls, authenticated) {
            (true, true) => Protocol::Esmtpsa,
            (true, false) => Protocol::Esmtps,
            (false, true) => Protocol::Esmtpa,
            (false, false) if extended => Protocol::Esmtp,
            (false, false) => Protocol::Smtp,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Esmtp => "ESMTP",
            Protocol::Esmtps => "ESMTPS",
            Protocol::Esmtpa => "ESMTPA",
            Protocol::Esmtpsa => "ESMTPSA",
        }
    }
}

/// What a Received header records about one transaction.
pub(crate) struct Trace<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub protocol: Protocol,
    pub tls: Option<&'a TlsInfo>,
    pub id: &'a str,
    /// Named only when the message has exactly one recipient, so a copy does not reveal
    /// the other (possibly blind) recipients.
    pub recipient: Option<&'a str>,
    pub date: OffsetDateTime,
}

impl Trace<'_> {
    pub(crate) fn header(&self) -> String {
        let mut header = format!(
            "Received: from {} ([{}])\r\n\tby {} with {}",
            self.helo,
            self.peer.to_canonical(),
            self.hostname,
            self.protocol.as_str()
        );
        if let Some(tls) = self.tls {
            header.push_str(&format!(" ({})", tls.received_clause()));
        }
        header.push_str(&format!("\r\n\tid {}", self.id));
        if let Some(recipient) = self.recipient {
            header.push_str(&format!("\r\n\tfor <{recipient}>"));
        }
        header.push_str(&format!("; {}\r\n", rfc5322_date(self.date)));
        header
    }
}

/// `Tue, 01 Jul 2003 10:52:37 +0000` (RFC 5322 §3.3), in UTC.
pub(crate) fn rfc5322_date(date: OffsetDateTime) -> String {
    let date = date.to_offset(time::UtcOffset::UTC);
    let weekday = date.weekday().to_string();
    let month = date.month().to_string();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        &weekday[..3],
        date.day(),
        &month[..3],
        date.year(),
        date.hour(),
        date.minute(),
        date.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn trace(tls: Option<&TlsInfo>, protocol: Protocol, recipient: Option<&str>) -> String {
        Trace {
            helo: "client.example.org",
            peer: "192.0.2.7".parse().unwrap(),
            hostname: "mx.example.test",
            protocol,
            tls,
            id: "ABC123",
            recipient,
            date: datetime!(2024-03-05 07:08:09 UTC),
        }
        .header()
    }

    #[test]
    fn received_header_without_tls() {
        assert_eq!(
            trace(None, Protocol::Esmtp, Some("alice@example.test")),
            "Received: from client.example.org ([192.0.2.7])\r\n\
             \tby mx.example.test with ESMTP\r\n\
             \tid ABC123\r\n\
             \tfor <alice@example.test>; Tue, 05 Mar 2024 07:08:09 +0000\r\n"
        );
    }

    #[test]
    fn received_header_with_tls_names_version_and_cipher() {
        let tls = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            group: "X25519MLKEM768".into(),
            ..TlsInfo::default()
        };
        assert_eq!(
            trace(Some(&tls), Protocol::Esmtpsa, None),
            "Received: from client.example.org ([192.0.2.7])\r\n\
             \tby mx.example.test with ESMTPSA (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n\
             \tid ABC123; Tue, 05 Mar 2024 07:08:09 +0000\r\n"
        );
    }

    #[test]
    fn protocol_names_follow_rfc_3848() {
        assert_eq!(Protocol::of(false, false, false).as_str(), "SMTP");
        assert_eq!(Protocol::of(true, false, false).as_str(), "ESMTP");
        assert_eq!(Protocol::of(true, true, false).as_str(), "ESMTPS");
        assert_eq!(Protocol::of(true, false, true).as_str(), "ESMTPA");
        assert_eq!(Protocol::of(true, true, true).as_str(), "ESMTPSA");
    }

    #[test]
    fn ipv4_mapped_peer_is_shown_as_ipv4() {
        let header = Trace {
            helo: "h",
            peer: "::ffff:192.0.2.1".parse().unwrap(),
            hostname: "mx",
            protocol: Protocol::Esmtp,
            tls: None,
            id: "X",
            recipient: None,
            date: datetime!(2024-01-01 00:00:00 UTC),
        }
        .header();
        assert!(
            header.starts_with("Received: from h ([192.0.2.1])\r\n"),
            "{header}"
        );
    }

    #[test]
    fn date_is_rfc_5322() {
        assert_eq!(
            rfc5322_date(datetime!(2003-07-01 10:52:37 +2)),
            "Tue, 01 Jul 2003 08:52:37 +0000"
        );
    }
}
