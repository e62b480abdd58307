use std::time::{Duration, Instant};

use sealpost_testdns::{TestDns, Zone};

use super::*;

const ZONE: &str = r#"
@        MX  20 mx2
@        MX  10 MX1
mx1      A   192.0.2.10
mx2      A   192.0.2.20
mx2      AAAA 2001:db8::20
v6only   AAAA 2001:db8::6
@        TXT "v=spf1 " "ip4:192.0.2.0/24 " "-all"
@        TXT "unrelated"
alias    CNAME mx1
empty    TXT "placeholder"
"#;

const REVERSE: &str = "10.2.0.192.in-addr.arpa. PTR mx1.example.test.\n";

async fn server() -> TestDns {
    TestDns::builder()
        .zone(Zone::parse("example.test", ZONE).unwrap())
        .zone(Zone::parse("2.0.192.in-addr.arpa", REVERSE).unwrap())
        .silent("slow.example.test")
        .unwrap()
        .start()
        .await
        .unwrap()
}

fn resolver(dns: &TestDns, timeout: Duration) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout,
        attempts: 2,
        trust_anchor: None,
    })
    .unwrap()
}

#[tokio::test]
async fn txt_strings_of_one_record_are_joined() {
    let dns = server().await;
    let mut txt = resolver(&dns, Duration::from_secs(2))
        .txt("example.test")
        .await
        .unwrap();
    txt.sort();
    assert_eq!(
        txt,
        vec![
            b"unrelated".to_vec(),
            b"v=spf1 ip4:192.0.2.0/24 -all".to_vec()
        ]
    );
}

#[tokio::test]
async fn mx_records_come_most_preferred_first_in_lower_case() {
    let dns = server().await;
    let mx = resolver(&dns, Duration::from_secs(2))
        .mx("example.test.")
        .await
        .unwrap();
    let names: Vec<_> = mx
        .iter()
        .map(|mx| (mx.preference, mx.exchange.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![(10, "mx1.example.test"), (20, "mx2.example.test")]
    );
}

#[tokio::test]
async fn ip_lookup_joins_a_and_aaaa() {
    let dns = server().await;
    let resolver = resolver(&dns, Duration::from_secs(2));
    let mut ips = resolver.ip("mx2.example.test").await.unwrap();
    ips.sort();
    assert_eq!(
        ips,
        vec![
            "192.0.2.20".parse::<IpAddr>().unwrap(),
            "2001:db8::20".parse().unwrap()
        ]
    );
    assert_eq!(
        resolver.ip("v6only.example.test").await.unwrap(),
        vec!["2001:db8::6".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        resolver.ipv4("alias.example.test").await.unwrap(),
        vec!["192.0.2.10".parse::<Ipv4Addr>().unwrap()]
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_are_told_apart() {
    let dns = server().await;
    let resolver = resolver(&dns, Duration::from_secs(2));
    assert_eq!(
        resolver.txt("missing.example.test").await,
        Err(LookupError::NxDomain("missing.example.test".into()))
    );
    assert_eq!(
        resolver.ipv4("empty.example.test").await,
        Err(LookupError::NoData("empty.example.test".into()))
    );
    assert_eq!(
        resolver.ip("missing.example.test").await,
        Err(LookupError::NxDomain("missing.example.test".into()))
    );
    assert!(
        resolver
            .mx("empty.example.test")
            .await
            .unwrap_err()
            .is_empty_answer()
    );
}

#[tokio::test]
async fn names_outside_every_zone_do_not_exist() {
    let dns = server().await;
    assert_eq!(
        resolver(&dns, Duration::from_secs(2))
            .txt("_dmarc.test")
            .await,
        Err(LookupError::NxDomain("_dmarc.test".into()))
    );
}

#[tokio::test]
async fn ptr_names_the_host() {
    let dns = server().await;
    let names = resolver(&dns, Duration::from_secs(2))
        .ptr("192.0.2.10".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(names, vec!["mx1.example.test".to_string()]);
}

#[tokio::test]
async fn unanswered_query_is_a_temporary_error_after_the_timeout() {
    let dns = server().await;
    let resolver = resolver(&dns, Duration::from_millis(300));
    let started = Instant::now();
    let error = resolver.txt("slow.example.test").await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The silence covers names below it too, and the server still answers the rest.
    assert!(
        resolver
            .ipv4("a.slow.example.test")
            .await
            .unwrap_err()
            .is_temporary()
    );
    assert!(resolver.ipv4("mx1.example.test").await.is_ok());
}

#[test]
fn reverse_names_follow_rfc_1035_and_rfc_3596() {
    assert_eq!(
        reverse_name("192.0.2.1".parse().unwrap()),
        "1.2.0.192.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("::ffff:192.0.2.1".parse().unwrap()),
        "1.2.0.192.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("2001:db8::1".parse().unwrap()),
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
}
