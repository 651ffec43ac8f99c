//! What runs beside a watch, the dashboard's or `serve`'s: the metrics listener and the
//! recording (of the first target).

use tokio::task::JoinHandle;

use super::{metrics, record};
use crate::engine::history::Histories;
use crate::engine::model::Model;

/// How long the recording may take to write what it holds when the watch ends.
const RECORD_FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the exports could not start: said before anything else starts.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} for --metrics-listen: {reason}")]
    Metrics { addr: std::net::SocketAddr, reason: std::io::Error },
    #[error(transparent)]
    Record(#[from] record::RecordError),
}

/// What to record, and of what.
pub struct Recording<'a> {
    pub path: &'a std::path::Path,
    pub max_bytes: u64,
    /// The first target's URL (redacted), for the recording's header.
    pub url: &'a str,
    pub interval_ms: u64,
}

/// The metrics listener and the recording, as a watch runs them.
pub struct Exports {
    metrics: Option<(metrics::Page, JoinHandle<()>)>,
    recorder: Option<record::Recorder>,
    /// When the last recorded server poll was, so each poll is recorded once.
    recorded_at: Option<i64>,
    failure_said: bool,
}

impl Exports {
    /// Binds `listen` and opens the recording before anything else starts, so a busy port or
    /// an unwritable file is said plainly. Going on with a recording gives back what it holds,
    /// for the charts (with a gap for the time sessiontop was not running).
    pub async fn start(
        listen: Option<std::net::SocketAddr>,
        record: Option<&Recording<'_>>,
        now: i64,
    ) -> Result<(Exports, Option<Histories>), StartError> {
        let metrics = match listen {
            Some(addr) => {
                let listener = metrics::bind(addr).await.map_err(|reason| StartError::Metrics { addr, reason })?;
                let page = metrics::Page::default();
                let serving = tokio::spawn(metrics::serve(listener, page.clone()));
                Some((page, serving))
            }
            None => None,
        };
        let mut resumed = None;
        let recorder = match record {
            Some(r) => {
                let mut recorder = record::Recorder::open(r.path, r.url, r.interval_ms, r.max_bytes, now)?;
                resumed = recorder.resume(r.path);
                Some(recorder)
            }
            None => None,
        };
        Ok((Exports { metrics, recorder, recorded_at: None, failure_said: false }, resumed))
    }

    /// The clock: the metrics page rendered again from every target's model, a line recorded
    /// for each new server poll of the first (the disk is the recording's thread's). Returns
    /// why the recording stopped, once.
    pub fn on_tick(&mut self, targets: &[(&Model, &str)]) -> Option<String> {
        if let Some((page, _)) = &self.metrics {
            page.set(metrics::exposition(targets));
        }
        let (Some(recorder), Some((model, _))) = (self.recorder.as_mut(), targets.first()) else { return None };
        if model.server_at.is_some() && model.server_at != self.recorded_at {
            self.recorded_at = model.server_at;
            recorder.record(&model.history, &model.findings, model.now);
        }
        match recorder.status().failed {
            Some(why) if !self.failure_said => {
                self.failure_said = true;
                Some(why)
            }
            _ => None,
        }
    }

    /// Closes the recording (what it holds written, within a bound) and stops listening.
    /// Returns why the recording failed, if it did.
    pub fn finish(self) -> Option<String> {
        let failed = self.recorder.and_then(|r| r.finish(RECORD_FINISH_TIMEOUT).failed);
        if let Some((_, serving)) = self.metrics {
            serving.abort();
        }
        failed
    }
}
