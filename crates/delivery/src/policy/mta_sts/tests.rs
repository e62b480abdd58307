use super::*;

#[test]
fn policy_parses_with_crlf_or_lf_and_keeps_its_lines() {
    let policy = StsPolicy::parse(
        "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\n",
    )
    .unwrap();
    assert_eq!(policy.mode, StsMode::Enforce);
    assert_eq!(policy.max_age, 604800);
    assert_eq!(policy.mx, ["mail.example.com", "*.example.net"]);
    assert_eq!(
        policy.lines,
        [
            "version: STSv1",
            "mode: enforce",
            "mx: mail.example.com",
            "mx: *.Example.NET.",
            "max_age: 604800"
        ]
    );
    let lf = StsPolicy::parse(
        "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400\nextension: x\n",
    )
    .unwrap();
    assert_eq!(lf.mode, StsMode::Testing);
}

#[test]
fn policies_missing_or_misspelling_a_field_are_refused() {
    assert_eq!(
        StsPolicy::parse("mode: enforce\nmx: a\nmax_age: 1\n"),
        Err(StsPolicyError::Version)
    );
    assert_eq!(
        StsPolicy::parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n"),
        Err(StsPolicyError::Version)
    );
    assert_eq!(
        StsPolicy::parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n"),
        Err(StsPolicyError::Mode("strict".into()))
    );
    assert_eq!(
        StsPolicy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n"),
        Err(StsPolicyError::NoMx)
    );
    assert_eq!(
        StsPolicy::parse("version: STSv1\nmode: enforce\nmx: a\n"),
        Err(StsPolicyError::NoMaxAge)
    );
    assert_eq!(
        StsPolicy::parse("version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n"),
        Err(StsPolicyError::MaxAge("-5".into()))
    );
    assert_eq!(
        StsPolicy::parse("version: STSv1\nmode: enforce\nmx: a\nmax_age: 12345678901\n"),
        Err(StsPolicyError::MaxAge("12345678901".into()))
    );
    // mode none needs no mx.
    assert!(StsPolicy::parse("version: STSv1\nmode: none\nmax_age: 1\n").is_ok());
}

#[test]
fn max_age_is_capped_at_a_year() {
    let policy =
        StsPolicy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 9999999999\n").unwrap();
    assert_eq!(policy.max_age, 31_557_600);
}

#[test]
fn wildcard_patterns_match_exactly_one_label() {
    assert!(mx_matches("mx.example.org", "MX.Example.org."));
    assert!(mx_matches("*.example.org", "mx1.example.org"));
    assert!(!mx_matches("*.example.org", "a.b.example.org"));
    assert!(!mx_matches("*.example.org", "example.org"));
    assert!(!mx_matches("*.example.org", "mx.example.org.evil"));
    assert!(!mx_matches("mx.example.org", "mx2.example.org"));
    assert!(!mx_matches("*.example.org", ".example.org"));
    let policy = StsPolicy::parse(
        "version: STSv1\nmode: enforce\nmx: *.mail.example\nmx: backup.example\nmax_age: 60\n",
    )
    .unwrap();
    assert!(policy.allows_mx("a.mail.example"));
    assert!(policy.allows_mx("backup.example"));
    assert!(!policy.allows_mx("other.example"));
}

#[test]
fn cached_policy_round_trips_through_its_memo_text() {
    let cached = CachedPolicy {
        id: "20240101".into(),
        policy: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 600\n".into(),
        fetched_at: 1_000,
        max_age: 600,
    };
    let text = serde_json::to_string(&cached).unwrap();
    let back: CachedPolicy = serde_json::from_str(&text).unwrap();
    assert_eq!(back, cached);
    let active = ActivePolicy::from_cached(back).unwrap();
    assert!(active.valid_at(1_599));
    assert!(!active.valid_at(1_600));
}

mod discovery {
    use sealpost_store::EmbeddedStore;
    use sealpost_testdns::{TestDns, Zone};
    use tempfile::TempDir;

    use super::*;
    use crate::policy::test_dns::{self, Dns};
    use crate::policy::test_https::{PolicyServer, policy_response};
    use crate::policy::test_pki::{TestCa, server_config};

    const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";

    const ZONE: &str = r#"
_mta-sts.a       TXT "v=STSv1; id=1"
mta-sts.a        A   127.0.0.1
_mta-sts.two     TXT "v=STSv1; id=1"
_mta-sts.two     TXT "v=STSv1; id=2"
mta-sts.two      A   127.0.0.1
_mta-sts.junk    TXT "v=spf1 -all"
mta-sts.norecord A   127.0.0.1
_mta-sts.noaddr  TXT "v=STSv1; id=9"
"#;

    struct Setup {
        _dns: Dns,
        _dir: TempDir,
        store: Arc<dyn Store>,
        server: PolicyServer,
        sts: MtaSts,
        ca: TestCa,
        resolver: Resolver,
    }

    impl Setup {
        /// Another engine over the same store and DNS, as after a restart.
        fn restarted(&self) -> MtaSts {
            mta_sts_for(&self.resolver, &self.store, &self.server, &self.ca)
        }
    }

    fn mta_sts_for(
        resolver: &Resolver,
        store: &Arc<dyn Store>,
        server: &PolicyServer,
        ca: &TestCa,
    ) -> MtaSts {
        MtaSts::new(
            resolver.clone(),
            Arc::clone(store),
            server.addr.port(),
            client_config(
                std::slice::from_ref(&ca.der),
                &sealpost_tls::crypto_provider(),
            ),
        )
    }

    /// A policy server answering `response` with a certificate for the test names from
    /// `signer` (the CA the client trusts unless a test says otherwise).
    async fn setup_with(response: Vec<u8>, trusted: bool) -> Setup {
        let dns =
            test_dns::start(TestDns::builder().zone(Zone::parse("example.test", ZONE).unwrap()))
                .await;
        let ca = TestCa::new("Test CA");
        let signer = if trusted {
            &ca
        } else {
            &TestCa::new("Untrusted CA")
        };
        let leaf = signer.leaf(
            &[
                "mta-sts.a.example.test",
                "mta-sts.two.example.test",
                "mta-sts.norecord.example.test",
            ],
            30,
        );
        let server =
            PolicyServer::start(server_config(vec![leaf.der.clone()], leaf.key()), response).await;
        let dir = TempDir::new().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let resolver = dns.resolver.clone();
        let sts = mta_sts_for(&resolver, &store, &server, &ca);
        Setup {
            _dns: dns,
            _dir: dir,
            store,
            server,
            sts,
            ca,
            resolver,
        }
    }

    async fn setup(response: Vec<u8>) -> Setup {
        setup_with(response, true).await
    }

    async fn seed(store: &Arc<dyn Store>, domain: &str, cached: &CachedPolicy) {
        store
            .set_delivery_memo(
                MTA_STS_MEMO,
                domain,
                Some(serde_json::to_string(cached).unwrap()),
            )
            .await
            .unwrap();
    }

    fn unix_now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn policy_of(state: &StsState) -> &ActivePolicy {
        match state {
            StsState::Policy(active) => active,
            other => panic!("expected a policy, got {other:?}"),
        }
    }

    fn unavailable_type(state: &StsState) -> &'static str {
        match state {
            StsState::Unavailable { result_type, .. } => result_type,
            other => panic!("expected no policy to be had, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_fetched_policy_applies_and_is_cached_in_the_store() {
        let setup = setup(policy_response(POLICY)).await;
        let now = unix_now();
        let state = setup.sts.state("a.example.test", now).await;
        let active = policy_of(&state);
        assert_eq!(active.policy.mode, StsMode::Enforce);
        assert_eq!(active.cached.id, "1");
        assert_eq!(setup.server.requests(), 1);

        let memo = setup
            .store
            .delivery_memo(MTA_STS_MEMO, "a.example.test")
            .await
            .unwrap()
            .expect("cached");
        let cached: CachedPolicy = serde_json::from_str(&memo).unwrap();
        assert_eq!(cached.id, "1");
        assert_eq!(cached.policy, POLICY);
        assert_eq!(cached.max_age, 86400);
        assert_eq!(cached.fetched_at, now);

        // Same id: no second fetch, in this process or after a restart.
        setup.sts.state("a.example.test", now + 10).await;
        let restarted = setup.restarted();
        assert!(matches!(
            restarted.state("a.example.test", now + 20).await,
            StsState::Policy(_)
        ));
        assert_eq!(setup.server.requests(), 1);
    }

    #[tokio::test]
    async fn a_changed_id_fetches_the_policy_again() {
        let setup = setup(policy_response(POLICY)).await;
        let now = unix_now();
        let old = CachedPolicy {
            id: "0".into(),
            policy: "version: STSv1\nmode: testing\nmx: old.example.test\nmax_age: 86400\n".into(),
            fetched_at: now - 100,
            max_age: 86400,
        };
        seed(&setup.store, "a.example.test", &old).await;
        let state = setup.sts.state("a.example.test", now).await;
        assert_eq!(policy_of(&state).cached.id, "1");
        assert_eq!(policy_of(&state).policy.mode, StsMode::Enforce);
        assert_eq!(setup.server.requests(), 1);
    }

    #[tokio::test]
    async fn an_expired_policy_is_fetched_again_even_with_the_same_id() {
        let setup = setup(policy_response(POLICY)).await;
        let now = unix_now();
        let expired = CachedPolicy {
            id: "1".into(),
            policy: POLICY.into(),
            fetched_at: now - 90_000,
            max_age: 86400,
        };
        seed(&setup.store, "a.example.test", &expired).await;
        let state = setup.sts.state("a.example.test", now).await;
        assert_eq!(policy_of(&state).cached.fetched_at, now);
        assert_eq!(setup.server.requests(), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_cached_policy() {
        let setup = setup(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let now = unix_now();
        let old = CachedPolicy {
            id: "0".into(),
            policy: POLICY.into(),
            fetched_at: now - 100,
            max_age: 86400,
        };
        seed(&setup.store, "a.example.test", &old).await;
        let state = setup.sts.state("a.example.test", now).await;
        assert_eq!(policy_of(&state).cached.id, "0");
        assert_eq!(setup.server.requests(), 1);
        // The failure is remembered for a while: no fetch per message.
        setup.sts.state("a.example.test", now + 1).await;
        assert_eq!(setup.server.requests(), 1);
    }

    #[tokio::test]
    async fn without_a_cached_policy_a_failed_fetch_is_reported_by_its_kind() {
        let error = setup(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        assert_eq!(
            unavailable_type(&error.sts.state("a.example.test", unix_now()).await),
            "sts-policy-fetch-error"
        );
        let redirect = setup(
            b"HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
        .await;
        assert_eq!(
            unavailable_type(&redirect.sts.state("a.example.test", unix_now()).await),
            "sts-policy-fetch-error"
        );
        let invalid = setup(policy_response("version: STSv1\nmode: maybe\n")).await;
        assert_eq!(
            unavailable_type(&invalid.sts.state("a.example.test", unix_now()).await),
            "sts-policy-invalid"
        );
        let untrusted = setup_with(policy_response(POLICY), false).await;
        assert_eq!(
            unavailable_type(&untrusted.sts.state("a.example.test", unix_now()).await),
            "sts-webpki-invalid"
        );
        assert_eq!(untrusted.server.requests(), 0);
        let unresolvable = setup(policy_response(POLICY)).await;
        assert_eq!(
            unavailable_type(
                &unresolvable
                    .sts
                    .state("noaddr.example.test", unix_now())
                    .await
            ),
            "sts-policy-fetch-error"
        );
    }

    #[tokio::test]
    async fn without_a_txt_record_only_an_unexpired_cached_policy_applies() {
        let setup = setup(policy_response(POLICY)).await;
        let now = unix_now();
        assert_eq!(
            setup.sts.state("norecord.example.test", now).await,
            StsState::Absent
        );
        assert_eq!(
            setup.sts.state("junk.example.test", now).await,
            StsState::Absent
        );
        let cached = CachedPolicy {
            id: "7".into(),
            policy: POLICY.into(),
            fetched_at: now - 100,
            max_age: 1000,
        };
        seed(&setup.store, "norecord.example.test", &cached).await;
        let restarted = setup.restarted();
        assert_eq!(
            policy_of(&restarted.state("norecord.example.test", now).await)
                .cached
                .id,
            "7"
        );
        assert_eq!(
            restarted.state("norecord.example.test", now + 1000).await,
            StsState::Absent
        );
        assert_eq!(setup.server.requests(), 0);
    }

    #[tokio::test]
    async fn more_than_one_sts_record_is_no_policy() {
        let setup = setup(policy_response(POLICY)).await;
        assert_eq!(
            setup.sts.state("two.example.test", unix_now()).await,
            StsState::Absent
        );
        assert_eq!(setup.server.requests(), 0);
    }

    #[tokio::test]
    async fn a_policy_of_mode_none_is_no_policy_but_is_cached() {
        let setup = setup(policy_response(
            "version: STSv1\nmode: none\nmax_age: 600\n",
        ))
        .await;
        assert_eq!(
            setup.sts.state("a.example.test", unix_now()).await,
            StsState::Absent
        );
        assert!(
            setup
                .store
                .delivery_memo(MTA_STS_MEMO, "a.example.test")
                .await
                .unwrap()
                .is_some()
        );
    }
}
