//! Background collection: tasks that read Redis on a budget and send owned, typed [`Update`]s
//! to whoever holds the model. Nothing here is shared with the view.
//!
//! A target's [`Collector`] runs two tasks, each with its own connections to the target's node
//! so a long census never delays the server panel:
//! - the [`poller`]: connection state, layout detection, `INFO`/`DBSIZE`, the visible page of
//!   sessions, the open inspector, and the writes the user confirmed;
//! - the [`census`]: pass after pass over every session, in bounded batches under the node's
//!   budget.
//!
//! The machine sessiontop runs on is sampled by a room of its own ([`host`]), on its own tick,
//! whatever any Redis link does. Every walk over a keyspace is a [`walk::KeyWalk`].
//!
//! A lost connection is reported as [`LinkState::Reconnecting`] and retried with backoff; the
//! tasks never end on their own.
//!
//! [`LinkState::Reconnecting`]: crate::engine::domain::LinkState::Reconnecting

pub mod carry;
pub mod census;
pub mod clients;
pub mod detect;
pub mod events;
pub mod fix;
pub mod host;
pub mod inspect;
pub mod page;
pub mod poller;
pub mod read;
pub mod server;
pub mod slowlog;
pub mod stages;
pub mod walk;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::collect::write::Writer;
use crate::conn::topology::Topology;
use crate::engine::domain::Millis;
use crate::engine::layout::{Choice, Layout, Overrides};
use crate::engine::msg::{Request, Update};
use census::CensusOptions;

/// Time between server and page polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Rest between census passes.
pub const DEFAULT_CENSUS_PAUSE: Duration = Duration::from_secs(10);
/// Sessions listed before the census has any (most recent first, from the index).
pub const DEFAULT_PAGE_SIZE: usize = 200;
/// Reconnect backoff: first delay, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The current time, as the model counts it.
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// How much and how often to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub poll_interval: Duration,
    pub census_pause: Duration,
    pub census: CensusOptions,
    pub page_size: usize,
    /// How stuck sessions are told by watching their stages.
    pub watch: stages::WatchOptions,
}

/// A layout the poller found, and the watch over its sessions' stages when they keep no
/// history: what the census needs to start.
pub type Found = (Arc<Layout>, Option<Arc<stages::Stages>>);

/// What `--layout` asks for: a built-in, a file or detection, and the prefix and stage field
/// given beside it.
#[derive(Debug, Clone)]
pub struct LayoutSpec {
    pub choice: Choice,
    pub overrides: Overrides,
}

/// A target's running collection; dropping it stops its tasks.
pub struct Collector {
    /// Requests for the poller (the rows on screen, the inspector, writes).
    pub requests: mpsc::UnboundedSender<Request>,
    topology: Arc<Topology>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Collector {
    /// Passes requests on to the poller.
    pub fn send(&self, requests: Vec<Request>) {
        for r in requests {
            // The poller ends only with the collector.
            let _ = self.requests.send(r);
        }
    }

    /// The target's nodes, with what each has been sent and what it costs.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    /// Commands sent to the target since the start.
    pub fn commands_sent(&self) -> u64 {
        self.topology.commands_sent()
    }
}

/// Starts collecting from `topology`'s target. Updates arrive on the returned receiver.
pub fn spawn(
    topology: Arc<Topology>,
    layout: LayoutSpec,
    options: CollectOptions,
    writer: Writer,
) -> (Collector, mpsc::UnboundedReceiver<Update>) {
    let (updates, receiver) = mpsc::unbounded_channel();
    let (requests, request_rx) = mpsc::unbounded_channel();
    let (layout_tx, layout_rx) = watch::channel::<Option<Found>>(None);
    let poller = poller::Poller::new(topology.clone(), layout, options.clone(), writer, updates.clone());
    let poller = tokio::spawn(poller.run(request_rx, layout_tx));
    // Events are for what happens between passes: they are subscribed to once the first ends.
    let (passes_tx, passes_rx) = watch::channel(0u64);
    // What events hear written, for the census to read the rest light.
    let changes = Arc::new(events::Changes::default());
    let events = tokio::spawn(events::events_loop(
        topology.clone(),
        updates.clone(),
        requests.clone(),
        layout_rx.clone(),
        passes_rx,
        changes.clone(),
    ));
    let census = tokio::spawn(census::census_loop(topology.clone(), options, updates, layout_rx, passes_tx, changes));
    let mut tasks = vec![poller, census, events];
    if let Some(sentinels) = topology.sentinels() {
        let follow = crate::conn::sentinel::follow_switches(topology.template().clone(), sentinels.clone());
        tasks.push(tokio::spawn(follow));
    }
    (Collector { requests, topology, tasks }, receiver)
}

/// Backoff before reconnect attempt `attempt` (1-based): doubling from [`BACKOFF_MIN`] to
/// [`BACKOFF_MAX`], with jitter so several sessiontops do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_MIN.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(BACKOFF_MAX);
    base.mul_f64(0.75 + fastrand::f64() * 0.5).min(BACKOFF_MAX)
}
