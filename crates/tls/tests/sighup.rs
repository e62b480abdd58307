//! SIGHUP reloads certificates. In a test binary of its own: the signal is process-wide.

mod common;

use std::fs::{File, FileTimes};
use std::time::Duration;

use common::*;
use sealpost_tls::{AppProtocol, TlsServer};

/// Overwrites `path` in place with `content` padded to the old length, and restores the
/// old mtime, so only a SIGHUP (not the file poll) can notice.
fn replace_unnoticeably(path: &std::path::Path, content: &str) {
    let meta = std::fs::metadata(path).expect("metadata");
    let mut bytes = content.as_bytes().to_vec();
    let old_len = meta.len() as usize;
    assert!(bytes.len() <= old_len, "new file longer than the old one");
    bytes.resize(old_len, b'\n'); // PEM ignores trailing blank lines
    std::fs::write(path, &bytes).expect("write");
    let file = File::options().write(true).open(path).expect("open");
    let times = FileTimes::new()
        .set_modified(meta.modified().expect("mtime"))
        .set_accessed(meta.accessed().expect("atime"));
    file.set_times(times).expect("set times");
}

#[tokio::test]
async fn sighup_reloads_even_when_the_files_look_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Test CA");
    // Certificates with long names so the replacement fits in the same length.
    let (cert, key, _) = ca.server(
        &[
            "mail.example.test",
            "a-much-longer-name-to-leave-room.example.test",
        ],
        KeyKind::Ecdsa,
    );
    let pair = write_pair(dir.path(), "cert", &cert, &key);
    let server = TlsServer::load(settings(dir.path(), Some(pair.clone()))).expect("load");
    server.watch();
    let listener = serve(server.acceptor("imaps", AppProtocol::Imap, true)).await;

    let (new_cert, new_key, new_der) = ca.server(&["mail.example.test"], KeyKind::Ecdsa);
    replace_unnoticeably(&pair.1, &new_key);
    replace_unnoticeably(&pair.0, &new_cert);
    // Give the poll a chance to (wrongly) notice, then check it did not.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let tls = connect(listener.addr, client_config(&ca.der), "mail.example.test")
        .await
        .expect("handshake");
    assert_ne!(
        server_leaf(&tls),
        new_der,
        "the poll saw a change it should not see"
    );

    // SAFETY: raise() only sends a signal to this process; a SIGHUP handler is installed.
    assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let tls = connect(listener.addr, client_config(&ca.der), "mail.example.test")
            .await
            .expect("handshake");
        if server_leaf(&tls) == new_der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
