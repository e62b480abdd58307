//! The STARTTLS upgrade over a real socket.

mod common;

use std::sync::Arc;

use common::*;
use rustls::pki_types::ServerName;
use sealpost_tls::{AppProtocol, Line, MailStream, TlsError, TlsServer, starttls};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Reads a plaintext line byte by byte, so nothing after it is consumed from the socket.
async fn plain_line(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        line.push(tcp.read_u8().await.expect("read"));
    }
    String::from_utf8(line).expect("utf8")
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    // CVE-2011-0411: "NOOP" was sent in plaintext after STARTTLS, so anyone on the path
    // could have put it there; it must not be executed inside the TLS session.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let server = TlsServer::load(settings(
        dir.path(),
        Some(write_pair(dir.path(), "c", &cert, &key)),
    ))
    .expect("load");
    let acceptor = server.acceptor("smtp", AppProtocol::Smtp, false);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, seen_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.expect("accept");
        let mut stream = MailStream::plain(tcp, peer);
        stream.write_all(b"220 ready\r\n").await.expect("greet");
        let first = stream.read_line(1000).await.expect("read");
        assert_eq!(first, Line::Complete(b"STARTTLS\r\n".to_vec()));
        assert_eq!(
            stream.buffered(),
            b"NOOP\r\n",
            "test premise: NOOP arrived with STARTTLS"
        );
        stream.write_all(b"220 go ahead\r\n").await.expect("reply");
        let mut stream = starttls(stream, &acceptor).await.expect("upgrade");
        assert!(stream.is_tls());
        let next = stream.read_line(1000).await.expect("read");
        let _ = seen_tx.send(next);
    });

    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(plain_line(&mut tcp).await, "220 ready\r\n");
    tcp.write_all(b"STARTTLS\r\nNOOP\r\n").await.expect("write");
    assert_eq!(plain_line(&mut tcp).await, "220 go ahead\r\n");
    let name = ServerName::try_from("mail.example.test").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca.der)))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let mut tls = BufReader::new(tls);
    tls.get_mut()
        .write_all(b"EHLO client.test\r\n")
        .await
        .expect("write");
    tls.get_mut().flush().await.expect("flush");
    let seen = tokio::time::timeout(WAIT, seen_rx)
        .await
        .expect("server saw nothing")
        .expect("server task failed");
    assert_eq!(seen, Line::Complete(b"EHLO client.test\r\n".to_vec()));
}

#[tokio::test]
async fn starttls_on_a_tls_stream_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let server = TlsServer::load(settings(
        dir.path(),
        Some(write_pair(dir.path(), "c", &cert, &key)),
    ))
    .expect("load");
    let acceptor = server.acceptor("smtps", AppProtocol::Smtp, true);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (result_tx, result_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.expect("accept");
        let stream = acceptor
            .accept(MailStream::plain(tcp, peer))
            .await
            .expect("accept");
        let again = starttls(stream, &acceptor).await;
        let _ = result_tx.send(matches!(again, Err(TlsError::AlreadyTls)));
    });
    let _tls = connect(addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert!(
        result_rx.await.expect("server task"),
        "second upgrade not refused"
    );
}
