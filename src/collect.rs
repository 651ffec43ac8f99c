//! Background collection: tasks that poll Redis on a budget and send owned, typed [`Update`]s
//! to whoever holds the model. Nothing here is shared with the view.
//!
//! Two tasks, each with its own connection so a long census never delays the server panel:
//! - the poller: connection state, layout detection, `INFO`/`DBSIZE`, the visible page of
//!   sessions, the open inspector, and the writes the user confirmed;
//! - the census: pass after pass over every session, in bounded batches under a budget.
//!
//! A lost connection is reported as [`LinkState::Reconnecting`] and retried with backoff; the
//! tasks never end on their own.

pub mod census;
pub mod detect;
pub mod inspect;
pub mod read;
pub mod server;
pub mod write;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::collect::write::Writer;
use crate::conn::link::{Failure, Link, LoadCounter};
use crate::conn::pace::Pacer;
use crate::conn::target::Target;
use crate::engine::domain::{LinkState, Millis};
use crate::engine::layout::{Choice, Layout, Overrides};
use crate::engine::msg::{PlanReply, Request, Update, WriteKind};
use crate::engine::names::SessionId;
use census::CensusOptions;
use detect::Detection;
use inspect::RelatedSearch;
use read::{Interner, ReadOptions};

/// Time between server and page polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Rest between census passes.
pub const DEFAULT_CENSUS_PAUSE: Duration = Duration::from_secs(10);
/// Sessions listed before the census has any (most recent first, from the index).
pub const DEFAULT_PAGE_SIZE: usize = 200;
/// How often the inspector looks again for wildcard related keys (a whole-keyspace `SCAN`, so
/// not often).
pub const RELATED_RESCAN_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest time between two polls, however many refreshes are asked for.
const MIN_POLL_GAP: Duration = Duration::from_millis(250);
/// How often to sample the keyspace again while no layout is recognised.
const DETECT_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// How often while the keyspace is empty: a sample of nothing costs one `SCAN`, and sessions
/// should show as soon as a restarted application writes them.
const DETECT_EMPTY_RETRY_INTERVAL: Duration = Duration::from_secs(3);
/// Reconnect backoff: first delay, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Retry interval after the server refused the credentials.
const AUTH_RETRY_INTERVAL: Duration = Duration::from_secs(30);

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
    /// `--watch-process`: patterns of the host's processes to count.
    pub watch_processes: Vec<String>,
}

/// Handles to the running tasks; dropping it stops them.
pub struct Collector {
    pub requests: mpsc::UnboundedSender<Request>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What both tasks need.
#[derive(Clone)]
struct Shared {
    target: Target,
    load: LoadCounter,
    updates: mpsc::UnboundedSender<Update>,
    options: CollectOptions,
    pacer: Arc<Mutex<Pacer>>,
}

/// Starts the tasks. Updates arrive on the returned receiver.
pub fn spawn(
    target: Target,
    choice: Choice,
    overrides: Overrides,
    options: CollectOptions,
    writer: Writer,
    load: LoadCounter,
    pacer: Arc<Mutex<Pacer>>,
) -> (Collector, mpsc::UnboundedReceiver<Update>) {
    let (updates, receiver) = mpsc::unbounded_channel();
    let (requests, request_rx) = mpsc::unbounded_channel();
    let (layout_tx, layout_rx) = watch::channel::<Option<Arc<Layout>>>(None);
    let shared = Shared { target, load, updates, options, pacer };
    let poller = tokio::spawn(poller(shared.clone(), choice, overrides, writer, request_rx, layout_tx));
    let census = tokio::spawn(census_loop(shared, layout_rx));
    (Collector { requests, tasks: vec![poller, census] }, receiver)
}

impl Shared {
    fn send(&self, update: Update) {
        // The receiver is gone only when the program is ending.
        let _ = self.updates.send(update);
    }
}

/// Backoff before reconnect attempt `attempt` (1-based): doubling from [`BACKOFF_MIN`] to
/// [`BACKOFF_MAX`], with jitter so several sessiontops do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_MIN.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(BACKOFF_MAX);
    base.mul_f64(0.75 + fastrand::f64() * 0.5).min(BACKOFF_MAX)
}

/// The layout to use: the one asked for, or what detection found.
#[derive(Debug, Clone)]
pub enum Resolved {
    Layout {
        layout: Box<Layout>,
        note: Option<String>,
    },
    /// Detection found nothing (yet): the note says what was sampled; `empty` when the sample
    /// found no key at all (a store just flushed or restarted).
    NotDetected {
        note: String,
        empty: bool,
    },
}

/// Resolves `--layout`: loads a built-in or a file, or samples the keyspace.
pub async fn resolve_layout(link: &mut Link, choice: &Choice, overrides: &Overrides) -> Result<Resolved, ResolveError> {
    match choice {
        Choice::Builtin(kind) => {
            Ok(Resolved::Layout { layout: Box::new(Layout::builtin(*kind, overrides)?), note: None })
        }
        Choice::File(path) => {
            Ok(Resolved::Layout { layout: Box::new(Layout::from_file(path, overrides)?), note: None })
        }
        Choice::Auto => match detect::detect(link, overrides).await? {
            detect::Sample::Found(detection) => {
                tracing::info!("{}", detection.describe());
                let note = format!("detected from {}", detection.evidence());
                let Detection { layout, .. } = *detection;
                Ok(Resolved::Layout { layout: Box::new(layout), note: Some(note) })
            }
            detect::Sample::Nothing { sampled: 0 } => Ok(Resolved::NotDetected {
                note: "no session layout recognised: the database is empty; waiting for sessions to appear \
                       (or pass --layout trt|flask|FILE.toml)"
                    .into(),
                empty: true,
            }),
            detect::Sample::Nothing { sampled } => Ok(Resolved::NotDetected {
                note: format!(
                    "no session layout recognised in a sample of {sampled} keys{}; pass --layout trt|flask|FILE.toml",
                    overrides
                        .prefix
                        .as_ref()
                        .map(|p| format!(" under prefix '{}'", crate::util::text::escape_str(p)))
                        .unwrap_or_default()
                ),
                empty: false,
            }),
        },
    }
}

/// The first page of sessions, before any census: the `limit` most recent from an index scored
/// by last interaction, else the session keys of the first few `SCAN` calls, until `limit` are
/// found (the caller keeps the most recent of them).
pub async fn first_page(
    link: &mut Link,
    layout: &Layout,
    limit: usize,
    pacer: &std::sync::Mutex<crate::conn::pace::Pacer>,
    scan_count: usize,
) -> Result<Vec<SessionId>, Failure> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    if let Some(index) =
        layout.index.as_ref().filter(|i| i.score == crate::engine::layout::ScoreMeaning::LastInteraction)
    {
        // The newest `limit` members, in pages sized by their cost (a large `--limit` is not
        // one dear command).
        let page = pacer.lock().map(|p| p.page_size(crate::conn::pace::Kind::Zrevrange, 1000)).unwrap_or(100);
        let mut ids = Vec::new();
        while ids.len() < limit {
            let start = ids.len();
            let stop = (start + page).min(limit) - 1;
            let members: Vec<Vec<u8>> =
                link.query(redis::cmd("ZREVRANGE").arg(&index.key).arg(start).arg(stop)).await?;
            let last = members.len() < stop - start + 1;
            ids.extend(members.into_iter().map(SessionId::from));
            if last {
                break;
            }
        }
        return Ok(ids);
    }
    let pattern = layout.session_scan_pattern();
    let mut ids = Vec::new();
    let mut cursor: u64 = 0;
    // Each SCAN sized by its measured cost, like the census's.
    let count = pacer.lock().map(|p| p.page_size(crate::conn::pace::Kind::Scan, scan_count)).unwrap_or(100);
    for _ in 0..FIRST_PAGE_SCAN_CALLS {
        let (next, keys): (u64, Vec<Vec<u8>>) =
            link.query(redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(count)).await?;
        ids.extend(keys.iter().filter_map(|k| layout.session_id(k).map(SessionId::from)));
        cursor = next;
        if cursor == 0 || ids.len() >= limit {
            break;
        }
    }
    Ok(ids)
}

/// `SCAN` calls the first page may take on a layout without an index.
const FIRST_PAGE_SCAN_CALLS: usize = 50;

/// Why a layout could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Layout(#[from] crate::engine::layout::LayoutError),
    #[error(transparent)]
    Redis(#[from] Failure),
}

async fn poller(
    shared: Shared,
    choice: Choice,
    overrides: Overrides,
    writer: Writer,
    mut requests: mpsc::UnboundedReceiver<Request>,
    layout_tx: watch::Sender<Option<Arc<Layout>>>,
) {
    let mut state = PollerState::default();
    let mut attempt: u32 = 0;
    loop {
        state.polled = false;
        let failure = match shared.target.connect(shared.load.clone()).await {
            Ok(mut link) => {
                // A restarted or failed-over server may hold other sessions: look again.
                state.newest_score = None;
                state.detected_at = None;
                shared.send(Update::Link(LinkState::Connected { since: now_millis() }));
                run_connected(&shared, &mut link, &choice, &overrides, &writer, &mut requests, &layout_tx, &mut state)
                    .await
            }
            Err(failure) => failure,
        };
        // The backoff starts over only after a connection that worked: one that drops at
        // once (or fails every poll) is retried ever more slowly.
        if state.polled {
            attempt = 0;
        }
        attempt += 1;
        let (delay, link_state) = match &failure {
            Failure::Auth(error) => (
                AUTH_RETRY_INTERVAL,
                LinkState::AuthFailed {
                    error: error.clone(),
                    retry_at: now_millis() + AUTH_RETRY_INTERVAL.as_millis() as i64,
                },
            ),
            other => {
                let delay = backoff(attempt);
                let retry_at = now_millis() + delay.as_millis() as i64;
                (delay, LinkState::Reconnecting { attempt, retry_at, error: other.to_string() })
            }
        };
        tracing::warn!(attempt, ?delay, error = %failure, "connection lost");
        shared.send(Update::Link(link_state));
        // While waiting, answer requests that need no connection; `Refresh` retries at once.
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::Refresh) => break,
                    Some(other) => state.note_offline(&shared, other),
                },
            }
        }
    }
}

/// What the poller remembers across reconnects.
#[derive(Default)]
struct PollerState {
    /// Whether a poll has succeeded on the current connection.
    polled: bool,
    /// Whether the last look for a layout found no key at all.
    keyspace_empty: bool,
    /// sessiontop's own process, sampled every poll.
    own: Option<OwnProcess>,
    /// The host and its watched processes, sampled every poll.
    host: Option<Host>,
    /// The newest index score seen, so that each poll reads only the sessions saved since.
    newest_score: Option<f64>,
    /// When the layout was last looked for, while none is known.
    detected_at: Option<Instant>,
    layout: Option<Arc<Layout>>,
    viewport: Vec<SessionId>,
    inspecting: Option<SessionId>,
    /// The search for the inspected session's wildcard related keys, and when it began.
    related: Option<(RelatedSearch, Instant)>,
    /// A write being planned: its search for every key of the session goes on across polls.
    planning: Option<(WriteKind, RelatedSearch)>,
    interner: Interner,
}

impl PollerState {
    /// Keeps what a request asks for until the connection is back; writes are refused.
    fn note_offline(&mut self, shared: &Shared, request: Request) {
        match request {
            Request::Refresh => {}
            Request::CancelPlan => self.planning = None,
            Request::Viewport(ids) => self.viewport = ids,
            Request::Inspect(id) => self.inspecting = id,
            Request::Plan { id, kind } => {
                let _ = shared.updates.send(Update::Plan(PlanReply::Failed {
                    id,
                    kind,
                    error: "not connected to Redis".into(),
                }));
            }
            Request::Execute(plan) => shared.send(Update::WriteDone {
                message: format!("{} of '{}' not done: not connected to Redis", plan.kind.verb(), plan.id),
                ok: false,
            }),
            Request::PlanFix { kind, .. } => {
                shared.send(Update::FixPlans { kind, plans: Vec::new(), skipped: Vec::new() });
                shared.send(Update::Notice(format!("{} not fixed: not connected to Redis", kind.name())));
            }
            Request::ExecuteFix(plans) => shared.send(Update::WriteDone {
                message: format!("{} fixes not done: not connected to Redis", plans.len()),
                ok: false,
            }),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_connected(
    shared: &Shared,
    link: &mut Link,
    choice: &Choice,
    overrides: &Overrides,
    writer: &Writer,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    layout_tx: &watch::Sender<Option<Arc<Layout>>>,
    state: &mut PollerState,
) -> Failure {
    loop {
        let retry = if state.keyspace_empty { DETECT_EMPTY_RETRY_INTERVAL } else { DETECT_RETRY_INTERVAL };
        let detect_due = state.detected_at.is_none_or(|at| at.elapsed() >= retry);
        if state.layout.is_none() && detect_due {
            state.detected_at = Some(Instant::now());
            match resolve_layout(link, choice, overrides).await {
                Ok(Resolved::Layout { layout, note }) => {
                    shared.send(Update::Layout(Box::new(crate::engine::domain::LayoutInfo::new(&layout, note))));
                    let layout: Arc<Layout> = Arc::from(layout);
                    state.layout = Some(layout.clone());
                    let _ = layout_tx.send(Some(layout));
                }
                Ok(Resolved::NotDetected { note, empty }) => {
                    state.keyspace_empty = empty;
                    shared.send(Update::LayoutUnknown { note });
                }
                Err(ResolveError::Redis(f)) if f.is_connection() => return f,
                Err(e) => shared.send(Update::LayoutUnknown { note: e.to_string() }),
            }
        }
        match poll_once(shared, link, state).await {
            Ok(()) => state.polled = true,
            Err(f) if f.is_connection() => return f,
            Err(f) => shared.send(Update::Notice(f.to_string())),
        }
        let last_poll = Instant::now();

        // Wait for the next poll, answering requests meanwhile; a write being planned goes on
        // searching between them.
        let deadline = tokio::time::Instant::now() + shared.options.poll_interval;
        loop {
            if let Err(f) = advance_plan(shared, link, writer, state).await
                && f.is_connection()
            {
                return f;
            }
            let planning = state.planning.is_some();
            let request = tokio::select! {
                biased;
                request = requests.recv() => request,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = std::future::ready(()), if planning => continue,
            };
            let Some(request) = request else {
                return Failure::Connection("sessiontop is stopping".into());
            };
            let poll_now = match request {
                Request::Refresh => {
                    // Asked to look again now: that includes looking for the layout.
                    state.detected_at = None;
                    true
                }
                Request::Viewport(ids) => {
                    state.viewport = ids;
                    false
                }
                Request::Inspect(id) => {
                    let changed = state.inspecting != id;
                    state.inspecting = id;
                    changed && state.inspecting.is_some()
                }
                Request::Plan { id, kind } => {
                    match &state.layout {
                        // Every key, found afresh: the search goes on between polls.
                        Some(layout) => state.planning = Some((kind, RelatedSearch::new(layout, &id))),
                        None => {
                            let error = "the session layout is not known yet".into();
                            shared.send(Update::Plan(PlanReply::Failed { id, kind, error }));
                        }
                    }
                    false
                }
                Request::CancelPlan => {
                    state.planning = None;
                    false
                }
                Request::PlanFix { kind, ids, ttl_s } => {
                    match &state.layout {
                        Some(layout) => {
                            let layout = layout.clone();
                            let mut plans = Vec::new();
                            let mut skipped = Vec::new();
                            for id in ids {
                                match plan_fix(link, &layout, writer, &shared.pacer, &id, kind, None, ttl_s).await {
                                    Ok(Ok(plan)) => plans.push(plan),
                                    Ok(Err(why)) => skipped.push((id, why)),
                                    Err(f) if f.is_connection() => return f,
                                    Err(f) => skipped.push((id, f.to_string())),
                                }
                            }
                            shared.send(Update::FixPlans { kind, plans, skipped });
                        }
                        None => shared.send(Update::FixPlans { kind, plans: Vec::new(), skipped: Vec::new() }),
                    }
                    false
                }
                Request::ExecuteFix(plans) => {
                    let (mut done, mut failed) = (0, Vec::new());
                    for plan in &plans {
                        match writer.execute(link, plan).await {
                            Ok(_) => done += 1,
                            Err(crate::collect::write::WriteError::Redis(f)) if f.is_connection() => {
                                shared.send(Update::WriteDone {
                                    message: format!("fixed {done} of {}; then: {f}", plans.len()),
                                    ok: false,
                                });
                                return f;
                            }
                            Err(e) => failed.push(format!("'{}': {e}", plan.id)),
                        }
                    }
                    let message = match failed.first() {
                        None => format!("fixed {done} of {} sessions (see the audit log)", plans.len()),
                        Some(first) => {
                            format!("fixed {done} of {}; {} failed, first {first}", plans.len(), failed.len())
                        }
                    };
                    tracing::info!(%message, "fix");
                    shared.send(Update::WriteDone { message, ok: failed.is_empty() });
                    true
                }
                Request::Execute(plan) => {
                    let (message, ok) = match writer.execute(link, &plan).await {
                        Ok(outcome) => (outcome.summary(), true),
                        Err(crate::collect::write::WriteError::Redis(f)) if f.is_connection() => {
                            shared.send(Update::WriteDone {
                                message: format!("{} of '{}' failed: {f}", plan.kind.verb(), plan.id),
                                ok: false,
                            });
                            return f;
                        }
                        Err(e) => (format!("{} of '{}' failed: {e}", plan.kind.verb(), plan.id), false),
                    };
                    tracing::info!(%message, "write");
                    shared.send(Update::WriteDone { message, ok });
                    true
                }
            };
            if poll_now {
                tokio::time::sleep(MIN_POLL_GAP.saturating_sub(last_poll.elapsed())).await;
                break;
            }
        }
    }
}

/// `SCAN`s a plan's search takes before the poller looks at its requests again.
const SEARCH_CALLS_PER_STEP: usize = 8;

/// Takes a write's search for every key of its session a step further; when it is done, plans
/// the write and answers the dialog.
async fn advance_plan(
    shared: &Shared,
    link: &mut Link,
    writer: &Writer,
    state: &mut PollerState,
) -> Result<(), Failure> {
    let (Some(layout), Some((kind, search))) = (state.layout.clone(), state.planning.as_mut()) else { return Ok(()) };
    let scan_count = shared.options.census.scan_count;
    let kind = *kind;
    let done = match search.step(link, &layout, &shared.pacer, scan_count, SEARCH_CALLS_PER_STEP).await {
        Ok(done) => done,
        Err(f) => {
            let id = search.id.clone();
            state.planning = None;
            shared.send(Update::Plan(PlanReply::Failed { id, kind, error: f.to_string() }));
            return Err(f);
        }
    };
    if !done {
        shared.send(Update::Searching { id: search.id.clone(), progress: search.progress() });
        return Ok(());
    }
    let Some((kind, search)) = state.planning.take() else { return Ok(()) };
    let id = search.id.clone();
    let reply = match inspect::find_keys(link, &layout, &id, &shared.pacer, scan_count, Some(&search.found)).await {
        Ok((keys, score)) => match writer.plan(&layout, &id, kind, keys, score) {
            Ok(plan) => PlanReply::Ready(plan),
            Err(e) => PlanReply::Failed { id, kind, error: e.to_string() },
        },
        Err(f) => {
            let failed = PlanReply::Failed { id, kind, error: f.to_string() };
            shared.send(Update::Plan(failed));
            return Err(f);
        }
    };
    shared.send(Update::Plan(reply));
    Ok(())
}

/// Samples sessiontop's own CPU and memory (sysinfo), so the engineer can see what watching costs.
struct OwnProcess {
    system: sysinfo::System,
    pid: sysinfo::Pid,
}

impl OwnProcess {
    fn new() -> Option<OwnProcess> {
        Some(OwnProcess { system: sysinfo::System::new().ok()?, pid: sysinfo::get_current_pid().ok()? })
    }

    fn sample(&mut self) -> Option<Update> {
        let refresh = sysinfo::ProcessRefreshKind::nothing().with_cpu().with_memory();
        self.system.refresh_processes_specifics(sysinfo::ProcessesToUpdate::Some(&[self.pid]), true, refresh);
        let process = self.system.process(self.pid)?;
        Some(Update::OwnProcess { cpu_percent: process.cpu_usage(), rss_bytes: process.memory() })
    }
}

/// The machine sessiontop runs on (CPU, memory, load) and the processes each
/// `--watch-process` pattern matches (by name or command line; threads and sessiontop itself
/// are not counted).
pub struct Host {
    system: sysinfo::System,
    patterns: Vec<String>,
    own: Option<sysinfo::Pid>,
}

impl Host {
    pub fn new(patterns: Vec<String>) -> Option<Host> {
        Some(Host { system: sysinfo::System::new().ok()?, patterns, own: sysinfo::get_current_pid().ok() })
    }

    pub fn sample(&mut self) -> crate::engine::domain::HostStats {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let load = sysinfo::System::load_average().ok().map(|l| [l.one, l.five, l.fifteen]);
        let mut processes: Vec<crate::engine::domain::WatchedProcesses> = self
            .patterns
            .iter()
            .map(|p| crate::engine::domain::WatchedProcesses { pattern: p.clone(), ..Default::default() })
            .collect();
        if !self.patterns.is_empty() {
            let refresh = sysinfo::ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_cmd(sysinfo::UpdateKind::OnlyIfNotSet);
            self.system.refresh_processes_specifics(sysinfo::ProcessesToUpdate::All, true, refresh);
            for (pid, process) in self.system.processes() {
                if Some(*pid) == self.own || process.thread_kind().is_some() {
                    continue;
                }
                let name = process.name().to_string_lossy();
                let cmd = process.cmd().iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
                for watched in processes.iter_mut() {
                    if name.contains(watched.pattern.as_str()) || cmd.contains(watched.pattern.as_str()) {
                        watched.count += 1;
                        watched.rss_bytes += process.memory();
                        watched.cpu_percent += process.cpu_usage();
                    }
                }
            }
        }
        crate::engine::domain::HostStats {
            cpu_percent: self.system.global_cpu_usage(),
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            load,
            processes,
        }
    }
}

/// One poll: server statistics, the visible page, the inspector.
async fn poll_once(shared: &Shared, link: &mut Link, state: &mut PollerState) -> Result<(), Failure> {
    if state.own.is_none() {
        state.own = OwnProcess::new();
    }
    if let Some(update) = state.own.as_mut().and_then(OwnProcess::sample) {
        shared.send(update);
    }
    if state.host.is_none() {
        state.host = Host::new(shared.options.watch_processes.clone());
    }
    if let Some(host) = state.host.as_mut() {
        shared.send(Update::Host(Box::new(host.sample())));
    }
    let (stats, unavailable) = server::poll(link).await?;
    shared.send(Update::Server { stats: Box::new(stats), unavailable });
    link.sample_costs(&shared.pacer).await?;
    if let Ok(p) = shared.pacer.lock() {
        shared.send(Update::OwnLoad {
            redis_cpu_share: p.share(),
            budget: p.budget().to_string(),
            backing_off: p.backing_off(),
        });
    }
    let Some(layout) = state.layout.clone() else { return Ok(()) };

    let max_value_bytes = shared.options.census.max_value_bytes;
    let mut ids = state.viewport.clone();
    // Sessions saved since the last poll, from an index scored by last interaction: the most
    // recent first time round, then only what is newer (cheap, and the table stays live
    // between census passes).
    if let Some(index) =
        layout.index.as_ref().filter(|i| i.score == crate::engine::layout::ScoreMeaning::LastInteraction)
    {
        let limit = shared.options.page_size;
        let recent: Vec<(Vec<u8>, f64)> = match state.newest_score {
            None => {
                link.query(
                    redis::cmd("ZREVRANGE").arg(&index.key).arg(0).arg(limit.saturating_sub(1)).arg("WITHSCORES"),
                )
                .await?
            }
            Some(since) => {
                link.query(
                    redis::cmd("ZREVRANGEBYSCORE")
                        .arg(&index.key)
                        .arg("+inf")
                        .arg(format!("({since}"))
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit),
                )
                .await?
            }
        };
        if let Some(newest) = recent.iter().map(|(_, s)| *s).reduce(f64::max) {
            state.newest_score = Some(state.newest_score.map_or(newest, |s| s.max(newest)));
        }
        for (id, _) in recent {
            let id = SessionId::from(id);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if !ids.is_empty() {
        let batch = read::read_rows(
            link,
            &layout,
            ids,
            None,
            ReadOptions { page: true, max_value_bytes, thresholds: shared.options.census.thresholds },
            &mut state.interner,
            now_millis(),
        )
        .await?;
        shared.send(Update::Page { rows: batch.rows, unavailable: batch.unavailable });
        if !batch.missing.is_empty() {
            shared.send(Update::Gone { ids: batch.missing });
        }
    }

    if let Some(id) = state.inspecting.clone() {
        // The search for wildcard keys goes a step further each poll, and starts over now and
        // then while the inspector stays open.
        let stale = state
            .related
            .as_ref()
            .is_none_or(|(s, at)| s.id != id || (s.done && at.elapsed() >= RELATED_RESCAN_INTERVAL));
        if stale {
            state.related = Some((RelatedSearch::new(&layout, &id), Instant::now()));
        }
        let mut progress = None;
        let mut related = Vec::new();
        if let Some((search, _)) = state.related.as_mut() {
            let scan_count = shared.options.census.scan_count;
            search.step(link, &layout, &shared.pacer, scan_count, SEARCH_CALLS_PER_STEP).await?;
            progress = (!search.done).then(|| search.progress().unwrap_or(0.0));
            related = search.found.clone();
        }
        let (keys, score) = inspect::find_keys(link, &layout, &id, &shared.pacer, 0, Some(&related)).await?;
        let mut report = inspect::inspect(link, &layout, &id, &keys, score, max_value_bytes, now_millis()).await?;
        report.related_search = progress;
        shared.send(Update::Inspect(Box::new(report)));
    }
    Ok(())
}

async fn census_loop(shared: Shared, mut layout_rx: watch::Receiver<Option<Arc<Layout>>>) {
    let layout = loop {
        if let Some(layout) = layout_rx.borrow_and_update().clone() {
            break layout;
        }
        if layout_rx.changed().await.is_err() {
            return;
        }
    };
    let mut generation: u64 = 0;
    let mut attempt: u32 = 0;
    loop {
        let connected = async {
            let link = shared.target.connect(shared.load.clone()).await?;
            let walk_link = shared.target.connect(shared.load.clone()).await?;
            Ok::<_, Failure>((link, walk_link))
        };
        let (mut link, walk_link) = match connected.await {
            Ok(links) => links,
            Err(failure) => {
                attempt += 1;
                let delay = backoff(attempt);
                tracing::debug!(%failure, "census cannot connect");
                shared.send(Update::CensusProblem(format!(
                    "cannot connect: {failure}; retrying in {}s",
                    delay.as_secs_f64().ceil()
                )));
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        loop {
            generation += 1;
            let updates = shared.updates.clone();
            let result = census::run_pass(
                &mut link,
                walk_link.clone(),
                &layout,
                shared.options.census,
                generation,
                shared.pacer.clone(),
                |p| {
                    let _ = updates.send(Update::CensusBatch {
                        generation,
                        rows: p.rows,
                        partial: p.tally.clone(),
                        progress: p.fraction,
                    });
                },
            )
            .await;
            match result {
                Ok(outcome) => {
                    attempt = 0;
                    tracing::debug!(generation, duration = ?outcome.duration, total = outcome.tally.total, "census pass");
                    shared.send(Update::CensusDone {
                        generation,
                        tally: outcome.tally,
                        duration_ms: outcome.duration.as_millis() as u64,
                        orphan_ids: outcome.orphan_ids,
                    });
                    tokio::time::sleep(shared.options.census_pause).await;
                }
                Err(failure) if failure.is_connection() => {
                    attempt += 1;
                    let delay = backoff(attempt);
                    tracing::debug!(%failure, "census connection lost");
                    shared.send(Update::CensusProblem(format!(
                        "connection lost: {failure}; retrying in {}s",
                        delay.as_secs_f64().ceil()
                    )));
                    tokio::time::sleep(delay).await;
                    break;
                }
                Err(failure) => {
                    attempt += 1;
                    shared.send(Update::CensusProblem(format!("{failure}")));
                    tokio::time::sleep(shared.options.census_pause.max(backoff(attempt))).await;
                }
            }
        }
    }
}

/// The write that fixes `kind` for one session: `Unindex` for an orphaned entry, `EXPIRE` of
/// exactly the keys without TTL (to `ttl_s`), `Release` of a stale lock, or `write` (expire or
/// delete) for a stuck session. `Ok(Err(why))` when the fix does not fit the session (any more).
#[allow(clippy::too_many_arguments)]
pub async fn plan_fix(
    link: &mut Link,
    layout: &Layout,
    writer: &Writer,
    pacer: &Mutex<Pacer>,
    id: &SessionId,
    kind: crate::engine::domain::FindingKind,
    write: Option<WriteKind>,
    ttl_s: Option<i64>,
) -> Result<Result<crate::engine::msg::WritePlan, String>, Failure> {
    use crate::engine::domain::FindingKind;
    let write = match (kind, write) {
        (FindingKind::Orphaned, _) => WriteKind::Unindex,
        (FindingKind::StaleLock, _) => WriteKind::Release,
        (FindingKind::NoTtl, _) => match ttl_s {
            Some(s) => WriteKind::Expire(s),
            None => return Ok(Err("no session lifetime is known: give a TTL".into())),
        },
        (_, Some(write)) => write,
        (_, None) => return Ok(Err(format!("{} has no fix of its own: expire or delete the sessions", kind.name()))),
    };
    // Keys named by wildcard patterns are not what these findings are about, and finding them
    // would scan the keyspace once per session: only a delete looks for them.
    let known = if write == WriteKind::Delete { None } else { Some(&[][..]) };
    let (mut keys, score) = inspect::find_keys(link, layout, id, pacer, 1000, known).await?;
    if kind == FindingKind::NoTtl {
        let mut pipe = crate::conn::link::pipe();
        for k in &keys {
            pipe.cmd("PTTL").arg(&k.key);
        }
        let replies = link.pipeline(&pipe).await?;
        keys = keys
            .into_iter()
            .zip(replies)
            .filter(|(_, r)| crate::conn::link::reply::int(r) == Some(-1))
            .map(|(k, _)| k)
            .collect();
    }
    Ok(match writer.plan(layout, id, write, keys, score) {
        Ok(plan) if plan.is_empty() => Err("nothing left to change".into()),
        Ok(plan) => Ok(plan),
        Err(e) => Err(e.to_string()),
    })
}
