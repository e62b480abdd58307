use std::collections::HashSet;

use sealpost_testdns::{TestDns, Zone};

use super::*;
use crate::policy::test_dns::{self, Dns};

const ZONE: &str = r#"
@          MX  5  primary
@          MX  10 mx1
@          MX  10 mx2
@          MX  10 mx3
primary    A   192.0.2.1
mx1        A   192.0.2.11
mx2        A   192.0.2.12
mx3        AAAA 2001:db8::13
nullmx     MX  0  .
implicit   A   192.0.2.5
implicit   AAAA 2001:db8::5
textonly   TXT "nothing else"
ghosts     MX  10 ghost1
ghosts     MX  20 ghost2
partial    MX  10 ghost1
partial    MX  20 mx1
slow       MX  10 host.silent
slowpart   MX  10 host.silent
slowpart   MX  20 ghost1
many       MX  0 m0
m0         A   192.0.2.100
many       MX  1 m1
m1         A   192.0.2.101
many       MX  2 m2
m2         A   192.0.2.102
many       MX  3 m3
m3         A   192.0.2.103
many       MX  4 m4
m4         A   192.0.2.104
many       MX  5 m5
m5         A   192.0.2.105
many       MX  6 m6
m6         A   192.0.2.106
many       MX  7 m7
m7         A   192.0.2.107
many       MX  8 m8
m8         A   192.0.2.108
many       MX  9 m9
m9         A   192.0.2.109
many       MX  10 m10
m10         A   192.0.2.110
many       MX  11 m11
m11         A   192.0.2.111
many       MX  12 m12
m12         A   192.0.2.112
many       MX  13 m13
m13         A   192.0.2.113
many       MX  14 m14
m14         A   192.0.2.114
many       MX  15 m15
m15         A   192.0.2.115
many       MX  16 m16
m16         A   192.0.2.116
many       MX  17 m17
m17         A   192.0.2.117
many       MX  18 m18
m18         A   192.0.2.118
many       MX  19 m19
m19         A   192.0.2.119
many       MX  20 m20
m20         A   192.0.2.120
many       MX  21 m21
m21         A   192.0.2.121
many       MX  22 m22
m22         A   192.0.2.122
many       MX  23 m23
m23         A   192.0.2.123
many       MX  24 m24
m24         A   192.0.2.124
many       MX  25 m25
m25         A   192.0.2.125
many       MX  26 m26
m26         A   192.0.2.126
many       MX  27 m27
m27         A   192.0.2.127
many       MX  28 m28
m28         A   192.0.2.128
many       MX  29 m29
m29         A   192.0.2.129
"#;

const SIGNED: &str = r#"
@          MX  10 mx
mx         A   192.0.2.40
insecure   MX  10 mx1.example.test.
"#;

async fn dns() -> Dns {
    test_dns::start(
        TestDns::builder()
            .zone(Zone::parse("example.test", ZONE).unwrap())
            .zone(Zone::parse("signed.test", SIGNED).unwrap().signed())
            .silent("silent.example.test")
            .unwrap(),
    )
    .await
}

fn resolver(dns: &Dns) -> Resolver {
    dns.resolver.clone()
}

#[tokio::test]
async fn hosts_come_in_preference_order_with_equal_preferences_shuffled() {
    let dns = dns().await;
    let resolver = resolver(&dns);
    let mut orders = HashSet::new();
    for _ in 0..40 {
        let hosts = resolve(&resolver, "example.test").await.unwrap();
        assert_eq!(hosts[0].name, "primary.example.test");
        assert_eq!(
            hosts[0].addresses,
            vec!["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert!(hosts[1..].iter().all(|host| host.preference == 10));
        let rest: Vec<String> = hosts[1..].iter().map(|host| host.name.clone()).collect();
        let mut sorted = rest.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["mx1.example.test", "mx2.example.test", "mx3.example.test"]
        );
        orders.insert(rest);
    }
    assert!(orders.len() > 1, "equal preferences were never shuffled");
}

#[tokio::test]
async fn a_null_mx_accepts_no_mail() {
    let dns = dns().await;
    assert_eq!(
        resolve(&resolver(&dns), "nullmx.example.test").await,
        Err(RouteError::NullMx("nullmx.example.test".into()))
    );
}

#[tokio::test]
async fn without_mx_records_the_domain_itself_is_the_host() {
    let dns = dns().await;
    let hosts = resolve(&resolver(&dns), "implicit.example.test")
        .await
        .unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].name, "implicit.example.test");
    let mut addresses = hosts[0].addresses.clone();
    addresses.sort();
    assert_eq!(
        addresses,
        vec![
            "192.0.2.5".parse::<IpAddr>().unwrap(),
            "2001:db8::5".parse().unwrap()
        ]
    );
    // An unsigned zone.
    assert!(!hosts[0].mx_secure && !hosts[0].addresses_secure);
}

#[tokio::test]
async fn dnssec_status_of_mx_and_addresses_is_kept_per_host() {
    let dns = dns().await;
    let hosts = resolve(&resolver(&dns), "signed.test").await.unwrap();
    assert_eq!(hosts[0].name, "mx.signed.test");
    assert!(hosts[0].mx_secure && hosts[0].addresses_secure);
    // A signed MX RRset naming a host in an unsigned zone.
    let hosts = resolve(&resolver(&dns), "insecure.signed.test")
        .await
        .unwrap();
    assert!(hosts[0].mx_secure && !hosts[0].addresses_secure);
}

#[tokio::test]
async fn domains_without_any_mail_host_do_not_exist_for_mail() {
    let dns = dns().await;
    let resolver = resolver(&dns);
    for domain in [
        "missing.example.test",
        "textonly.example.test",
        "ghosts.example.test",
    ] {
        assert!(
            matches!(
                resolve(&resolver, domain).await,
                Err(RouteError::NoSuchDomain(_))
            ),
            "{domain}"
        );
    }
}

#[tokio::test]
async fn mx_hosts_without_addresses_are_skipped() {
    let dns = dns().await;
    let hosts = resolve(&resolver(&dns), "partial.example.test")
        .await
        .unwrap();
    let names: Vec<&str> = hosts.iter().map(|host| host.name.as_str()).collect();
    assert_eq!(names, ["mx1.example.test"]);
}

#[tokio::test]
async fn an_unanswered_lookup_is_temporary() {
    let dns = dns().await;
    let resolver = resolver(&dns);
    for domain in ["slow.example.test", "slowpart.example.test"] {
        assert!(
            matches!(
                resolve(&resolver, domain).await,
                Err(RouteError::Temporary(_))
            ),
            "{domain}"
        );
    }
    assert!(matches!(
        resolve(&resolver, "x.silent.example.test").await,
        Err(RouteError::Temporary(_))
    ));
}

#[test]
fn address_literals_name_their_host() {
    assert_eq!(
        address_literal("[192.0.2.1]"),
        Some("192.0.2.1".parse().unwrap())
    );
    assert_eq!(
        address_literal("[IPv6:2001:db8::1]"),
        Some("2001:db8::1".parse().unwrap())
    );
    assert_eq!(address_literal("example.test"), None);
    assert_eq!(address_literal("[not an address]"), None);
}

#[tokio::test]
async fn only_the_most_preferred_hosts_are_looked_at() {
    let dns = dns().await;
    let hosts = resolve(&resolver(&dns), "many.example.test").await.unwrap();
    let names: Vec<&str> = hosts.iter().map(|host| host.name.as_str()).collect();
    let expected: Vec<String> = (0..MAX_MX_HOSTS)
        .map(|i| format!("m{i}.example.test"))
        .collect();
    assert_eq!(names, expected);
}
