//! Certificate reload: new handshakes see new files, live connections keep going, and a
//! broken file changes nothing.

mod common;

use std::time::Duration;

use common::*;
use sealpost_tls::{AppProtocol, TlsServer};
use tokio::io::BufReader;

#[tokio::test]
async fn reload_serves_the_new_certificate_and_keeps_live_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (old_cert, old_key, old_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let pair = write_pair(dir.path(), "cert", &old_cert, &old_key);
    let server = TlsServer::load(settings(dir.path(), Some(pair))).expect("load");
    // Two listeners built before the reload: both must see it.
    let imaps = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;
    let smtp = serve(server.acceptor("smtp", AppProtocol::Smtp, false)).await;

    let live = connect(imaps.addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&live), old_der);
    let mut live = BufReader::new(live);
    assert_eq!(read_line(&mut live).await, "220 ready\r\n");

    let (new_cert, new_key, new_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    write_pair(dir.path(), "cert", &new_cert, &new_key);
    server.reload().expect("reload");

    for addr in [imaps.addr, smtp.addr] {
        let tls = connect(addr, client_config(&ca.der), "mail.example.test")
            .await
            .expect("handshake after reload");
        assert_eq!(server_leaf(&tls), new_der);
    }
    send_line(&mut live, "STILL THERE\r\n").await;
    assert_eq!(read_line(&mut live).await, "STILL THERE\r\n");
}

#[tokio::test]
async fn a_broken_file_fails_the_reload_and_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let pair = write_pair(dir.path(), "cert", &cert, &key);
    let server = TlsServer::load(settings(dir.path(), Some(pair.clone()))).expect("load");
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;

    std::fs::write(&pair.0, "garbage\n").expect("write");
    let error = server.reload().expect_err("garbage accepted");
    assert!(error.to_string().contains("cert.pem"), "{error}");
    let tls = connect(listener.addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&tls), der);

    // A new certificate with the old key: refused as a pair, old pair stays.
    let (other_cert, _, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    std::fs::write(&pair.0, other_cert).expect("write");
    assert!(server.reload().is_err());
    std::fs::remove_file(&pair.1).expect("rm");
    assert!(server.reload().is_err());
    let tls = connect(listener.addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert_eq!(server_leaf(&tls), der);
}

#[tokio::test]
async fn the_watcher_reloads_when_a_certificate_file_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    let (cert, key, _) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    let (extra_cert, extra_key, _) = ca.server(&["mx.other.test"], KeyKind::Ecdsa);
    let mut settings = settings(
        dir.path(),
        Some(write_pair(dir.path(), "cert", &cert, &key)),
    );
    settings.extra = vec![write_pair(dir.path(), "extra", &extra_cert, &extra_key)];
    let server = TlsServer::load(settings).expect("load");
    server.watch();
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;

    // Renew the extra certificate the way certbot does: new files renamed into place.
    let (new_cert, new_key, new_der) = ca.server(&["mx.other.test"], KeyKind::Ecdsa);
    let staged = write_pair(dir.path(), "staged", &new_cert, &new_key);
    std::fs::rename(&staged.1, dir.path().join("extra-key.pem")).expect("rename");
    std::fs::rename(&staged.0, dir.path().join("extra.pem")).expect("rename");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let tls = connect(listener.addr, client_config(&ca.der), "mx.other.test")
            .await
            .expect("handshake");
        if server_leaf(&tls) == new_der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload after file change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
