//! The session's policy, exercised without any I/O: each test plays the driver's part by
//! hand (answering lookups, logins and deliveries).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::macros::datetime;

use super::*;
use crate::testing::{HOSTNAME, alice, bob, tls_info, tls_info_with_certificate};

const NOW: OffsetDateTime = datetime!(2024-03-05 07:08:09 UTC);

fn config(kind: ListenerKind) -> SessionConfig {
    SessionConfig {
        kind,
        hostname: HOSTNAME.into(),
        limits: SmtpLimits::default(),
        starttls: true,
        verify: false,
        sign: false,
    }
}

fn session(kind: ListenerKind, tls: Option<TlsInfo>) -> Session {
    Session::new(config(kind), "192.0.2.7".parse().unwrap(), tls)
}

/// The text of a reply action (all replies of a Close).
fn text(action: Action) -> String {
    match action {
        Action::Reply(reply) => reply.to_string(),
        Action::Close(replies) => replies.iter().map(ToString::to_string).collect(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn say(session: &mut Session, line: &str) -> String {
    text(session.on_line(format!("{line}\r\n").as_bytes()))
}

fn expect(session: &mut Session, line: &str, expected: &str) {
    let reply = say(session, line);
    assert!(
        reply.starts_with(expected),
        "{line:?} got {reply:?}, expected {expected:?}"
    );
}

/// RCPT with the driver's lookup answered by `lookup`.
fn rcpt(session: &mut Session, address: &str, lookup: RecipientLookup) -> String {
    match session.on_line(format!("RCPT TO:<{address}>\r\n").as_bytes()) {
        Action::LookupRecipient(query) => {
            assert_eq!(query.address, address);
            text(session.recipient_found(query, lookup))
        }
        other => text(other),
    }
}

/// AUTH PLAIN as alice, with the driver's login answered by `outcome`.
fn auth_plain(session: &mut Session, outcome: AuthOutcome) -> String {
    let response = STANDARD.encode(format!(
        "\0alice@example.test\0{}",
        crate::testing::PASSWORD
    ));
    match session.on_line(format!("AUTH PLAIN {response}\r\n").as_bytes()) {
        Action::Authenticate(credentials) => text(session.authenticated(credentials, outcome)),
        other => text(other),
    }
}

/// A submission session under TLS, EHLO'd and logged in as alice.
fn logged_in() -> Session {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    expect(&mut s, "EHLO client.example.org", "250-");
    assert_eq!(
        auth_plain(&mut s, AuthOutcome::Accepted(alice())),
        "235 2.7.0 Authentication successful\r\n"
    );
    s
}

/// Sends DATA with `message` (already dot-stuffed, ending in CRLF.CRLF) and returns the
/// delivery the session asks for.
fn data(session: &mut Session, message: &[u8]) -> Outgoing {
    let Action::ReceiveData(go_ahead, mut receiver) = session.on_line(b"DATA\r\n") else {
        panic!("DATA refused")
    };
    assert_eq!(
        go_ahead.to_string(),
        "354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    );
    let (consumed, complete) = receiver.feed(message);
    assert!(complete && consumed == message.len());
    match session.data_received(receiver, NOW) {
        Action::Deliver(outgoing) => outgoing,
        other => panic!("no delivery: {other:?}"),
    }
}

fn ehlo_lines(kind: ListenerKind, tls: Option<TlsInfo>) -> Vec<String> {
    let mut s = session(kind, tls);
    say(&mut s, "EHLO client.example.org")
        .lines()
        .map(|l| l[4..].to_string())
        .collect()
}

#[test]
fn greeting_names_the_host() {
    let s = session(ListenerKind::Mx, None);
    assert_eq!(
        s.greeting().to_string(),
        "220 mx.example.test ESMTP sealpost\r\n"
    );
}

#[test]
fn ehlo_on_mx_offers_starttls_but_not_auth() {
    let lines = ehlo_lines(ListenerKind::Mx, None);
    assert_eq!(
        lines,
        [
            HOSTNAME,
            "PIPELINING",
            "SIZE 33554432",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
            "STARTTLS"
        ]
    );
    let lines = ehlo_lines(ListenerKind::Mx, Some(tls_info()));
    assert!(
        !lines
            .iter()
            .any(|l| l == "STARTTLS" || l.starts_with("AUTH"))
    );
}

#[test]
fn ehlo_reply_has_dash_on_all_but_the_last_line() {
    let mut s = session(ListenerKind::Mx, None);
    let reply = say(&mut s, "EHLO c");
    assert!(reply.starts_with("250-mx.example.test\r\n250-PIPELINING\r\n"));
    assert!(reply.ends_with("250 STARTTLS\r\n"), "{reply}");
}

#[test]
fn ehlo_on_submission_offers_auth_only_under_tls() {
    let plain = ehlo_lines(ListenerKind::Submission, None);
    assert!(plain.contains(&"STARTTLS".to_string()));
    assert!(!plain.iter().any(|l| l.starts_with("AUTH")));

    let tls = ehlo_lines(ListenerKind::Submission, Some(tls_info()));
    assert!(!tls.contains(&"STARTTLS".to_string()));
    assert!(tls.contains(&"AUTH PLAIN LOGIN".to_string()), "{tls:?}");
}

#[test]
fn ehlo_on_submissions_never_offers_starttls() {
    let lines = ehlo_lines(ListenerKind::Submissions, Some(tls_info()));
    assert!(!lines.contains(&"STARTTLS".to_string()));
    assert!(lines.contains(&"AUTH PLAIN LOGIN".to_string()));
    let mut s = session(ListenerKind::Submissions, Some(tls_info()));
    expect(&mut s, "STARTTLS", "503 5.5.1");
}

#[test]
fn ehlo_offers_external_only_with_a_verified_client_certificate() {
    let lines = ehlo_lines(
        ListenerKind::Submissions,
        Some(tls_info_with_certificate("alice@example.test")),
    );
    assert!(
        lines.contains(&"AUTH PLAIN LOGIN EXTERNAL".to_string()),
        "{lines:?}"
    );

    let mut unverified = tls_info_with_certificate("alice@example.test");
    if let Some(cert) = unverified.client_cert.as_mut() {
        cert.verified = false;
    }
    let lines = ehlo_lines(ListenerKind::Submissions, Some(unverified.clone()));
    assert!(lines.contains(&"AUTH PLAIN LOGIN".to_string()), "{lines:?}");
    let mut s = session(ListenerKind::Submissions, Some(unverified));
    say(&mut s, "EHLO c");
    expect(&mut s, "AUTH EXTERNAL =", "504 5.5.4");
}

#[test]
fn helo_gets_a_one_line_reply() {
    let mut s = session(ListenerKind::Mx, None);
    assert_eq!(say(&mut s, "HELO client"), "250 mx.example.test\r\n");
}

#[test]
fn simple_commands() {
    let mut s = session(ListenerKind::Mx, None);
    assert_eq!(say(&mut s, "NOOP"), "250 2.0.0 OK\r\n");
    assert_eq!(say(&mut s, "RSET"), "250 2.0.0 OK\r\n");
    expect(&mut s, "VRFY alice", "252 2.5.0 ");
    expect(&mut s, "HELP", "214 2.0.0 ");
    expect(&mut s, "EXPN list", "502 5.5.1 ");
    expect(&mut s, "FOO", "500 5.5.1 ");
    expect(&mut s, "MAIL FROM:<a", "501 5.");
    match s.on_line(b"QUIT\r\n") {
        Action::Close(replies) => {
            assert_eq!(replies.len(), 1);
            assert_eq!(
                replies[0].to_string(),
                "221 2.0.0 mx.example.test closing connection\r\n"
            );
        }
        other => panic!("QUIT did not close: {other:?}"),
    }
}

#[test]
fn mail_before_helo_is_out_of_sequence() {
    let mut s = session(ListenerKind::Mx, None);
    expect(&mut s, "MAIL FROM:<a@remote.test>", "503 5.5.1");
    expect(&mut s, "RCPT TO:<alice@example.test>", "503 5.5.1");
    expect(&mut s, "DATA", "503 5.5.1");
}

#[test]
fn mx_accepts_mail_for_local_accounts() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO client.example.org");
    expect(&mut s, "MAIL FROM:<someone@remote.test>", "250 2.1.0");
    assert_eq!(
        rcpt(
            &mut s,
            "alice@example.test",
            RecipientLookup::Account(alice())
        ),
        "250 2.1.5 OK\r\n"
    );
    let outgoing = data(&mut s, b"Subject: hi\r\n\r\nhello\r\n.\r\n");
    assert_eq!(outgoing.delivery.local.len(), 1);
    assert_eq!(outgoing.delivery.local[0].account, alice().id);
    assert_eq!(outgoing.delivery.local[0].mailbox, "INBOX");
    assert_eq!(outgoing.delivery.outbound, None);
    let reply = text(s.delivered(&outgoing.id, true));
    assert_eq!(
        reply,
        format!("250 2.0.0 OK: queued as {}\r\n", outgoing.id)
    );
    assert_eq!(s.messages_accepted(), 1);
}

#[test]
fn mx_accepts_the_null_sender() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    expect(&mut s, "MAIL FROM:<>", "250 2.1.0");
}

#[test]
fn mx_unknown_local_recipient_is_550_5_1_1() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    assert_eq!(
        rcpt(&mut s, "nobody@example.test", RecipientLookup::UnknownLocal),
        "550 5.1.1 mailbox unavailable\r\n"
    );
}

#[test]
fn mx_refuses_relay_without_auth() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    assert_eq!(
        rcpt(&mut s, "victim@elsewhere.test", RecipientLookup::Remote),
        "554 5.7.1 relay access denied\r\n"
    );
    // Still none accepted: DATA has nobody to deliver to.
    expect(&mut s, "DATA", "554 5.5.1");
}

#[test]
fn mx_refuses_auth() {
    let mut s = session(ListenerKind::Mx, Some(tls_info()));
    say(&mut s, "EHLO c");
    expect(&mut s, "AUTH PLAIN AGFsaWNlAHB3", "502 5.5.1");
}

#[test]
fn recipient_lookup_failure_is_temporary() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    assert_eq!(
        rcpt(&mut s, "alice@example.test", RecipientLookup::Unavailable),
        "451 4.3.0 temporary failure, try again later\r\n"
    );
}

#[test]
fn auth_refused_before_tls_on_submission() {
    let mut s = session(ListenerKind::Submission, None);
    say(&mut s, "EHLO c");
    assert_eq!(
        say(&mut s, "AUTH PLAIN AGFsaWNlAHB3"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    expect(&mut s, "AUTH LOGIN", "538 5.7.11");
}

#[test]
fn mail_before_auth_on_submission_is_530() {
    for tls in [None, Some(tls_info())] {
        let mut s = session(ListenerKind::Submission, tls);
        say(&mut s, "EHLO c");
        assert_eq!(
            say(&mut s, "MAIL FROM:<alice@example.test>"),
            "530 5.7.0 Authentication required\r\n"
        );
    }
}

#[test]
fn auth_plain_with_initial_response_logs_in() {
    let mut s = session(ListenerKind::Submissions, Some(tls_info()));
    say(&mut s, "EHLO c");
    let response = STANDARD.encode("\0alice@example.test\0pw");
    let Action::Authenticate(credentials) =
        s.on_line(format!("AUTH PLAIN {response}\r\n").as_bytes())
    else {
        panic!("no login")
    };
    assert_eq!(
        credentials,
        Credentials::Password {
            username: "alice@example.test".into(),
            password: "pw".into()
        }
    );
    assert_eq!(
        text(s.authenticated(credentials, AuthOutcome::Accepted(alice()))),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(s.user(), Some("alice@example.test"));
    expect(&mut s, "AUTH PLAIN =", "503 5.5.1");
}

#[test]
fn auth_plain_without_initial_response_takes_the_next_line() {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    say(&mut s, "EHLO c");
    assert_eq!(say(&mut s, "AUTH PLAIN"), "334 \r\n");
    assert_eq!(s.line_limit(), crate::auth::MAX_RESPONSE_LINE);
    let response = STANDARD.encode("\0alice@example.test\0pw");
    let Action::Authenticate(Credentials::Password { username, .. }) =
        s.on_line(format!("{response}\r\n").as_bytes())
    else {
        panic!("no login")
    };
    assert_eq!(username, "alice@example.test");
    assert_eq!(s.line_limit(), 512);
}

#[test]
fn auth_login_asks_twice() {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    say(&mut s, "EHLO c");
    assert_eq!(say(&mut s, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        say(&mut s, &STANDARD.encode("alice@example.test")),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let Action::Authenticate(credentials) =
        s.on_line(format!("{}\r\n", STANDARD.encode("pw")).as_bytes())
    else {
        panic!("no login")
    };
    assert_eq!(
        text(s.authenticated(credentials, AuthOutcome::Rejected)),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    assert_eq!(s.user(), None);
}

#[test]
fn auth_cancel_and_bad_base64_are_501() {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    say(&mut s, "EHLO c");
    say(&mut s, "AUTH LOGIN");
    assert_eq!(say(&mut s, "*"), "501 5.7.0 authentication cancelled\r\n");
    // The exchange is over: the next line is a command again.
    expect(&mut s, "NOOP", "250");
    say(&mut s, "AUTH PLAIN");
    expect(&mut s, "not-base64!", "501 5.5.2");
    expect(&mut s, "AUTH PLAIN ???", "501 5.5.2");
}

#[test]
fn auth_throttled_is_454() {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    say(&mut s, "EHLO c");
    assert_eq!(
        auth_plain(&mut s, AuthOutcome::Throttled),
        "454 4.7.0 too many failed logins, try again later\r\n"
    );
    assert_eq!(
        auth_plain(&mut s, AuthOutcome::Unavailable),
        "454 4.7.0 temporary authentication failure\r\n"
    );
}

#[test]
fn auth_unknown_mechanism_is_504() {
    let mut s = session(ListenerKind::Submission, Some(tls_info()));
    say(&mut s, "EHLO c");
    expect(&mut s, "AUTH CRAM-MD5", "504 5.5.4");
}

#[test]
fn auth_external_uses_the_client_certificate() {
    let mut s = session(
        ListenerKind::Submissions,
        Some(tls_info_with_certificate("alice@example.test")),
    );
    say(&mut s, "EHLO c");
    assert_eq!(s.certificate_identities(), ["alice@example.test"]);
    let Action::Authenticate(credentials) = s.on_line(b"AUTH EXTERNAL =\r\n") else {
        panic!("no login")
    };
    assert_eq!(credentials, Credentials::Certificate { authzid: None });
    expect_text(
        s.authenticated(credentials, AuthOutcome::Accepted(alice())),
        "235 2.7.0",
    );
}

#[test]
fn auth_external_authzid_must_match_the_certificate_account() {
    let mut s = session(
        ListenerKind::Submissions,
        Some(tls_info_with_certificate("alice@example.test")),
    );
    say(&mut s, "EHLO c");
    assert_eq!(say(&mut s, "AUTH EXTERNAL"), "334 \r\n");
    let authzid = STANDARD.encode("bob@example.test");
    let Action::Authenticate(credentials) = s.on_line(format!("{authzid}\r\n").as_bytes()) else {
        panic!("no login")
    };
    expect_text(
        s.authenticated(credentials, AuthOutcome::Accepted(alice())),
        "535 5.7.8",
    );
    assert_eq!(s.user(), None);

    let authzid = STANDARD.encode("Alice@Example.test");
    let Action::Authenticate(credentials) =
        s.on_line(format!("AUTH EXTERNAL {authzid}\r\n").as_bytes())
    else {
        panic!("no login")
    };
    expect_text(
        s.authenticated(credentials, AuthOutcome::Accepted(alice())),
        "235 2.7.0",
    );
}

fn expect_text(action: Action, expected: &str) {
    let reply = text(action);
    assert!(
        reply.starts_with(expected),
        "got {reply:?}, expected {expected:?}"
    );
}

#[test]
fn mail_from_must_be_owned_on_submission() {
    let mut s = logged_in();
    assert_eq!(
        say(&mut s, "MAIL FROM:<bob@example.test>"),
        "553 5.7.1 sender address not owned by the authenticated user\r\n"
    );
    expect(&mut s, "MAIL FROM:<>", "553 5.7.1");
    expect(&mut s, "MAIL FROM:<Alice@EXAMPLE.test>", "250 2.1.0");
}

#[test]
fn submission_delivers_local_to_inbox_and_queues_the_rest() {
    let mut s = logged_in();
    say(&mut s, "MAIL FROM:<alice@example.test>");
    assert_eq!(
        rcpt(&mut s, "bob@example.test", RecipientLookup::Account(bob())),
        "250 2.1.5 OK\r\n"
    );
    assert_eq!(
        rcpt(&mut s, "carol@remote.test", RecipientLookup::Remote),
        "250 2.1.5 OK\r\n"
    );
    let outgoing = data(
        &mut s,
        b"Date: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n.\r\n",
    );
    let delivery = outgoing.delivery;
    assert_eq!(delivery.local.len(), 1);
    assert_eq!(delivery.local[0].account, bob().id);
    assert_eq!(delivery.local[0].mailbox, "INBOX");
    let outbound = delivery.outbound.expect("queued");
    assert_eq!(outbound.sender, "alice@example.test");
    assert_eq!(outbound.recipients, ["carol@remote.test"]);
    let raw = String::from_utf8(delivery.raw.to_vec()).unwrap();
    let (received, rest) = raw
        .split_once("; Tue, 05 Mar 2024 07:08:09 +0000\r\n")
        .unwrap();
    assert!(
        received.contains("with ESMTPSA (TLSv1.3 TLS_AES_256_GCM_SHA384)"),
        "{received}"
    );
    assert!(
        !received.contains("\tfor "),
        "two recipients: no for clause: {received}"
    );
    assert_eq!(
        rest,
        "Date: Mon, 4 Mar 2024 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n"
    );
}

#[test]
fn submission_adds_message_id_and_date_only_when_missing() {
    let mut s = logged_in();
    say(&mut s, "MAIL FROM:<alice@example.test>");
    rcpt(&mut s, "bob@example.test", RecipientLookup::Account(bob()));
    let outgoing = data(&mut s, b"Subject: x\r\n\r\nbody\r\n.\r\n");
    let raw = String::from_utf8(outgoing.delivery.raw.to_vec()).unwrap();
    let after_received = raw.split_once("+0000\r\n").unwrap().1;
    let (date, rest) = after_received.split_once("\r\n").unwrap();
    assert_eq!(date, "Date: Tue, 05 Mar 2024 07:08:09 +0000");
    let (message_id, rest) = rest.split_once("\r\n").unwrap();
    assert!(message_id.starts_with("Message-ID: <"), "{message_id}");
    assert!(message_id.ends_with("@mx.example.test>"), "{message_id}");
    assert_eq!(rest, "Subject: x\r\n\r\nbody\r\n");
}

#[test]
fn mx_never_adds_message_id_or_date() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO client.example.org");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    let outgoing = data(&mut s, b"Subject: x\r\n\r\nbody\r\n.\r\n");
    let raw = String::from_utf8(outgoing.delivery.raw.to_vec()).unwrap();
    let expected = format!(
        "Received: from client.example.org ([192.0.2.7])\r\n\
         \tby mx.example.test with ESMTP\r\n\
         \tid {}\r\n\
         \tfor <alice@example.test>; Tue, 05 Mar 2024 07:08:09 +0000\r\n\
         Subject: x\r\n\r\nbody\r\n",
        outgoing.id
    );
    assert_eq!(raw, expected);
}

#[test]
fn received_protocol_reflects_helo_and_tls() {
    let mut s = session(ListenerKind::Mx, Some(tls_info()));
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    let raw = data(&mut s, b".\r\n").delivery.raw;
    assert!(
        String::from_utf8_lossy(&raw).contains("with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n")
    );

    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "HELO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    let raw = data(&mut s, b".\r\n").delivery.raw;
    assert!(String::from_utf8_lossy(&raw).contains("\tby mx.example.test with SMTP\r\n"));
}

#[test]
fn starttls_resets_session_state() {
    let mut s = session(ListenerKind::Submission, None);
    say(&mut s, "EHLO c");
    match s.on_line(b"STARTTLS\r\n") {
        Action::StartTls(reply) => {
            assert_eq!(reply.to_string(), "220 2.0.0 Ready to start TLS\r\n")
        }
        other => panic!("no STARTTLS: {other:?}"),
    }
    s.tls_started(tls_info());
    // No EHLO carried over.
    expect(&mut s, "AUTH PLAIN =", "503 5.5.1");
    expect(&mut s, "MAIL FROM:<alice@example.test>", "503 5.5.1");
    say(&mut s, "EHLO c");
    expect(&mut s, "STARTTLS", "503 5.5.1");
}

#[test]
fn starttls_forgets_transaction_and_login() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    assert!(matches!(s.on_line(b"STARTTLS\r\n"), Action::StartTls(_)));
    s.tls_started(tls_info());
    say(&mut s, "EHLO c");
    expect(&mut s, "RCPT TO:<alice@example.test>", "503 5.5.1");
    expect(&mut s, "DATA", "503 5.5.1");

    let mut s = logged_in();
    s.tls = None; // pretend the login happened on a plaintext session that then upgrades
    assert!(matches!(s.on_line(b"STARTTLS\r\n"), Action::StartTls(_)));
    s.tls_started(tls_info());
    assert_eq!(s.user(), None);
}

#[test]
fn starttls_is_not_offered_without_an_acceptor() {
    let mut config = config(ListenerKind::Mx);
    config.starttls = false;
    let mut s = Session::new(config, "192.0.2.7".parse().unwrap(), None);
    assert!(!say(&mut s, "EHLO c").contains("STARTTLS"));
    expect(&mut s, "STARTTLS", "502 5.5.1");
}

#[test]
fn mail_size_parameter_over_the_limit_is_552() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    let too_big = SmtpLimits::default().max_message_size + 1;
    assert_eq!(
        say(&mut s, &format!("MAIL FROM:<a@remote.test> SIZE={too_big}")),
        "552 5.3.4 message too big\r\n"
    );
    expect(&mut s, "MAIL FROM:<a@remote.test> SIZE=1000", "250");
}

#[test]
fn too_many_recipients_is_452() {
    let mut config = config(ListenerKind::Mx);
    config.limits.max_recipients = 2;
    let mut s = Session::new(config, "192.0.2.7".parse().unwrap(), None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    rcpt(&mut s, "bob@example.test", RecipientLookup::Account(bob()));
    assert_eq!(
        rcpt(&mut s, "carol@example.test", RecipientLookup::UnknownLocal),
        "452 4.5.3 too many recipients\r\n"
    );
}

#[test]
fn too_many_errors_close_with_421() {
    let mut config = config(ListenerKind::Mx);
    config.limits.max_errors = 3;
    let mut s = Session::new(config, "192.0.2.7".parse().unwrap(), None);
    expect(&mut s, "FOO", "500");
    expect(&mut s, "NOOP", "250");
    expect(&mut s, "BAR", "500");
    match s.on_line(b"BAZ\r\n") {
        Action::Close(replies) => {
            assert_eq!(replies[0].code(), 500);
            assert_eq!(replies[1].to_string(), "421 4.7.0 too many errors\r\n");
        }
        other => panic!("not closed: {other:?}"),
    }
}

#[test]
fn line_too_long_is_500_5_5_2_and_the_session_goes_on() {
    let mut s = session(ListenerKind::Mx, None);
    assert_eq!(text(s.on_line_too_long()), "500 5.5.2 line too long\r\n");
    expect(&mut s, "NOOP", "250");
}

#[test]
fn non_ascii_addresses_need_smtputf8() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    expect(&mut s, "MAIL FROM:<jörg@remote.test>", "553 5.6.7");
    expect(&mut s, "MAIL FROM:<jörg@remote.test> SMTPUTF8", "250");
    say(&mut s, "RSET");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    expect(&mut s, "RCPT TO:<jörg@example.test>", "553 5.6.7");
}

/// BDAT with `chunk` as its octets; returns the session's next action.
fn bdat(s: &mut Session, chunk: &[u8], last: bool) -> Action {
    let line = if last {
        format!("BDAT {} LAST\r\n", chunk.len())
    } else {
        format!("BDAT {}\r\n", chunk.len())
    };
    let Action::ReceiveChunk(mut receiver) = s.on_line(line.as_bytes()) else {
        panic!("BDAT did not read its chunk")
    };
    assert_eq!(receiver.feed(chunk), chunk.len());
    assert!(receiver.is_complete());
    s.chunk_received(receiver, NOW)
}

#[test]
fn bdat_chunks_make_one_message() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    assert_eq!(
        text(bdat(&mut s, b"Subject: x\r\n\r\nbin\0\xff", false)),
        "250 2.0.0 19 octets received\r\n"
    );
    let Action::Deliver(outgoing) = bdat(&mut s, b"ary\r\n", true) else {
        panic!("not delivered")
    };
    assert!(
        outgoing
            .delivery
            .raw
            .ends_with(b"\r\nSubject: x\r\n\r\nbin\0\xffary\r\n")
    );
}

#[test]
fn data_and_bdat_do_not_mix() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    expect_text(bdat(&mut s, b"part\r\n", false), "250");
    expect(&mut s, "DATA", "503 5.5.1");
    expect(&mut s, "RCPT TO:<bob@example.test>", "503 5.5.1");
    // The transaction is still there and can finish with BDAT.
    assert!(matches!(bdat(&mut s, b"", true), Action::Deliver(_)));
}

#[test]
fn bdat_without_a_transaction_still_consumes_its_chunk() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    expect_text(bdat(&mut s, b"MAIL FROM:<x@y>\r\n", false), "503 5.5.1");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    expect_text(bdat(&mut s, b"x", true), "554 5.5.1");
}

#[test]
fn bdat_with_bare_lf_is_refused_at_last() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    expect_text(bdat(&mut s, b"a\nb", false), "250");
    assert_eq!(
        text(bdat(&mut s, b"\r\n", true)),
        "550 5.6.0 bare CR or LF in message\r\n"
    );
    // The transaction is over.
    expect(&mut s, "DATA", "503 5.5.1");
}

#[test]
fn bdat_over_the_size_limit_is_552_per_chunk() {
    let mut config = config(ListenerKind::Mx);
    config.limits.max_message_size = 10;
    let mut s = Session::new(config, "192.0.2.7".parse().unwrap(), None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    expect_text(bdat(&mut s, b"12345678", false), "250");
    assert_eq!(
        text(bdat(&mut s, b"9012345", false)),
        "552 5.3.4 message too big\r\n"
    );
    expect_text(bdat(&mut s, b"x", true), "552 5.3.4");
    expect(&mut s, "MAIL FROM:<a@remote.test>", "250");
}

#[test]
fn failed_delivery_is_451_and_not_counted() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    let outgoing = data(&mut s, b"x\r\n.\r\n");
    assert_eq!(
        text(s.delivered(&outgoing.id, false)),
        "451 4.3.0 temporary failure, try again later\r\n"
    );
    assert_eq!(s.messages_accepted(), 0);
}

#[test]
fn refused_message_ends_the_transaction() {
    let mut s = session(ListenerKind::Mx, None);
    say(&mut s, "EHLO c");
    say(&mut s, "MAIL FROM:<a@remote.test>");
    rcpt(
        &mut s,
        "alice@example.test",
        RecipientLookup::Account(alice()),
    );
    let Action::ReceiveData(_, mut receiver) = s.on_line(b"DATA\r\n") else {
        panic!()
    };
    receiver.feed(b"a\n.\nb\r\n.\r\n");
    assert_eq!(
        text(s.data_received(receiver, NOW)),
        "550 5.6.0 bare CR or LF in message\r\n"
    );
    expect(&mut s, "DATA", "503 5.5.1");
}

#[test]
fn requiretls_is_offered_only_under_tls_on_every_port() {
    for kind in [ListenerKind::Mx, ListenerKind::Submission] {
        let plain = ehlo_lines(kind, None);
        assert!(
            !plain.contains(&"REQUIRETLS".to_string()),
            "{kind:?} {plain:?}"
        );
    }
    for kind in [
        ListenerKind::Mx,
        ListenerKind::Submission,
        ListenerKind::Submissions,
    ] {
        let tls = ehlo_lines(kind, Some(tls_info()));
        assert!(tls.contains(&"REQUIRETLS".to_string()), "{kind:?} {tls:?}");
    }
}

#[test]
fn requiretls_in_plaintext_is_530_5_7_10() {
    let mut s = session(ListenerKind::Mx, None);
    expect(&mut s, "EHLO client.example.org", "250-");
    assert_eq!(
        say(&mut s, "MAIL FROM:<a@remote.test> REQUIRETLS"),
        "530 5.7.10 REQUIRETLS needs a TLS session\r\n"
    );
    // No transaction was started: a plain MAIL is fine.
    expect(&mut s, "MAIL FROM:<a@remote.test>", "250 2.1.0");
}

#[test]
fn requiretls_under_tls_marks_the_queued_copy() {
    for (parameter, required) in [(" REQUIRETLS", true), ("", false)] {
        let mut s = logged_in();
        expect(
            &mut s,
            &format!("MAIL FROM:<alice@example.test>{parameter}"),
            "250 2.1.0",
        );
        assert_eq!(
            rcpt(&mut s, "carol@remote.test", RecipientLookup::Remote),
            "250 2.1.5 OK\r\n"
        );
        let outgoing = data(&mut s, b"Subject: x\r\n\r\nhi\r\n.\r\n");
        let outbound = outgoing.delivery.outbound.expect("queued");
        assert_eq!(outbound.require_tls, required, "{parameter:?}");
    }
}

#[test]
fn requiretls_is_forgotten_with_the_transaction() {
    let mut s = logged_in();
    expect(&mut s, "MAIL FROM:<alice@example.test> REQUIRETLS", "250");
    expect(&mut s, "RSET", "250");
    expect(&mut s, "MAIL FROM:<alice@example.test>", "250");
    rcpt(&mut s, "carol@remote.test", RecipientLookup::Remote);
    let outgoing = data(&mut s, b"hi\r\n.\r\n");
    assert!(!outgoing.delivery.outbound.expect("queued").require_tls);
}
