//! DMARC evaluations on their way to the store for the aggregate reports, written in
//! batches: one message's evaluation is not worth a commit (an fsync) of its own, and the
//! message's 250 never waits for it.
//!
//! Only evaluations under a policy that asks for aggregate reports (`rua=`) are kept:
//! reports are all they are for (RFC 9990), and a domain without `rua` gets none.

use std::sync::Arc;
use std::time::Duration;

use sealpost_store::{DmarcEvaluationRecord, Store};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::warn;

/// How long an evaluation may wait for others to share its write.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A batch this large is written at once.
const MAX_BATCH: usize = 512;

/// Cheap to clone; the writing task ends, after writing what is pending, when the last
/// clone is dropped. What is pending when the process exits is lost (at most about a
/// second's worth), which costs a report row, never a message.
#[derive(Clone)]
pub struct DmarcRecorder {
    sender: mpsc::UnboundedSender<DmarcEvaluationRecord>,
}

impl DmarcRecorder {
    /// Starts the writing task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, receiver));
        Self { sender }
    }

    pub(crate) fn record(&self, record: DmarcEvaluationRecord) {
        if record.rua.is_empty() {
            return;
        }
        if self.sender.send(record).is_err() {
            warn!("DMARC evaluation dropped: the recorder has stopped");
        }
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut receiver: mpsc::UnboundedReceiver<DmarcEvaluationRecord>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let flush = tokio::time::sleep(FLUSH_INTERVAL);
        tokio::pin!(flush);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                record = receiver.recv() => match record {
                    Some(record) => batch.push(record),
                    None => break,
                },
                () = &mut flush => break,
            }
        }
        // Submitted together, the writes share one of the store's group commits.
        let mut writes = JoinSet::new();
        for record in batch {
            let store = Arc::clone(&store);
            writes.spawn(async move { store.record_dmarc_evaluation(record).await });
        }
        while let Some(result) = writes.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(%error, "recording a DMARC evaluation failed"),
                Err(error) => warn!(%error, "recording a DMARC evaluation failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeStore;

    fn record(header_from: &str) -> DmarcEvaluationRecord {
        DmarcEvaluationRecord {
            evaluated_at: 0,
            source_ip: "192.0.2.1".parse().unwrap(),
            header_from: header_from.into(),
            envelope_from: header_from.into(),
            envelope_to: "example.test".into(),
            policy_domain: header_from.into(),
            policy: sealpost_store::DmarcPolicyPublished {
                p: sealpost_store::DmarcDisposition::Reject,
                sp: None,
                np: None,
                adkim_strict: false,
                aspf_strict: false,
                testing: false,
                fo: None,
            },
            disposition: sealpost_store::DmarcDisposition::None,
            dkim_aligned: true,
            spf_aligned: true,
            dkim: Vec::new(),
            spf: None,
            rua: vec![format!("mailto:dmarc@{header_from}")],
        }
    }

    #[tokio::test]
    async fn evaluations_are_written_within_a_second() {
        let store = Arc::new(FakeStore::new());
        let recorder = DmarcRecorder::start(store.clone());
        recorder.record(record("a.test"));
        recorder.record(record("b.test"));
        tokio::time::sleep(FLUSH_INTERVAL + Duration::from_millis(300)).await;
        let written: Vec<String> = store
            .dmarc_evaluations()
            .into_iter()
            .map(|r| r.header_from)
            .collect();
        assert_eq!(written.len(), 2);
    }

    #[tokio::test]
    async fn evaluations_under_a_policy_without_rua_are_not_kept() {
        let store = Arc::new(FakeStore::new());
        let recorder = DmarcRecorder::start(store.clone());
        recorder.record(DmarcEvaluationRecord {
            rua: Vec::new(),
            ..record("quiet.test")
        });
        recorder.record(record("reports.test"));
        drop(recorder);
        for _ in 0..100 {
            let written = store.dmarc_evaluations();
            if !written.is_empty() {
                let domains: Vec<&str> = written.iter().map(|r| r.header_from.as_str()).collect();
                assert_eq!(domains, vec!["reports.test"]);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the evaluation with rua was not written");
    }

    #[tokio::test]
    async fn pending_evaluations_are_written_when_the_last_recorder_goes() {
        let store = Arc::new(FakeStore::new());
        let recorder = DmarcRecorder::start(store.clone());
        recorder.record(record("a.test"));
        drop(recorder);
        for _ in 0..100 {
            if !store.dmarc_evaluations().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the pending evaluation was not written");
    }
}
