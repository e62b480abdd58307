use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_store::{MessageMeta, StoreError};

use super::*;
use crate::maildrop::tests::{mailbox, meta};

const HOST: &str = "mail.example.test";

fn tls() -> Security {
    Security::Tls {
        client_identities: Vec::new(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("replies are UTF-8")
}

/// Sends a line that must get a plain reply, and returns it.
fn reply(session: &mut Session, line: &str) -> String {
    match session.line(format!("{line}\r\n").as_bytes()) {
        Step::Reply(bytes) => text(&bytes),
        other => panic!("{line}: expected a reply, got {other:?}"),
    }
}

fn password(user: &str, password: &str) -> Step {
    Step::Login(Credentials::Password {
        user: user.into(),
        password: Secret::new(password),
    })
}

fn opened(messages: &[MessageMeta]) -> LoginOutcome {
    LoginOutcome::Opened {
        address: "alice@example.test".into(),
        maildrop: Maildrop::new(&mailbox(7, 42), messages),
    }
}

/// A session over TLS, logged in to a maildrop of three messages (UIDs 3, 5, 9).
fn logged_in() -> Session {
    let mut session = Session::new(HOST, tls(), 10);
    reply(&mut session, "USER alice@example.test");
    assert_eq!(
        session.line(b"PASS secret\r\n"),
        password("alice@example.test", "secret")
    );
    let step = session.login_finished(opened(&[meta(3, 100), meta(5, 200), meta(9, 300)]));
    assert_eq!(
        step,
        Step::Reply(b"+OK alice@example.test has 3 messages (600 octets)\r\n".to_vec())
    );
    session
}

#[test]
fn greeting_has_no_apop_timestamp() {
    let session = Session::new(HOST, Security::Plaintext, 10);
    assert_eq!(session.greeting(), b"+OK sealpost POP3 ready\r\n");
}

#[test]
fn user_refused_before_stls_on_port_110() {
    let mut session = Session::new(HOST, Security::Plaintext, 10);
    for line in [
        "USER alice@example.test",
        "PASS secret",
        "AUTH PLAIN AGEAYg==",
        "AUTH",
    ] {
        assert!(
            reply(&mut session, line).starts_with("-ERR [AUTH] "),
            "{line}"
        );
    }
}

#[test]
fn stls_on_port_110_asks_for_the_handshake() {
    let mut session = Session::new(HOST, Security::Plaintext, 10);
    assert_eq!(
        session.line(b"stls\r\n"),
        Step::StartTls(b"+OK begin TLS negotiation\r\n".to_vec())
    );
}

#[test]
fn stls_is_refused_once_tls_is_active() {
    let mut session = Session::new(HOST, tls(), 10);
    assert!(reply(&mut session, "STLS").starts_with("-ERR"));
}

#[test]
fn capa_before_stls_hides_user_and_plain() {
    let mut session = Session::new(HOST, Security::Plaintext, 10);
    let capa = reply(&mut session, "CAPA");
    assert!(capa.contains("\r\nSTLS\r\n"));
    assert!(!capa.contains("USER"));
    assert!(!capa.contains("SASL"));
    assert!(capa.ends_with("\r\n.\r\n"));
}

#[test]
fn capa_in_transaction_still_lists_the_login_capabilities() {
    let mut session = logged_in();
    let capa = reply(&mut session, "CAPA");
    assert!(capa.contains("\r\nUSER\r\n"));
    assert!(capa.contains("\r\nSASL PLAIN\r\n"));
}

#[test]
fn commands_are_case_insensitive() {
    let mut session = Session::new(HOST, tls(), 10);
    assert!(reply(&mut session, "capa").starts_with("+OK"));
    assert!(reply(&mut session, "uSeR alice@example.test").starts_with("+OK"));
    assert_eq!(
        session.line(b"pass secret\r\n"),
        password("alice@example.test", "secret")
    );
}

#[test]
fn unknown_command_is_refused_and_the_session_continues() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(
        reply(&mut session, "APOP alice 0123"),
        "-ERR unknown command\r\n"
    );
    assert!(reply(&mut session, "CAPA").starts_with("+OK"));
}

#[test]
fn too_many_errors_close_the_session() {
    let mut session = Session::new(HOST, tls(), 3);
    reply(&mut session, "BOGUS");
    reply(&mut session, "STAT");
    assert_eq!(
        session.line(b"XYZZY\r\n"),
        Step::Close(b"-ERR too many errors, closing connection\r\n".to_vec())
    );
    assert!(matches!(session.line(b"CAPA\r\n"), Step::Close(_)));
}

#[test]
fn line_too_long_is_refused_and_the_session_continues() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(session.max_line(), 255);
    match session.line_too_long() {
        Step::Reply(bytes) => assert!(text(&bytes).starts_with("-ERR line too long")),
        other => panic!("{other:?}"),
    }
    assert!(reply(&mut session, "CAPA").starts_with("+OK"));
}

#[test]
fn pass_without_user_is_refused() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(reply(&mut session, "PASS secret"), "-ERR USER first\r\n");
}

#[test]
fn user_is_accepted_whatever_the_name_and_a_failed_pass_does_not_say_why() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(
        reply(&mut session, "USER nobody@example.test"),
        "+OK send PASS\r\n"
    );
    assert_eq!(
        session.line(b"PASS x\r\n"),
        password("nobody@example.test", "x")
    );
    assert_eq!(
        session.login_finished(LoginOutcome::BadCredentials),
        Step::Reply(b"-ERR [AUTH] invalid credentials\r\n".to_vec())
    );
    // The USER is forgotten after a failed PASS.
    assert_eq!(reply(&mut session, "PASS x"), "-ERR USER first\r\n");
}

#[test]
fn throttled_login_is_a_temporary_failure() {
    let mut session = Session::new(HOST, tls(), 10);
    reply(&mut session, "USER alice@example.test");
    session.line(b"PASS x\r\n");
    match session.login_finished(LoginOutcome::Throttled {
        retry_after: Duration::from_secs(60),
    }) {
        Step::Reply(bytes) => assert!(text(&bytes).starts_with("-ERR [SYS/TEMP] ")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn second_login_to_a_locked_maildrop_is_in_use() {
    let mut session = Session::new(HOST, tls(), 10);
    reply(&mut session, "USER alice@example.test");
    session.line(b"PASS secret\r\n");
    match session.login_finished(LoginOutcome::InUse) {
        Step::Reply(bytes) => assert!(text(&bytes).starts_with("-ERR [IN-USE] ")),
        other => panic!("{other:?}"),
    }
    assert!(
        reply(&mut session, "STAT").starts_with("-ERR"),
        "still not logged in"
    );
}

#[test]
fn auth_plain_with_initial_response() {
    let mut session = Session::new(HOST, tls(), 10);
    let response = STANDARD.encode("\0alice@example.test\0pass word");
    assert_eq!(
        session.line(format!("AUTH PLAIN {response}\r\n").as_bytes()),
        password("alice@example.test", "pass word")
    );
}

#[test]
fn auth_plain_with_continuation() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(reply(&mut session, "auth plain"), "+ \r\n");
    assert!(session.max_line() > 255, "SASL responses may be long");
    let response = STANDARD.encode(format!("\0alice@example.test\0{}", "p".repeat(300)));
    assert_eq!(
        session.line(format!("{response}\r\n").as_bytes()),
        password("alice@example.test", &"p".repeat(300))
    );
    assert_eq!(session.max_line(), 255);
}

#[test]
fn auth_star_cancels() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(reply(&mut session, "AUTH PLAIN"), "+ \r\n");
    assert_eq!(
        reply(&mut session, "*"),
        "-ERR authentication cancelled\r\n"
    );
    assert!(
        reply(&mut session, "CAPA").starts_with("+OK"),
        "back to commands"
    );
}

#[test]
fn auth_plain_rejects_invalid_responses() {
    let mut session = Session::new(HOST, tls(), 10);
    assert!(reply(&mut session, "AUTH PLAIN !!!").starts_with("-ERR [AUTH] "));
    let foreign = STANDARD.encode("bob@example.test\0alice@example.test\0pw");
    assert!(reply(&mut session, &format!("AUTH PLAIN {foreign}")).starts_with("-ERR [AUTH] "));
}

#[test]
fn auth_with_an_unknown_mechanism_is_refused() {
    let mut session = Session::new(HOST, tls(), 10);
    assert!(reply(&mut session, "AUTH CRAM-MD5").starts_with("-ERR"));
    assert_eq!(reply(&mut session, "AUTH"), "+OK\r\nPLAIN\r\n.\r\n");
}

#[test]
fn auth_external_uses_the_verified_client_certificate() {
    let identities = vec!["alice@example.test".to_string()];
    let mut session = Session::new(
        HOST,
        Security::Tls {
            client_identities: identities.clone(),
        },
        10,
    );
    assert_eq!(
        reply(&mut session, "AUTH"),
        "+OK\r\nPLAIN\r\nEXTERNAL\r\n.\r\n"
    );
    assert_eq!(
        session.line(b"AUTH EXTERNAL =\r\n"),
        Step::Login(Credentials::Certificate {
            identities: identities.clone(),
            authzid: None,
        })
    );
    assert_eq!(reply(&mut session, "AUTH EXTERNAL"), "+ \r\n");
    let authzid = STANDARD.encode("alice@example.test");
    assert_eq!(
        session.line(format!("{authzid}\r\n").as_bytes()),
        Step::Login(Credentials::Certificate {
            identities,
            authzid: Some("alice@example.test".into()),
        })
    );
}

#[test]
fn auth_external_without_a_verified_certificate_is_refused() {
    let mut session = Session::new(HOST, tls(), 10);
    assert_eq!(
        reply(&mut session, "AUTH EXTERNAL ="),
        "-ERR [AUTH] no verified client certificate\r\n"
    );
}

#[test]
fn transaction_commands_are_refused_before_login() {
    let mut session = Session::new(HOST, tls(), 10);
    for line in [
        "STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL",
    ] {
        assert_eq!(
            reply(&mut session, line),
            "-ERR not valid before login\r\n",
            "{line}"
        );
    }
}

#[test]
fn login_commands_are_refused_after_login() {
    let mut session = logged_in();
    for line in ["USER bob", "PASS x", "AUTH PLAIN", "STLS"] {
        assert_eq!(
            reply(&mut session, line),
            "-ERR already logged in\r\n",
            "{line}"
        );
    }
}

#[test]
fn stat_list_and_uidl_describe_the_snapshot() {
    let mut session = logged_in();
    assert_eq!(reply(&mut session, "STAT"), "+OK 3 600\r\n");
    assert_eq!(
        reply(&mut session, "LIST"),
        "+OK 3 messages (600 octets)\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n"
    );
    assert_eq!(reply(&mut session, "LIST 2"), "+OK 2 200\r\n");
    assert_eq!(
        reply(&mut session, "UIDL"),
        "+OK unique-id listing follows\r\n1 42.3\r\n2 42.5\r\n3 42.9\r\n.\r\n"
    );
    assert_eq!(reply(&mut session, "UIDL 3"), "+OK 3 42.9\r\n");
    assert_eq!(reply(&mut session, "LIST 4"), "-ERR no such message\r\n");
    assert_eq!(reply(&mut session, "NOOP"), "+OK\r\n");
}

#[test]
fn deleted_messages_are_invisible() {
    let mut session = logged_in();
    assert_eq!(reply(&mut session, "DELE 2"), "+OK message 2 deleted\r\n");
    assert_eq!(
        reply(&mut session, "DELE 2"),
        "-ERR message 2 already deleted\r\n"
    );
    assert_eq!(reply(&mut session, "STAT"), "+OK 2 400\r\n");
    assert_eq!(
        reply(&mut session, "LIST"),
        "+OK 2 messages (400 octets)\r\n1 100\r\n3 300\r\n.\r\n"
    );
    assert_eq!(
        reply(&mut session, "UIDL"),
        "+OK unique-id listing follows\r\n1 42.3\r\n3 42.9\r\n.\r\n"
    );
    for line in ["LIST 2", "UIDL 2", "RETR 2", "TOP 2 0"] {
        assert_eq!(
            reply(&mut session, line),
            "-ERR no such message\r\n",
            "{line}"
        );
    }
}

#[test]
fn rset_undeletes_everything() {
    let mut session = logged_in();
    reply(&mut session, "DELE 1");
    reply(&mut session, "DELE 3");
    assert_eq!(
        reply(&mut session, "RSET"),
        "+OK maildrop has 3 messages (600 octets)\r\n"
    );
    assert_eq!(
        session.line(b"QUIT\r\n"),
        Step::Close(
            b"+OK mail.example.test POP3 server signing off (0 messages deleted)\r\n".to_vec()
        )
    );
}

#[test]
fn dele_takes_effect_only_at_quit() {
    let mut session = logged_in();
    reply(&mut session, "DELE 3");
    reply(&mut session, "DELE 1");
    assert_eq!(
        session.line(b"QUIT\r\n"),
        Step::Update(Deletions {
            mailbox: 7,
            uids: vec![3, 9],
        })
    );
    assert_eq!(
        session.updated(Ok(vec![3, 9])),
        Step::Close(
            b"+OK mail.example.test POP3 server signing off (2 messages deleted)\r\n".to_vec()
        )
    );
    assert_eq!(session.summary().deleted, 2);
}

#[test]
fn a_failed_update_says_so() {
    let mut session = logged_in();
    reply(&mut session, "DELE 1");
    assert!(matches!(session.line(b"QUIT\r\n"), Step::Update(_)));
    match session.updated(Err(StoreError::Closed)) {
        Step::Close(bytes) => assert!(text(&bytes).starts_with("-ERR [SYS/TEMP] ")),
        other => panic!("{other:?}"),
    }
    assert_eq!(session.summary().deleted, 0);
}

#[test]
fn quit_before_login_signs_off() {
    let mut session = Session::new(HOST, Security::Plaintext, 10);
    assert_eq!(
        session.line(b"QUIT\r\n"),
        Step::Close(b"+OK mail.example.test POP3 server signing off\r\n".to_vec())
    );
}

fn fetch(session: &mut Session, line: &str) -> Fetch {
    match session.line(format!("{line}\r\n").as_bytes()) {
        Step::Fetch(fetch) => fetch,
        other => panic!("{line}: expected a fetch, got {other:?}"),
    }
}

#[test]
fn retr_sends_the_size_and_the_dot_stuffed_message() {
    let mut session = logged_in();
    let request = fetch(&mut session, "RETR 1");
    assert_eq!(
        (request.mailbox, request.uid, request.top_lines),
        (7, 3, None)
    );
    let step = session.fetched(request, Ok(Some(b"Subject: a\r\n\r\n.hidden\r\n".to_vec())));
    assert_eq!(
        step,
        Step::Reply(b"+OK 100 octets\r\nSubject: a\r\n\r\n..hidden\r\n.\r\n".to_vec())
    );
    assert_eq!(session.summary().retrieved, 1);
}

#[test]
fn top_returns_headers_and_n_lines() {
    let mut session = logged_in();
    let request = fetch(&mut session, "TOP 2 1");
    assert_eq!((request.uid, request.top_lines), (5, Some(1)));
    let message = b"Subject: a\r\n\r\n.one\r\ntwo\r\n".to_vec();
    assert_eq!(
        session.fetched(request, Ok(Some(message))),
        Step::Reply(b"+OK top of message follows\r\nSubject: a\r\n\r\n..one\r\n.\r\n".to_vec())
    );
    assert_eq!(session.summary().retrieved, 0, "TOP is not a retrieval");
}

#[test]
fn retr_of_a_message_expunged_elsewhere_is_an_error() {
    let mut session = logged_in();
    let request = fetch(&mut session, "RETR 1");
    assert_eq!(
        session.fetched(request, Ok(None)),
        Step::Reply(b"-ERR message was removed by another session\r\n".to_vec())
    );
    let request = fetch(&mut session, "RETR 1");
    match session.fetched(request, Err(StoreError::Closed)) {
        Step::Reply(bytes) => assert!(text(&bytes).starts_with("-ERR [SYS/TEMP] ")),
        other => panic!("{other:?}"),
    }
}
