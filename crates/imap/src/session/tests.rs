//! The session state machine against the in-memory store, without sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use sealpost_store::{Account, Delivery, LocalTarget, Login, LoginPolicy, Store};
use sealpost_tls::TlsInfo;

use super::*;
use crate::memory_store::MemoryStore;
use crate::parser::parse_command;
use crate::registry::SessionRegistry;

const USER: &str = "alice@example.test";
const PASSWORD: &str = "secret";

struct Harness {
    store: Arc<MemoryStore>,
    account: Account,
    env: Env,
}

impl Harness {
    async fn new() -> Self {
        Self::with_limits(ImapLimits::default()).await
    }

    async fn with_limits(limits: ImapLimits) -> Self {
        let store = MemoryStore::new();
        let account = store.add_account(USER, PASSWORD).await;
        let env = Env {
            store: store.clone(),
            login: Arc::new(Login::new(store.clone(), LoginPolicy::default())),
            limits,
            registry: Arc::new(SessionRegistry::default()),
        };
        Self {
            store,
            account,
            env,
        }
    }

    /// A session over TLS (as on port 993).
    fn session(&self) -> Session {
        Session::new(self.env.clone(), peer(), Some(TlsInfo::default()), false)
    }

    /// A session before STARTTLS on port 143.
    fn plaintext_session(&self) -> Session {
        Session::new(self.env.clone(), peer(), None, true)
    }

    async fn logged_in(&self) -> Session {
        let mut session = self.session();
        let reply = send(&mut session, "a LOGIN alice@example.test secret").await;
        assert!(reply.contains("a OK"), "{reply}");
        session
    }

    async fn selected(&self) -> Session {
        let mut session = self.logged_in().await;
        let reply = send(&mut session, "s SELECT INBOX").await;
        assert!(reply.contains("s OK [READ-WRITE]"), "{reply}");
        session
    }

    async fn deliver(&self, raw: &str) -> u32 {
        let delivered = self
            .store
            .deliver(Delivery {
                raw: Arc::new(raw.as_bytes().to_vec()),
                internal_date: 1_700_000_000,
                local: vec![LocalTarget {
                    account: self.account.id,
                    mailbox: "INBOX".into(),
                }],
                outbound: None,
            })
            .await
            .expect("deliver");
        delivered.messages[0].1
    }
}

fn peer() -> SocketAddr {
    "192.0.2.1:50000".parse().expect("address")
}

/// Runs one command line and returns everything the session answered.
async fn send(session: &mut Session, line: &str) -> String {
    let command = parse_command(format!("{line}\r\n").as_bytes()).expect("command parses");
    let mut out = Output::new(None);
    session.handle(command, &mut out).await.expect("no I/O");
    String::from_utf8_lossy(&out.buf).into_owned()
}

const MESSAGE: &str = "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n\
Subject: Lunch\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nSee you at noon.\r\n";

#[tokio::test]
async fn greeting_lists_capabilities_and_is_never_preauth() {
    let h = Harness::new().await;
    let greeting = String::from_utf8(h.plaintext_session().greeting()).unwrap();
    assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED"));
    assert!(greeting.ends_with("] sealpost ready\r\n"));
    assert!(!greeting.contains("AUTH=PLAIN"));
    let greeting = String::from_utf8(h.session().greeting()).unwrap();
    assert!(greeting.contains(" AUTH=PLAIN "));
    assert!(!greeting.contains("STARTTLS"));
}

#[tokio::test]
async fn before_tls_login_and_authenticate_are_refused() {
    let h = Harness::new().await;
    let mut session = h.plaintext_session();
    let reply = send(&mut session, "a LOGIN alice@example.test secret").await;
    assert_eq!(
        reply,
        "a NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS\r\n"
    );
    let reply = send(
        &mut session,
        "b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
    )
    .await;
    assert!(reply.starts_with("b NO [PRIVACYREQUIRED]"), "{reply}");
    let reply = send(&mut session, "c CAPABILITY").await;
    assert!(reply.contains("STARTTLS LOGINDISABLED"), "{reply}");
    assert_eq!(
        send(&mut session, "d STARTTLS").await,
        "d OK Begin TLS negotiation now\r\n"
    );
}

#[tokio::test]
async fn after_starttls_nothing_from_before_is_kept() {
    let h = Harness::new().await;
    let mut session = h.plaintext_session();
    send(&mut session, "a STARTTLS").await;
    session.tls_established(Some(TlsInfo::default()));
    let reply = send(&mut session, "b CAPABILITY").await;
    assert!(reply.contains("AUTH=PLAIN"), "{reply}");
    assert!(!reply.contains("STARTTLS"), "{reply}");
    assert!(send(&mut session, "c STARTTLS").await.starts_with("c BAD"));
    let reply = send(&mut session, "d LOGIN \"alice@example.test\" \"secret\"").await;
    assert!(
        reply.starts_with("d OK [CAPABILITY IMAP4rev1 IMAP4rev2"),
        "{reply}"
    );
}

#[tokio::test]
async fn wrong_password_is_refused_and_commands_need_authentication() {
    let h = Harness::new().await;
    let mut session = h.session();
    let reply = send(&mut session, "a LOGIN alice@example.test wrong").await;
    assert_eq!(reply, "a NO [AUTHENTICATIONFAILED] invalid credentials\r\n");
    let reply = send(&mut session, "b SELECT INBOX").await;
    assert_eq!(reply, "b BAD SELECT needs authentication\r\n");
}

#[tokio::test]
async fn authenticate_plain_with_initial_response_and_with_continuation() {
    let h = Harness::new().await;
    let mut session = h.session();
    // "\0alice@example.test\0secret"
    let reply = send(
        &mut session,
        "a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
    )
    .await;
    assert!(reply.starts_with("a OK [CAPABILITY"), "{reply}");

    let mut session = h.session();
    let command = parse_command(b"b AUTHENTICATE PLAIN\r\n").unwrap();
    let mut out = Output::new(None);
    let outcome = session.handle(command, &mut out).await.unwrap();
    assert_eq!(outcome, Outcome::SaslContinue);
    assert!(out.buf.is_empty());
    let (tag, completion) = session
        .sasl_response(b"AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n")
        .await;
    assert_eq!(tag, "b");
    assert_eq!(completion.status, crate::response::Status::Ok);
    assert_eq!(session.user(), Some(USER));

    let mut session = h.session();
    let command = parse_command(b"c AUTHENTICATE PLAIN\r\n").unwrap();
    session
        .handle(command, &mut Output::new(None))
        .await
        .unwrap();
    let (_, completion) = session.sasl_response(b"*\r\n").await;
    assert_eq!(completion.status, crate::response::Status::Bad);
}

#[tokio::test]
async fn external_needs_a_verified_certificate() {
    let h = Harness::new().await;
    let mut session = h.session();
    let reply = send(&mut session, "a AUTHENTICATE EXTERNAL =").await;
    assert!(reply.starts_with("a NO"), "{reply}");

    let tls = TlsInfo {
        client_cert: Some(sealpost_tls::ClientCert {
            subject: "CN=Alice".into(),
            verified: true,
            identities: vec![USER.into()],
        }),
        ..TlsInfo::default()
    };
    let mut session = Session::new(h.env.clone(), peer(), Some(tls), false);
    assert!(session.capabilities().contains("AUTH=EXTERNAL"));
    let reply = send(&mut session, "b AUTHENTICATE EXTERNAL =").await;
    assert!(reply.starts_with("b OK"), "{reply}");
    assert_eq!(session.user(), Some(USER));
}

#[tokio::test]
async fn sessions_per_account_are_limited() {
    let limits = ImapLimits {
        max_sessions_per_account: 2,
        ..ImapLimits::default()
    };
    let h = Harness::with_limits(limits).await;
    let first = h.logged_in().await;
    let _second = h.logged_in().await;
    let mut third = h.session();
    let reply = send(&mut third, "a LOGIN alice@example.test secret").await;
    assert!(reply.starts_with("a NO [LIMIT]"), "{reply}");
    drop(first);
    let reply = send(&mut third, "b LOGIN alice@example.test secret").await;
    assert!(reply.starts_with("b OK"), "{reply}");
}

#[tokio::test]
async fn select_reports_counts_and_uid_state() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    h.deliver(MESSAGE).await;
    let mut session = h.logged_in().await;
    let reply = send(&mut session, "a SELECT inbox").await;
    for expected in [
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
        "* 2 EXISTS\r\n",
        "* 0 RECENT\r\n",
        "* OK [UNSEEN 1] first unseen\r\n",
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] flags permitted\r\n",
        "* OK [UIDNEXT 3] predicted next UID\r\n",
        "a OK [READ-WRITE] SELECT completed\r\n",
    ] {
        assert!(
            reply.contains(expected),
            "{expected:?} missing from {reply}"
        );
    }
    assert!(reply.contains("* OK [UIDVALIDITY "), "{reply}");
    let reply = send(&mut session, "b EXAMINE INBOX").await;
    assert!(reply.contains("* OK [PERMANENTFLAGS ()]"), "{reply}");
    assert!(
        reply.ends_with("b OK [READ-ONLY] EXAMINE completed\r\n"),
        "{reply}"
    );
    let reply = send(&mut session, "c SELECT Nowhere").await;
    assert_eq!(reply, "c NO [NONEXISTENT] no such mailbox\r\n");
    assert!(matches!(session.state(), State::Authenticated(_)));
}

#[tokio::test]
async fn imap4rev2_select_has_no_recent_and_announces_closed() {
    let h = Harness::new().await;
    let mut session = h.logged_in().await;
    assert_eq!(
        send(&mut session, "a ENABLE IMAP4rev2").await,
        "* ENABLED IMAP4rev2\r\na OK ENABLE completed\r\n"
    );
    let reply = send(&mut session, "b SELECT INBOX").await;
    assert!(!reply.contains("RECENT"), "{reply}");
    assert!(reply.contains("* LIST () \"/\" \"INBOX\"\r\n"), "{reply}");
    let reply = send(&mut session, "c SELECT Sent").await;
    assert!(reply.starts_with("* OK [CLOSED]"), "{reply}");
}

#[tokio::test]
async fn append_is_fetched_back_byte_for_byte() {
    let h = Harness::new().await;
    let mut session = h.selected().await;
    let command = format!(
        "a APPEND INBOX (\\Seen $Work) \"14-Nov-2023 22:13:20 +0000\" {{{}+}}\r\n{MESSAGE}\r\n",
        MESSAGE.len()
    );
    let command = parse_command(command.as_bytes()).unwrap();
    let mut out = Output::new(None);
    session.handle(command, &mut out).await.unwrap();
    let reply = String::from_utf8(out.buf).unwrap();
    assert!(reply.contains("* 1 EXISTS\r\n"), "{reply}");
    let validity = h
        .store
        .mailbox(h.account.id, "INBOX")
        .await
        .unwrap()
        .unwrap()
        .uid_validity;
    assert!(
        reply.ends_with(&format!(
            "a OK [APPENDUID {validity} 1] APPEND completed\r\n"
        )),
        "{reply}"
    );
    let reply = send(
        &mut session,
        "b UID FETCH 1:* (BODY.PEEK[] FLAGS INTERNALDATE RFC822.SIZE)",
    )
    .await;
    let expected = format!(
        "* 1 FETCH (UID 1 FLAGS ($Work \\Seen) BODY[] {{{}}}\r\n{MESSAGE} \
         INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE {})\r\nb OK FETCH completed\r\n",
        MESSAGE.len(),
        MESSAGE.len()
    );
    assert_eq!(reply, expected);
}

#[tokio::test]
async fn append_to_a_missing_mailbox_says_trycreate() {
    let h = Harness::new().await;
    let mut session = h.logged_in().await;
    let reply = send(&mut session, "a APPEND Nowhere {3+}\r\nabc").await;
    assert_eq!(reply, "a NO [TRYCREATE] no such mailbox\r\n");
}

#[tokio::test]
async fn fetch_body_sets_seen_but_peek_and_examine_do_not() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    h.deliver(MESSAGE).await;
    let mut session = h.selected().await;
    let reply = send(
        &mut session,
        "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])",
    )
    .await;
    assert_eq!(
        reply,
        "* 1 FETCH (BODY[HEADER.FIELDS (\"Subject\")] {18}\r\nSubject: Lunch\r\n\r\n)\r\na OK FETCH completed\r\n"
    );
    let reply = send(&mut session, "b FETCH 1 FLAGS").await;
    assert!(reply.contains("FLAGS ()"), "{reply}");
    let reply = send(&mut session, "c FETCH 1 BODY[TEXT]").await;
    assert!(
        reply.starts_with("* 1 FETCH (FLAGS (\\Seen) BODY[TEXT] {18}\r\nSee you at noon.\r\n)"),
        "{reply}"
    );
    send(&mut session, "d EXAMINE INBOX").await;
    let reply = send(&mut session, "e FETCH 2 (BODY[] FLAGS)").await;
    assert!(reply.contains("FLAGS ()"), "{reply}");
    assert!(!reply.contains("\\Seen"), "{reply}");
}

#[tokio::test]
async fn fetch_envelope_structure_and_partial() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    let mut session = h.selected().await;
    let reply = send(
        &mut session,
        "a FETCH 1 (ENVELOPE BODYSTRUCTURE BODY.PEEK[]<0.4> RFC822.SIZE)",
    )
    .await;
    assert!(
        reply.contains("ENVELOPE (\"Tue, 14 Nov 2023 22:13:20 +0000\" \"Lunch\""),
        "{reply}"
    );
    assert!(
        reply.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\""),
        "{reply}"
    );
    assert!(reply.contains("BODY[]<0> {4}\r\nFrom"), "{reply}");
    let reply = send(&mut session, "b FETCH 1 FAST").await;
    assert!(
        reply.starts_with(
            "* 1 FETCH (FLAGS () INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE"
        ),
        "{reply}"
    );
    let reply = send(&mut session, "c FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])").await;
    assert!(
        reply.contains("BINARY[1] {18}\r\nSee you at noon.\r\n BINARY.SIZE[1] 18)"),
        "{reply}"
    );
}

#[tokio::test]
async fn store_reports_flags_and_honours_silent_and_unchangedsince() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    h.deliver(MESSAGE).await;
    let mut session = h.selected().await;
    assert_eq!(
        send(&mut session, "a STORE 1 +FLAGS (\\Flagged)").await,
        "* 1 FETCH (FLAGS (\\Flagged))\r\na OK STORE completed\r\n"
    );
    assert_eq!(
        send(&mut session, "b UID STORE 2 +FLAGS.SILENT (\\Deleted)").await,
        "b OK STORE completed\r\n"
    );
    let reply = send(&mut session, "c FETCH 1:2 (FLAGS MODSEQ)").await;
    let modseq_of_1: u64 = reply
        .split("MODSEQ (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .expect("a MODSEQ");
    // CONDSTORE is on now: the conditional store refuses the message changed since.
    let reply = send(
        &mut session,
        &format!("d STORE 1,2 (UNCHANGEDSINCE {modseq_of_1}) -FLAGS (\\Flagged \\Deleted)"),
    )
    .await;
    assert!(reply.starts_with("* 1 FETCH (FLAGS () MODSEQ ("), "{reply}");
    assert!(
        reply.ends_with("d OK [MODIFIED 2] conditional STORE failed for some messages\r\n"),
        "{reply}"
    );
}

#[tokio::test]
async fn search_answers_rev1_style_then_esearch() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.deliver(MESSAGE).await;
    }
    h.deliver("From: carol@example.test\r\nSubject: Other\r\n\r\nnothing\r\n")
        .await;
    let mut session = h.selected().await;
    send(&mut session, "a STORE 2 +FLAGS (\\Seen)").await;
    assert_eq!(
        send(&mut session, "b SEARCH UNSEEN SUBJECT lunch").await,
        "* SEARCH 1 3\r\nb OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(
            &mut session,
            "c UID SEARCH RETURN (MIN MAX COUNT) OR FROM carol SEEN"
        )
        .await,
        "* ESEARCH (TAG \"c\") UID MIN 2 MAX 4 COUNT 2\r\nc OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut session, "d SEARCH CHARSET KOI8-R ALL").await,
        "d NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset\r\n"
    );
    send(&mut session, "e ENABLE IMAP4rev2").await;
    assert_eq!(
        send(&mut session, "f SEARCH NOT SEEN").await,
        "* ESEARCH (TAG \"f\") ALL 1,3:4\r\nf OK SEARCH completed\r\n"
    );
    assert_eq!(
        send(&mut session, "g SEARCH BODY nonexistent").await,
        "* ESEARCH (TAG \"g\")\r\ng OK SEARCH completed\r\n"
    );
}

#[tokio::test]
async fn expunge_by_another_session_waits_until_the_protocol_allows_it() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.deliver(MESSAGE).await;
    }
    let mut watcher = h.selected().await;
    let mut actor = h.selected().await;
    send(&mut actor, "a STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        send(&mut actor, "b EXPUNGE").await,
        "* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n"
    );

    // During FETCH by sequence number the watcher hears of the flag change, not the
    // expunge: its message 3 is still message 3.
    let reply = send(&mut watcher, "c FETCH 3 UID").await;
    assert_eq!(reply, "* 3 FETCH (UID 3)\r\nc OK FETCH completed\r\n");
    let reply = send(&mut watcher, "d NOOP").await;
    assert_eq!(reply, "* 2 EXPUNGE\r\nd OK NOOP completed\r\n");
    assert_eq!(
        send(&mut watcher, "e FETCH 2 UID").await,
        "* 2 FETCH (UID 3)\r\ne OK FETCH completed\r\n"
    );
}

#[tokio::test]
async fn delivery_shows_up_as_exists_after_noop_and_qresync_uses_vanished() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    let mut session = h.logged_in().await;
    send(&mut session, "a ENABLE QRESYNC").await;
    send(&mut session, "b SELECT INBOX").await;
    h.deliver(MESSAGE).await;
    assert_eq!(
        send(&mut session, "c NOOP").await,
        "* 2 EXISTS\r\nc OK NOOP completed\r\n"
    );
    send(&mut session, "d STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    let reply = send(&mut session, "e EXPUNGE").await;
    assert_eq!(reply, "* VANISHED 1\r\ne OK EXPUNGE completed\r\n");
}

#[tokio::test]
async fn qresync_select_reports_vanished_earlier_and_changed_flags() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.deliver(MESSAGE).await;
    }
    let inbox = h
        .store
        .mailbox(h.account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    let mut session = h.logged_in().await;
    send(&mut session, "a ENABLE QRESYNC").await;
    send(&mut session, "b SELECT INBOX").await;
    send(&mut session, "c STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    send(&mut session, "d STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    send(&mut session, "e EXPUNGE").await;
    let reply = send(
        &mut session,
        &format!(
            "f SELECT INBOX (QRESYNC ({} {} 1:3))",
            inbox.uid_validity, inbox.highest_modseq
        ),
    )
    .await;
    assert!(reply.contains("* VANISHED (EARLIER) 1\r\n"), "{reply}");
    assert!(
        reply.contains("* 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ("),
        "{reply}"
    );
}

#[tokio::test]
async fn copy_and_move_answer_with_copyuid() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    h.deliver(MESSAGE).await;
    let archive = h
        .store
        .mailbox(h.account.id, "Archive")
        .await
        .unwrap()
        .unwrap();
    let mut session = h.selected().await;
    let reply = send(&mut session, "a COPY 1:2 Archive").await;
    assert_eq!(
        reply,
        format!(
            "a OK [COPYUID {} 1:2 1:2] COPY completed\r\n",
            archive.uid_validity
        )
    );
    let reply = send(&mut session, "b UID MOVE 2 Archive").await;
    assert_eq!(
        reply,
        format!(
            "* OK [COPYUID {} 2 3] moved\r\n* 2 EXPUNGE\r\nb MOVE completed\r\n",
            archive.uid_validity
        )
        .replace("b MOVE", "b OK MOVE")
    );
    assert_eq!(
        send(&mut session, "c COPY 1 Nowhere").await,
        "c NO [TRYCREATE] no such mailbox\r\n"
    );
}

#[tokio::test]
async fn mailbox_management_and_list() {
    let h = Harness::new().await;
    let mut session = h.logged_in().await;
    assert_eq!(
        send(&mut session, "a CREATE Projects/2024/").await,
        "a OK CREATE completed\r\n"
    );
    assert!(
        send(&mut session, "b CREATE INBOX")
            .await
            .starts_with("b NO [ALREADYEXISTS]")
    );
    assert_eq!(
        send(&mut session, "c RENAME Projects/2024 Projects/Old").await,
        "c OK RENAME completed\r\n"
    );
    let reply = send(&mut session, "d LIST \"\" %").await;
    assert!(
        reply.contains("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("* LIST (\\Noselect \\HasChildren) \"/\" \"Projects\"\r\n"),
        "{reply}"
    );
    assert!(!reply.contains("Projects/Old"), "{reply}");
    let reply = send(&mut session, "e LIST \"Projects/\" *").await;
    assert_eq!(
        reply,
        "* LIST (\\HasNoChildren) \"/\" \"Projects/Old\"\r\ne OK LIST completed\r\n"
    );
    assert_eq!(
        send(&mut session, "f LIST \"\" \"\"").await,
        "* LIST (\\Noselect) \"/\" \"\"\r\nf OK LIST completed\r\n"
    );
    let reply = send(
        &mut session,
        "g LIST (SPECIAL-USE) \"\" * RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT))",
    )
    .await;
    assert!(reply.contains("* LIST (\\HasNoChildren \\Subscribed \\Trash) \"/\" \"Trash\"\r\n* STATUS \"Trash\" (MESSAGES 0 UIDNEXT 1)\r\n"), "{reply}");
    assert!(!reply.contains("INBOX"), "{reply}");
    assert_eq!(
        send(&mut session, "h DELETE Projects/Old").await,
        "h OK DELETE completed\r\n"
    );
    assert!(
        send(&mut session, "i DELETE Projects/Old")
            .await
            .starts_with("i NO [NONEXISTENT]")
    );
    let reply = send(&mut session, "j LSUB \"\" *").await;
    assert!(reply.contains("* LSUB () \"/\" \"INBOX\"\r\n"), "{reply}");
    assert_eq!(
        send(&mut session, "k UNSUBSCRIBE Junk").await,
        "k OK UNSUBSCRIBE completed\r\n"
    );
    assert!(!send(&mut session, "l LSUB \"\" *").await.contains("Junk"));
}

#[tokio::test]
async fn status_counts_messages_and_sizes() {
    let h = Harness::new().await;
    h.deliver(MESSAGE).await;
    h.deliver("Subject: x\r\n\r\ny\r\n").await;
    let mut session = h.logged_in().await;
    let reply = send(
        &mut session,
        "a STATUS INBOX (MESSAGES UNSEEN DELETED SIZE UIDNEXT HIGHESTMODSEQ)",
    )
    .await;
    let size = MESSAGE.len() + 17;
    assert!(
        reply.starts_with(&format!(
            "* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2 DELETED 0 SIZE {size} UIDNEXT 3 HIGHESTMODSEQ "
        )),
        "{reply}"
    );
}

#[tokio::test]
async fn uid_expunge_removes_only_the_named_messages() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.deliver(MESSAGE).await;
    }
    let mut session = h.selected().await;
    send(&mut session, "a STORE 1:3 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        send(&mut session, "b UID EXPUNGE 2:3").await,
        "* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n"
    );
    assert_eq!(
        send(&mut session, "c CLOSE").await,
        "c OK CLOSE completed\r\n"
    );
    let inbox = h
        .store
        .mailbox(h.account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    assert!(h.store.messages(inbox.id).await.unwrap().is_empty());
    assert_eq!(
        send(&mut session, "d FETCH 1 FLAGS").await,
        "d BAD FETCH needs a selected mailbox\r\n"
    );
}

#[tokio::test]
async fn logout_says_bye() {
    let h = Harness::new().await;
    let mut session = h.logged_in().await;
    let command = parse_command(b"z LOGOUT\r\n").unwrap();
    let mut out = Output::new(None);
    assert_eq!(
        session.handle(command, &mut out).await.unwrap(),
        Outcome::Logout
    );
    assert_eq!(out.buf, b"* BYE logging out\r\nz OK LOGOUT completed\r\n");
}

#[tokio::test]
async fn idle_starts_only_when_authenticated() {
    let h = Harness::new().await;
    let mut session = h.session();
    assert_eq!(
        send(&mut session, "a IDLE").await,
        "a BAD IDLE needs authentication\r\n"
    );
    let mut session = h.selected().await;
    let command = parse_command(b"b IDLE\r\n").unwrap();
    let outcome = session
        .handle(command, &mut Output::new(None))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Idle { tag: "b".into() });
    h.deliver(MESSAGE).await;
    let selected = session.selected_mut().unwrap();
    selected.wait_for_change().await;
    let mut out = Output::new(None);
    session.idle_report(&mut out).await;
    assert_eq!(out.buf, b"* 1 EXISTS\r\n");
    let mut out = Output::new(None);
    session.idle_done("b", b"DONE\r\n", &mut out);
    assert_eq!(out.buf, b"b OK IDLE terminated\r\n");
}

#[tokio::test]
async fn uid_fetch_changedsince_vanished_reports_what_changed_and_what_went() {
    let h = Harness::new().await;
    for _ in 0..3 {
        h.deliver(MESSAGE).await;
    }
    let mut session = h.logged_in().await;
    send(&mut session, "a ENABLE QRESYNC").await;
    send(&mut session, "b SELECT INBOX").await;
    let inbox = h
        .store
        .mailbox(h.account.id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    send(&mut session, "c STORE 3 +FLAGS.SILENT (\\Deleted)").await;
    send(&mut session, "d EXPUNGE").await;
    send(&mut session, "e STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let reply = send(
        &mut session,
        &format!(
            "f UID FETCH 1:* FLAGS (CHANGEDSINCE {} VANISHED)",
            inbox.highest_modseq
        ),
    )
    .await;
    assert!(
        reply.starts_with("* VANISHED (EARLIER) 3\r\n* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ ("),
        "{reply}"
    );
    assert!(reply.ends_with(")\r\nf OK FETCH completed\r\n"), "{reply}");
    assert!(!reply.contains("* 2 FETCH"), "{reply}");
}
