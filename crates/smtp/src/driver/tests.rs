//! The driver loop end to end over an in-memory pipe (and once over loopback TCP with the
//! real `MailStream`), against the fake store and a real `Login`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealpost_tls::MailStream;
use tokio::sync::Semaphore;

use super::*;
use crate::ListenerKind;
use crate::testing::{FakeAcceptor, FakeStore, PASSWORD, Setup, tls_info};

/// An MX session that has sent MAIL and RCPT for alice.
async fn mx_transaction(setup: Setup) -> crate::testing::Running {
    let mut running = setup.start();
    running.greet().await;
    running
        .client
        .expect("MAIL FROM:<sender@remote.test>", "250 2.1.0")
        .await;
    running
        .client
        .expect("RCPT TO:<alice@example.test>", "250 2.1.5")
        .await;
    running
}

/// The stored message without our Received header.
fn without_received(raw: &[u8]) -> &[u8] {
    let marker = b" +0000\r\n";
    let end = raw
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("a Received header");
    &raw[end + marker.len()..]
}

#[tokio::test]
async fn mx_delivery_stores_exact_bytes() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.expect("DATA", "354 ").await;
    running
        .client
        .send("Subject: Grüße\r\n\r\n8-bit: Привет 世界\r\n..leading dot\r\n.\r\n")
        .await;
    assert!(
        running
            .client
            .reply()
            .await
            .starts_with("250 2.0.0 OK: queued as ")
    );
    running.client.expect("QUIT", "221 2.0.0").await;
    let stored = running.store.only_message();
    assert_eq!(
        without_received(&stored),
        "Subject: Grüße\r\n\r\n8-bit: Привет 世界\r\n.leading dot\r\n".as_bytes()
    );
    let delivery = &running.store.deliveries()[0];
    assert_eq!(delivery.local.len(), 1);
    assert_eq!(delivery.local[0].account, 1);
    running.finished().await;
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed_when_stored() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.expect("DATA", "354").await;
    running.client.send(b"..\r\n..x\r\n.\r\n").await;
    assert!(running.client.reply().await.starts_with("250 "));
    assert_eq!(
        without_received(&running.store.only_message()),
        b".\r\n.x\r\n"
    );
}

/// The four ways to end DATA that are not CRLF.CRLF, each with a second transaction
/// hidden behind it (SMTP smuggling, CVE-2023-51764/5/6).
const SMUGGLING: [&[u8]; 4] = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"];

#[tokio::test]
async fn smuggled_commands_after_a_false_end_of_data_are_never_executed() {
    for smuggle in SMUGGLING {
        let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
        running.client.expect("DATA", "354").await;
        let mut attack = b"Subject: first\r\n\r\nfirst message".to_vec();
        attack.extend_from_slice(smuggle);
        attack.extend_from_slice(
            b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\
              Subject: smuggled\r\n\r\nsmuggled message\r\n.\r\n",
        );
        running.client.send(&attack).await;
        // Exactly one reply for the whole thing: the message is refused...
        assert_eq!(
            running.client.reply().await,
            "550 5.6.0 bare CR or LF in message\r\n",
            "{smuggle:?}"
        );
        // ...and nothing else was answered, so no smuggled command ran.
        assert_eq!(running.client.command("NOOP").await, "250 2.0.0 OK\r\n");
        assert!(running.store.deliveries().is_empty(), "{smuggle:?}");
        // The session is sane: a clean message goes through as the only one stored.
        running
            .client
            .expect("MAIL FROM:<a@remote.test>", "250")
            .await;
        running
            .client
            .expect("RCPT TO:<bob@example.test>", "250")
            .await;
        running.client.expect("DATA", "354").await;
        running
            .client
            .send(b"Subject: clean\r\n\r\nok\r\n.\r\n")
            .await;
        assert!(running.client.reply().await.starts_with("250 "));
        let stored = running.store.only_message();
        assert!(!stored.windows(8).any(|w| w == b"smuggled"), "{smuggle:?}");
    }
}

#[tokio::test]
async fn smuggling_via_bdat_content_is_refused() {
    for smuggle in SMUGGLING {
        let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
        let mut chunk = b"Subject: x\r\n\r\nfirst".to_vec();
        chunk.extend_from_slice(smuggle);
        chunk.extend_from_slice(b"MAIL FROM:<x@y>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n");
        running
            .client
            .send(format!("BDAT {} LAST\r\n", chunk.len()))
            .await;
        running.client.send(&chunk).await;
        assert_eq!(
            running.client.reply().await,
            "550 5.6.0 bare CR or LF in message\r\n"
        );
        assert_eq!(running.client.command("NOOP").await, "250 2.0.0 OK\r\n");
        assert!(running.store.deliveries().is_empty());
    }
}

#[tokio::test]
async fn bdat_is_binary_safe_and_exact() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    let first = b"Subject: bin\r\n\r\n\0\x01\xff\xfe.\r\n.\r\n";
    let second = b"..\r\nend\r\n";
    // Pipelined: both chunks and their commands in one send.
    let mut batch = format!("BDAT {}\r\n", first.len()).into_bytes();
    batch.extend_from_slice(first);
    batch.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    batch.extend_from_slice(second);
    running.client.send(&batch).await;
    assert_eq!(
        running.client.reply().await,
        format!("250 2.0.0 {} octets received\r\n", first.len())
    );
    assert!(
        running
            .client
            .reply()
            .await
            .starts_with("250 2.0.0 OK: queued as")
    );
    let stored = running.store.only_message();
    assert_eq!(
        without_received(&stored),
        [&first[..], &second[..]].concat()
    );
}

#[tokio::test]
async fn bdat_connection_lost_mid_chunk_stores_nothing() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running
        .client
        .send(b"BDAT 100 LAST\r\nonly part of it")
        .await;
    drop(running.client);
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn connection_lost_mid_data_stores_nothing() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.expect("DATA", "354").await;
    running.client.send(b"Subject: x\r\n\r\nno end").await;
    drop(running.client);
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn command_line_too_long_is_500_and_the_session_goes_on() {
    let mut running = Setup::new(ListenerKind::Mx).start();
    running.greet().await;
    // 510 octets + CRLF = 512: allowed.
    let longest = format!("NOOP {}", "x".repeat(505));
    assert_eq!(longest.len() + 2, 512);
    running.client.expect(&longest, "250").await;
    let too_long = format!("NOOP {}", "x".repeat(506));
    assert_eq!(
        running.client.command(&too_long).await,
        "500 5.5.2 line too long\r\n"
    );
    // Far longer than any read: discarded without holding it.
    let huge = format!("NOOP {}", "x".repeat(100_000));
    assert_eq!(
        running.client.command(&huge).await,
        "500 5.5.2 line too long\r\n"
    );
    running.client.expect("NOOP", "250").await;
}

#[tokio::test]
async fn text_line_too_long_refuses_the_message_after_reading_it() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.expect("DATA", "354").await;
    let line = "x".repeat(999);
    running
        .client
        .send(format!("Subject: x\r\n\r\n{line}\r\nNOOP\r\n.\r\n"))
        .await;
    assert_eq!(running.client.reply().await, "500 5.5.6 line too long\r\n");
    running.client.expect("NOOP", "250").await;
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn message_over_the_size_limit_is_552() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.max_message_size = 1000;
    let mut running = mx_transaction(setup).await;
    running.client.expect("DATA", "354").await;
    for _ in 0..100 {
        running.client.send([b'y'; 78].as_slice()).await;
        running.client.send(b"\r\n").await;
    }
    running.client.send(b".\r\n").await;
    assert_eq!(
        running.client.reply().await,
        "552 5.3.4 message too big\r\n"
    );
    running.client.expect("NOOP", "250").await;
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn bdat_over_the_size_limit_is_552_and_read_to_the_end() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.max_message_size = 1000;
    let mut running = mx_transaction(setup).await;
    running.client.send(b"BDAT 5000 LAST\r\n").await;
    running.client.send(vec![b'z'; 5000]).await;
    assert_eq!(
        running.client.reply().await,
        "552 5.3.4 message too big\r\n"
    );
    running.client.expect("NOOP", "250").await;
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn too_many_recipients_is_452() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.max_recipients = 1;
    let mut running = mx_transaction(setup).await;
    running
        .client
        .expect(
            "RCPT TO:<bob@example.test>",
            "452 4.5.3 too many recipients",
        )
        .await;
}

#[tokio::test]
async fn too_many_errors_end_the_session_with_421() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.max_errors = 2;
    let mut running = setup.start();
    running.greet().await;
    running.client.expect("FOO", "500").await;
    running.client.send(b"BAR\r\n").await;
    assert!(running.client.reply().await.starts_with("500"));
    assert_eq!(
        running.client.reply().await,
        "421 4.7.0 too many errors\r\n"
    );
    assert!(running.client.is_closed().await);
    running.finished().await;
}

#[tokio::test]
async fn idle_client_gets_421_timeout() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.idle_timeout = Duration::from_millis(200);
    let mut running = setup.start();
    running.greet().await;
    assert_eq!(running.client.reply().await, "421 4.4.2 timeout\r\n");
    assert!(running.client.is_closed().await);
    running.finished().await;
}

#[tokio::test]
async fn client_stalling_inside_data_times_out_and_nothing_is_stored() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.limits.idle_timeout = Duration::from_millis(200);
    let mut running = mx_transaction(setup).await;
    running.client.expect("DATA", "354").await;
    running.client.send(b"Subject: x\r\n").await;
    assert_eq!(running.client.reply().await, "421 4.4.2 timeout\r\n");
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn shutdown_while_idle_says_421() {
    let mut running = Setup::new(ListenerKind::Mx).start();
    running.greet().await;
    running.shutdown.send(true).unwrap();
    assert_eq!(running.client.reply().await, "421 4.3.2 shutting down\r\n");
    assert!(running.client.is_closed().await);
    running.finished().await;
}

#[tokio::test]
async fn shutdown_lets_a_message_in_flight_finish() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.expect("DATA", "354").await;
    running.client.send(b"Subject: x\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.shutdown.send(true).unwrap();
    running.client.send(b"\r\nbody\r\n.\r\n").await;
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    assert_eq!(running.client.reply().await, "421 4.3.2 shutting down\r\n");
    assert_eq!(running.store.deliveries().len(), 1);
    running.finished().await;
}

#[tokio::test]
async fn shutdown_lets_a_bdat_transaction_finish() {
    let mut running = mx_transaction(Setup::new(ListenerKind::Mx)).await;
    running.client.send(b"BDAT 3\r\nabc").await;
    assert!(
        running
            .client
            .reply()
            .await
            .starts_with("250 2.0.0 3 octets")
    );
    running.shutdown.send(true).unwrap();
    assert!(running.client.silent_for(Duration::from_millis(200)).await);
    running.client.send(b"BDAT 2 LAST\r\n\r\n").await;
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    assert_eq!(running.client.reply().await, "421 4.3.2 shutting down\r\n");
    assert_eq!(running.store.deliveries().len(), 1);
}

#[tokio::test]
async fn ack_is_sent_only_after_the_store_returns() {
    let gate = Arc::new(Semaphore::new(0));
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.store = Arc::new(FakeStore::gated(gate.clone()));
    let mut running = mx_transaction(setup).await;
    running.client.expect("DATA", "354").await;
    running
        .client
        .send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        .await;
    // The store has not finished: no reply may arrive.
    assert!(running.client.silent_for(Duration::from_millis(300)).await);
    assert!(running.store.deliveries().is_empty());
    gate.add_permits(1);
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    assert_eq!(running.store.deliveries().len(), 1);
}

#[tokio::test]
async fn failed_store_is_451_and_never_250() {
    let setup = Setup::new(ListenerKind::Mx);
    setup.store.fail_deliveries();
    let mut running = mx_transaction(setup).await;
    running.client.expect("DATA", "354").await;
    running
        .client
        .send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(
        running.client.reply().await,
        "451 4.3.0 temporary failure, try again later\r\n"
    );
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_one_write() {
    let mut running = Setup::new(ListenerKind::Mx).start();
    running.greet().await;
    running
        .client
        .send(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n\
              RCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nNOOP\r\n",
        )
        .await;
    assert!(running.client.reply().await.starts_with("250 2.1.0"));
    assert!(running.client.reply().await.starts_with("250 2.1.5"));
    assert!(running.client.reply().await.starts_with("550 5.1.1"));
    assert!(running.client.reply().await.starts_with("354 "));
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    let writes = running.writes.lock().unwrap().clone();
    // greeting, EHLO reply, then the whole batch at once.
    assert_eq!(writes.len(), 3, "{writes:?}");
    let batch = String::from_utf8(writes[2].clone()).unwrap();
    assert!(
        batch.starts_with("250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1"),
        "{batch}"
    );
    assert!(batch.ends_with("250 2.0.0 OK\r\n"), "{batch}");
}

#[tokio::test]
async fn every_write_holds_whole_replies() {
    let mut running = Setup::new(ListenerKind::Mx).start();
    running.greet().await;
    running
        .client
        .expect("EHLO again.example.org", "250-")
        .await;
    running.client.expect("HELP", "214").await;
    for write in running.writes.lock().unwrap().iter() {
        let text = String::from_utf8(write.clone()).unwrap();
        assert!(text.ends_with("\r\n"));
        let last_line = text.trim_end().rsplit("\r\n").next().unwrap();
        assert_eq!(
            &last_line[3..4],
            " ",
            "write ends inside a multi-line reply: {text:?}"
        );
    }
}

#[tokio::test]
async fn starttls_resets_session_state_and_drops_pipelined_plaintext() {
    let mut running = Setup::new(ListenerKind::Submission).start();
    running.greet().await;
    // A man in the middle appends a command after STARTTLS (CVE-2011-0411).
    running
        .client
        .send(b"STARTTLS\r\nMAIL FROM:<alice@example.test>\r\n")
        .await;
    assert_eq!(
        running.client.reply().await,
        "220 2.0.0 Ready to start TLS\r\n"
    );
    // Under "TLS" now: the injected MAIL was never answered, EHLO is needed again.
    running
        .client
        .expect("MAIL FROM:<alice@example.test>", "503 5.5.1")
        .await;
    let ehlo = running.client.command("EHLO client").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    running.client.expect("STARTTLS", "503").await;
}

#[tokio::test]
async fn failed_tls_handshake_ends_the_session() {
    let mut setup = Setup::new(ListenerKind::Mx);
    setup.acceptor = Some(FakeAcceptor {
        info: tls_info(),
        fail: true,
    });
    let mut running = setup.start();
    running.greet().await;
    running.client.expect("STARTTLS", "220 2.0.0").await;
    assert!(running.client.is_closed().await);
    running.finished().await;
}

#[tokio::test]
async fn close_after_tls_mid_data_ends_the_session_and_stores_nothing() {
    let mut running = Setup::new(ListenerKind::Mx).start();
    running.greet().await;
    running.client.expect("STARTTLS", "220").await;
    running.client.expect("EHLO c", "250").await;
    running
        .client
        .expect("MAIL FROM:<a@remote.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<alice@example.test>", "250")
        .await;
    running.client.expect("DATA", "354").await;
    running.client.send(b"Subject: x\r\n\r\npart").await;
    drop(running.client);
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(running.store.deliveries().is_empty());
}

#[tokio::test]
async fn submission_over_tls_authenticates_and_queues() {
    let mut setup = Setup::new(ListenerKind::Submissions);
    setup.implicit_tls = Some(tls_info());
    setup.acceptor = None;
    let mut running = setup.start();
    running.greet().await;
    running
        .client
        .expect("MAIL FROM:<alice@example.test>", "530 5.7.0")
        .await;
    let wrong = STANDARD.encode("\0alice@example.test\0wrong");
    running
        .client
        .expect(&format!("AUTH PLAIN {wrong}"), "535 5.7.8")
        .await;
    running
        .client
        .expect("AUTH LOGIN", "334 VXNlcm5hbWU6")
        .await;
    running
        .client
        .expect(&STANDARD.encode("alice@example.test"), "334 UGFzc3dvcmQ6")
        .await;
    running
        .client
        .expect(&STANDARD.encode(PASSWORD), "235 2.7.0")
        .await;
    running
        .client
        .expect("MAIL FROM:<bob@example.test>", "553 5.7.1")
        .await;
    running
        .client
        .expect("MAIL FROM:<alice@example.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<bob@example.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<carol@remote.test>", "250")
        .await;
    running
        .client
        .expect("RCPT TO:<nobody@example.test>", "550 5.1.1")
        .await;
    running.client.expect("DATA", "354").await;
    running
        .client
        .send(b"Subject: hi\r\n\r\nhello\r\n.\r\n")
        .await;
    assert!(running.client.reply().await.starts_with("250 2.0.0 OK"));
    let delivery = running.store.deliveries().remove(0);
    assert_eq!(delivery.local[0].account, 2);
    let outbound = delivery.outbound.expect("queued");
    assert_eq!(outbound.recipients, ["carol@remote.test"]);
    let raw = String::from_utf8(delivery.raw.to_vec()).unwrap();
    assert!(raw.starts_with("Received: from client.example.org ([192.0.2.7])\r\n"));
    assert!(
        raw.contains("with ESMTPSA (TLSv1.3 TLS_AES_256_GCM_SHA384)"),
        "{raw}"
    );
    assert!(raw.contains("\r\nDate: "), "{raw}");
    assert!(raw.contains("\r\nMessage-ID: <"), "{raw}");
    assert!(raw.ends_with("\r\nSubject: hi\r\n\r\nhello\r\n"), "{raw}");
}

#[tokio::test]
async fn auth_external_with_a_verified_certificate() {
    let mut setup = Setup::new(ListenerKind::Submissions);
    setup.implicit_tls = Some(crate::testing::tls_info_with_certificate(
        "bob@example.test",
    ));
    setup.acceptor = None;
    let mut running = setup.start();
    running.greet().await;
    running.client.expect("AUTH EXTERNAL =", "235 2.7.0").await;
    running
        .client
        .expect("MAIL FROM:<bob@example.test>", "250")
        .await;
}

#[tokio::test]
async fn plaintext_submission_refuses_auth_with_538() {
    let mut running = Setup::new(ListenerKind::Submission).start();
    running.greet().await;
    let plain = STANDARD.encode(format!("\0alice@example.test\0{PASSWORD}"));
    running
        .client
        .expect(&format!("AUTH PLAIN {plain}"), "538 5.7.11")
        .await;
    running
        .client
        .expect("MAIL FROM:<alice@example.test>", "530 5.7.0")
        .await;
}

#[tokio::test]
async fn real_mail_stream_over_loopback_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let store = Arc::new(FakeStore::new());
    let server_store = store.clone();
    let server = tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let stream = MailStream::plain(tcp, peer);
        let store_dyn: Arc<dyn sealpost_store::Store> = server_store.clone();
        let login = Login::new(store_dyn.clone(), sealpost_store::LoginPolicy::default());
        let env = Env {
            store: &store_dyn,
            login: &login,
            verifier: None,
            signer: None,
            dmarc_recorder: None,
        };
        let config = SessionConfig {
            kind: ListenerKind::Mx,
            hostname: "mx.example.test".into(),
            limits: crate::SmtpLimits::default(),
            starttls: false,
            verify: false,
            sign: false,
        };
        let (_keep, shutdown) = watch::channel(false);
        run(
            config,
            env,
            stream,
            None::<&sealpost_tls::TlsAcceptor>,
            shutdown,
        )
        .await;
    });

    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (reader, mut writer) = tcp.into_split();
    let mut reader = tokio::io::BufReader::new(reader);
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut transcript = String::new();
    writer
        .write_all(
            b"EHLO client\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n\
              DATA\r\nSubject: tcp\r\n\r\nover tcp\r\n.\r\nQUIT\r\n",
        )
        .await
        .unwrap();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        transcript.push_str(&line);
    }
    server.await.unwrap();
    assert!(transcript.starts_with("220 mx.example.test ESMTP sealpost\r\n"));
    assert!(!transcript.contains("STARTTLS"), "{transcript}");
    assert!(transcript.ends_with("221 2.0.0 mx.example.test closing connection\r\n"));
    let stored = store.only_message();
    assert!(stored.starts_with(b"Received: from client ([127.0.0.1])\r\n"));
    assert!(stored.ends_with(b"Subject: tcp\r\n\r\nover tcp\r\n"));
}

#[test]
fn serve_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn check(service: &crate::SmtpService, stream: MailStream, shutdown: watch::Receiver<bool>) {
        assert_send(&service.serve(stream, shutdown));
    }
    let _ = check;
}
