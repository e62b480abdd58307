//! A real DNS server on loopback for the policy tests (sealpost-testdns), serving DNSSEC
//! so the validating lookups can prove unsigned zones insecure and signed ones secure, and
//! a resolver that trusts its root key as a deployment's `[dns] trust_anchor` would.

use std::time::Duration;

use sealpost_dns::{Resolver, ResolverSettings};
use sealpost_testdns::{TestDns, TestDnsBuilder};
use tempfile::TempDir;

pub(crate) struct Dns {
    _server: TestDns,
    pub resolver: Resolver,
    _anchor: TempDir,
}

/// Starts `builder` with DNSSEC on, and a resolver anchored at its root key.
pub(crate) async fn start(builder: TestDnsBuilder) -> Dns {
    let server = builder.dnssec().start().await.expect("test DNS starts");
    let anchor = TempDir::new().expect("temp dir");
    let path = anchor.path().join("anchor.key");
    std::fs::write(&path, server.trust_anchor().expect("a signed root")).expect("anchor");
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![server.addr()],
        timeout: Duration::from_millis(400),
        attempts: 1,
        trust_anchor: Some(path),
    })
    .expect("resolver");
    Dns {
        _server: server,
        resolver,
        _anchor: anchor,
    }
}
