//! DMARC evaluations kept for our reports, reports queued once, reports received.

use super::{TestStore, backend_tests, delivery};
use crate::{
    DkimAuthResult, DmarcAggregateReport, DmarcDisposition, DmarcEvaluationRecord,
    DmarcPolicyPublished, DmarcReportRow, Outbound, OutgoingReport, SpfAuthResult, StoreError,
};

fn policy() -> DmarcPolicyPublished {
    DmarcPolicyPublished {
        p: DmarcDisposition::Quarantine,
        sp: Some(DmarcDisposition::Reject),
        np: None,
        adkim_strict: false,
        aspf_strict: true,
        testing: false,
        fo: Some("1".into()),
    }
}

pub(crate) fn evaluation(at: i64) -> DmarcEvaluationRecord {
    DmarcEvaluationRecord {
        evaluated_at: at,
        source_ip: "192.0.2.7".parse().unwrap(),
        header_from: "example.net".into(),
        envelope_from: "bounces.example.net".into(),
        envelope_to: "example.test".into(),
        policy_domain: "example.net".into(),
        policy: policy(),
        disposition: DmarcDisposition::None,
        dkim_aligned: true,
        spf_aligned: false,
        dkim: vec![
            DkimAuthResult {
                domain: "example.net".into(),
                selector: "s1".into(),
                result: "pass".into(),
            },
            DkimAuthResult {
                domain: "esp.example".into(),
                selector: "k\t2".into(),
                result: "fail".into(),
            },
        ],
        spf: Some(SpfAuthResult {
            domain: "bounces.example.net".into(),
            scope: "mfrom".into(),
            result: "pass".into(),
        }),
        rua: vec![
            "mailto:dmarc@example.net".into(),
            "mailto:agg@thirdparty.example!10m".into(),
        ],
    }
}

async fn dmarc_evaluations_are_kept_by_time_and_pruned(store: TestStore) {
    for at in [100, 200, 300] {
        store.record_dmarc_evaluation(evaluation(at)).await.unwrap();
    }
    let found = store.dmarc_evaluations(150, 300).await.unwrap();
    assert_eq!(found.len(), 1);
    let mut expected = evaluation(200);
    // A tab cannot survive inside a field: it would split it.
    expected.dkim[1].selector = "k 2".into();
    assert_eq!(found[0], expected);

    assert_eq!(store.prune_dmarc_evaluations(250).await.unwrap(), 2);
    let left = store.dmarc_evaluations(0, i64::MAX).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].evaluated_at, 300);
}

async fn an_outgoing_dmarc_report_is_queued_once_per_domain_and_period(store: TestStore) {
    let report = |id: &str| OutgoingReport {
        policy_domain: "example.net".into(),
        begin: 86_400,
        end: 2 * 86_400 - 1,
        report_id: id.into(),
        delivery: delivery(
            b"Subject: Report Domain: example.net\r\n\r\nx\r\n",
            Vec::new(),
            Some(Outbound {
                sender: "noreply-dmarc@example.test".into(),
                recipients: vec!["dmarc@example.net".into()],
                require_tls: false,
            }),
        ),
    };
    let first = store.queue_dmarc_report(report("a")).await.unwrap();
    assert!(first.is_some());
    assert_eq!(store.queue_dmarc_report(report("b")).await.unwrap(), None);
    let queue = store.queue_entries().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].id, first.unwrap());
    assert_eq!(queue[0].recipients[0].address, "dmarc@example.net");
}

async fn a_dmarc_report_without_outbound_recipients_is_refused(store: TestStore) {
    let report = OutgoingReport {
        policy_domain: "example.net".into(),
        begin: 0,
        end: 1,
        report_id: "x".into(),
        delivery: delivery(b"x", Vec::new(), None),
    };
    assert!(matches!(
        store.queue_dmarc_report(report).await,
        Err(StoreError::Invalid { .. })
    ));
}

pub(crate) fn received_report(id: &str, begin: i64) -> DmarcAggregateReport {
    DmarcAggregateReport {
        org_name: "receiver.example".into(),
        email: "noreply-dmarc@receiver.example".into(),
        report_id: id.into(),
        begin,
        end: begin + 86_399,
        policy_domain: "Example.Test".into(),
        policy: policy(),
        rows: vec![
            DmarcReportRow {
                source_ip: Some("2001:db8::25".parse().unwrap()),
                count: 12,
                disposition: DmarcDisposition::None,
                dkim_aligned: true,
                spf_aligned: true,
                header_from: "example.test".into(),
                envelope_from: "example.test".into(),
                dkim: vec![DkimAuthResult {
                    domain: "example.test".into(),
                    selector: "s20261128r".into(),
                    result: "pass".into(),
                }],
                spf: vec![SpfAuthResult {
                    domain: "example.test".into(),
                    scope: "mfrom".into(),
                    result: "pass".into(),
                }],
            },
            DmarcReportRow {
                source_ip: None,
                count: 3,
                disposition: DmarcDisposition::Quarantine,
                dkim_aligned: false,
                spf_aligned: false,
                header_from: "example.test".into(),
                envelope_from: String::new(),
                dkim: Vec::new(),
                spf: Vec::new(),
            },
        ],
    }
}

async fn received_dmarc_reports_are_stored_once_and_listed_by_domain(store: TestStore) {
    assert!(
        store
            .store_dmarc_report(received_report("r2", 2_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .store_dmarc_report(received_report("r1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .store_dmarc_report(received_report("r1", 1_000))
            .await
            .unwrap()
    );

    let reports = store.dmarc_reports("EXAMPLE.test").await.unwrap();
    let ids: Vec<&str> = reports.iter().map(|r| r.report_id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    let mut expected = received_report("r1", 1_000);
    expected.policy_domain = "example.test".into();
    assert_eq!(reports[0], expected);
    assert!(store.dmarc_reports("example.net").await.unwrap().is_empty());
}

async fn dmarc_tables_survive_a_reopen(mut store: TestStore) {
    {
        store.record_dmarc_evaluation(evaluation(5)).await.unwrap();
        store
            .store_dmarc_report(received_report("r", 0))
            .await
            .unwrap();
    }
    store.reopen().await;
    assert_eq!(store.dmarc_evaluations(0, 10).await.unwrap().len(), 1);
    assert_eq!(store.dmarc_reports("example.test").await.unwrap().len(), 1);
}

backend_tests!(
    dmarc_evaluations_are_kept_by_time_and_pruned,
    an_outgoing_dmarc_report_is_queued_once_per_domain_and_period,
    a_dmarc_report_without_outbound_recipients_is_refused,
    received_dmarc_reports_are_stored_once_and_listed_by_domain,
    dmarc_tables_survive_a_reopen,
);
