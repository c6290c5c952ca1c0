//! Runs one pipeline step inside a tracing span, with progress events around it.

use crate::error::Result;
use crate::progress::{EventKind, Phase, ProgressEvent, ProgressSink, Subject};
use std::future::Future;
use tracing::Instrument;

/// Runs `work` as `phase` of `subject`: a `toygres.step` span, `Started`, then `Finished` or `Failed`.
pub(crate) async fn step<T>(
    sink: &dyn ProgressSink,
    subject: Subject,
    phase: Phase,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = tracing::info_span!("toygres.step", %phase, subject = ?subject);
    let emit = |kind| sink.emit(&ProgressEvent { subject, phase, kind });
    emit(EventKind::Started);
    let started = std::time::Instant::now();
    let out = work.instrument(span.clone()).await;
    let _enter = span.enter();
    match &out {
        Ok(_) => {
            let elapsed = started.elapsed();
            tracing::debug!(?elapsed, "step finished");
            emit(EventKind::Finished { elapsed });
        }
        Err(e) => {
            tracing::warn!(error = %e, "step failed");
            emit(EventKind::Failed { error: e.to_string() });
        }
    }
    out
}
