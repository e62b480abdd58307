//! TLS-RPT session results (RFC 8460 §4) on their way to the store, in batches: one store
//! commit per second or per [`BATCH`] sessions instead of one per session, and never on
//! the delivering task's path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealpost_store::{Store, TlsSessionResult};

/// Results written together at most.
const BATCH: usize = 256;
/// The longest a result waits in the buffer.
const FLUSH_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct ResultBuffer {
    store: Arc<dyn Store>,
    pending: Arc<Mutex<Pending>>,
}

#[derive(Default)]
struct Pending {
    results: Vec<TlsSessionResult>,
    /// A task will flush within [`FLUSH_AFTER`].
    flush_scheduled: bool,
}

impl ResultBuffer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            pending: Arc::new(Mutex::new(Pending::default())),
        }
    }

    /// Buffers one result; it reaches the store within a second.
    pub fn push(&self, result: TlsSessionResult) {
        let (full, schedule) = {
            let mut pending = lock(&self.pending);
            pending.results.push(result);
            let full = pending.results.len() >= BATCH;
            let schedule = !full && !pending.flush_scheduled;
            if schedule {
                pending.flush_scheduled = true;
            }
            (full.then(|| std::mem::take(&mut pending.results)), schedule)
        };
        if let Some(batch) = full {
            self.spawn_write(batch, Duration::ZERO);
        } else if schedule {
            self.spawn_write(Vec::new(), FLUSH_AFTER);
        }
    }

    /// Writes what is buffered now (shutdown).
    pub async fn flush(&self) {
        let batch = std::mem::take(&mut lock(&self.pending).results);
        write(&*self.store, batch).await;
    }

    /// After `delay`, writes `batch` and (when it waited) whatever is buffered by then.
    fn spawn_write(&self, batch: Vec<TlsSessionResult>, delay: Duration) {
        let store = Arc::clone(&self.store);
        let pending = Arc::clone(&self.pending);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(target: "delivery", "no runtime to write TLS-RPT results with; {} dropped", batch.len());
            return;
        };
        runtime.spawn(async move {
            let mut batch = batch;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                let mut pending = lock(&pending);
                pending.flush_scheduled = false;
                batch.append(&mut pending.results);
            }
            write(&*store, batch).await;
        });
    }
}

async fn write(store: &dyn Store, batch: Vec<TlsSessionResult>) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len();
    if let Err(error) = store.record_tls_results(batch).await {
        tracing::warn!(target: "delivery", "{count} TLS-RPT results not recorded: {error}");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
