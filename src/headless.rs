//! The headless commands' orchestration: `snapshot`, `inspect`, `expire`, `persist`,
//! `delete`. They gather data with the same collectors the dashboard uses, into the same
//! [`Model`]; the output module prints it as text or JSON.

pub mod doctor;
pub mod events;
pub mod json;
pub mod plain;
pub mod report;

use std::sync::Arc;

use crate::collect::census::{self, CensusLinks};
use crate::collect::detect::{self, ResolveError, Resolved};
use crate::collect::fix::{FixOrder, Planner};
use crate::collect::read::{ReadOptions, Reader, read_rows};
use crate::collect::stages::Stages;
use crate::collect::write::{WriteError, WriteOutcome};
use crate::collect::{inspect, now_millis, page, server};
use crate::conn::link::Failure;
use crate::conn::route::Router;
use crate::conn::topology::{LinkUse, Topology};
use crate::engine::domain::{SessionReport, SessionRow};
use crate::engine::layout::Layout;
use crate::engine::model::Model;
use crate::engine::msg::{Update, WriteKind, WritePlan};
use crate::engine::names::SessionId;
use crate::engine::summary::{StalledCount, TopN};
use crate::setup::{Setup, SetupError};
use crate::util::progress::Progress;
use crate::util::text;

/// Why a headless command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error("cannot connect to {url}: {failure}")]
    Connect { url: String, failure: Failure },
    #[error("{0}")]
    Redis(Failure),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    NotDetected(String),
    #[error("no session '{id}' under layout {layout} (no keys, no index entry)")]
    NoSession { id: String, layout: String },
    #[error(transparent)]
    Write(WriteError),
    /// The user (or the lack of a terminal) declined.
    #[error("{0}")]
    Refused(String),
    /// What was asked cannot be had from this server (session events it does not send).
    #[error("{0}")]
    Unavailable(String),
}

impl HeadlessError {
    /// 2 for a refusal (read-only, declined, no terminal to ask on), 1 for every error.
    pub fn exit_code(&self) -> i32 {
        match self {
            HeadlessError::Refused(_) | HeadlessError::Write(WriteError::ReadOnly) => 2,
            _ => 1,
        }
    }
}

impl From<Failure> for HeadlessError {
    fn from(f: Failure) -> Self {
        HeadlessError::Redis(f)
    }
}

impl HeadlessError {
    fn from_write(e: WriteError, store: &Store) -> Self {
        match e {
            WriteError::NoSession(id) => HeadlessError::NoSession { id, layout: store.describe_layout() },
            other => HeadlessError::Write(other),
        }
    }
}

/// The session store a command works on: the target, its nodes, a connection to it, and the
/// layout its sessions are in.
pub struct Store {
    pub target: crate::setup::TargetSetup,
    /// Paced by the one-shot budget: what each node's commands cost it.
    pub topology: Arc<Topology>,
    pub router: Router,
    /// `None` when `--layout auto` recognised no layout (an empty or unfamiliar keyspace).
    pub layout: Option<Layout>,
    /// What detection said: the evidence for the layout it chose, or why it chose none.
    pub note: Option<String>,
}

impl Store {
    /// The layout, or why there is none.
    pub fn layout(&self) -> Result<&Layout, HeadlessError> {
        self.layout.as_ref().ok_or_else(|| HeadlessError::NotDetected(self.note.clone().unwrap_or_default()))
    }

    /// `trt, prefix 'trt:' (detected from …)`, for messages.
    pub fn describe_layout(&self) -> String {
        let Some(layout) = &self.layout else { return "none".into() };
        format!(
            "{}, prefix '{}'{}",
            layout.kind.name(),
            text::escape_str(&layout.prefix),
            self.note.as_ref().map(|n| format!(" ({})", text::escape_str(n))).unwrap_or_default()
        )
    }

    /// The census's connections: the reads share the command's own.
    async fn census_links(&self) -> Result<CensusLinks, Failure> {
        Ok(CensusLinks {
            reads: self.router.clone(),
            walk: Router::discover(&self.topology, LinkUse::CensusWalk).await?,
        })
    }
}

/// Connects to the command's one target and resolves the layout.
pub async fn open(setup: &Setup) -> Result<Store, HeadlessError> {
    let target = setup.one()?;
    let url = || target.target.redacted_url().to_string();
    let topology = setup.topology(target, false);
    let router = Router::discover(&topology, LinkUse::Poll)
        .await
        .map_err(|failure| HeadlessError::Connect { url: url(), failure })?;
    if topology.read_from() != crate::conn::topology::ReadFrom::Primary {
        // Which replicas are in sync, before the first read.
        server::poll_target(&router).await.map_err(|failure| HeadlessError::Connect { url: url(), failure })?;
    }
    let spec = &target.layout;
    let resolved = detect::resolve_layout(&router, &spec.choice, &spec.overrides).await.map_err(|e| match e {
        // A server that wants a password answers the first command, not the connection.
        ResolveError::Redis(failure @ Failure::Auth(_)) => HeadlessError::Connect { url: url(), failure },
        other => HeadlessError::Resolve(other),
    })?;
    // The first look at the costs, so the last can say what this command cost Redis.
    router.sample_costs_now().await?;
    let target = target.clone();
    let (layout, note) = match resolved {
        Resolved::Layout { layout, note } => (Some(*layout), note),
        Resolved::NotDetected { note, .. } => (None, Some(note)),
    };
    Ok(Store { target, topology, router, layout, note })
}

/// A full poll and census, as the model holds it, plus the sessions to list.
pub struct SnapshotData {
    /// Server, census totals and settings; judged as of `model.now`, when the snapshot began.
    pub model: Model,
    /// `None` when no layout was recognised: the server alone is reported.
    pub layout: Option<Layout>,
    /// What detection said.
    pub detection: Option<String>,
    /// The most recently active sessions, most recent first.
    pub items: Vec<SessionRow>,
    /// Stalled sessions over the whole census (`None` without one).
    pub stalled: Option<u64>,
    /// `None` when the census was not run (`--no-census`, or no layout).
    pub census_duration_ms: Option<u64>,
    /// The share of one Redis core this snapshot's commands used while it ran (from `INFO
    /// commandstats`, `None` where that cannot be read), and the budget it ran under.
    pub redis_cpu_share: Option<f64>,
    pub budget: String,
    /// Commands sent to the target since the command began.
    pub commands_sent: u64,
    /// The watch over stages a series of snapshots carries from one to the next.
    stages: Option<Arc<Stages>>,
}

/// One full poll and census, streamed: the census's counts and the `limit` most recent
/// sessions are kept, never a row per session, so memory stays bounded whatever the store's
/// size. With `census` false, the server and the first page of sessions only (the first
/// screen). Without a layout (an empty keyspace under `--layout auto`), the server alone: no
/// session is invented.
pub async fn snapshot(
    setup: &Setup,
    store: &mut Store,
    limit: usize,
    census: bool,
) -> Result<SnapshotData, HeadlessError> {
    snapshot_watched(setup, store, limit, census, Observe::No).await
}

/// Whether a snapshot is one of a series (`check --observe`), which can tell what one look
/// cannot: restarts, drops, jumps, and stages that do not change.
enum Observe<'a> {
    No,
    /// The first of a series.
    Start,
    /// A later pass, going on from the one before.
    From(&'a SnapshotData),
}

/// How far back a one-shot look (`snapshot`, `check`) judges the slowlog.
const SLOWLOG_LOOK_BACK_MS: i64 = 10 * 60 * 1000;

/// A snapshot that goes on from an earlier one's watch (`check --observe`): restarts, changes
/// of role, evictions, drops and stages that do not change are judged against it.
async fn snapshot_watched(
    setup: &Setup,
    store: &mut Store,
    limit: usize,
    census: bool,
    observe: Observe<'_>,
) -> Result<SnapshotData, HeadlessError> {
    let started = now_millis();
    let mut model = Model::new(store.target.info.clone(), setup.model_settings(), started);
    // The times findings say are local, as on the dashboard.
    model.utc_offset_s = chrono::Local::now().offset().local_minus_utc();
    model.baseline = setup.collect.watch.baseline;
    // A one-shot look judges the slowlog's last minutes; a watch, what came since it began.
    model.watch_began = started - SLOWLOG_LOOK_BACK_MS;
    let mut stages = None;
    if let Observe::From(earlier) = observe {
        model.continue_from(&earlier.model);
        model.watch_began = earlier.model.watch_began;
        stages = earlier.stages.clone();
    }
    model.apply(Update::Link(crate::engine::domain::LinkState::Connected { since: started }));
    let polled = server::poll_target(&store.router).await?;
    let clients = crate::collect::clients::poll(&store.router, polled.stats.connected_clients, started).await?;
    model.apply(Update::Clients(Box::new(clients)));
    let slowlog = crate::collect::slowlog::poll(&store.router, store.layout.as_ref(), started).await?;
    model.apply(Update::Slowlog(Box::new(slowlog)));
    model.apply(Update::Server { stats: Box::new(polled.stats), unavailable: polled.unavailable });
    if let Some(nodes) = polled.nodes {
        model.apply(Update::Nodes(Box::new(nodes)));
    }
    let mut data = SnapshotData {
        model,
        layout: None,
        detection: store.note.clone(),
        items: Vec::new(),
        stalled: None,
        census_duration_ms: None,
        redis_cpu_share: None,
        budget: String::new(),
        commands_sent: 0,
        stages,
    };
    match store.layout.clone() {
        None => {
            if let Some(note) = &store.note {
                data.model.apply(Update::LayoutUnknown { note: note.clone() });
            }
        }
        Some(layout) => {
            data.model
                .apply(Update::Layout(Box::new(crate::engine::domain::LayoutInfo::new(&layout, store.note.clone()))));
            if !matches!(observe, Observe::From(_)) {
                data.stages = Some(Stages::for_layout(&layout, setup.collect.watch));
            }
            if census {
                census_into(setup, store, &layout, limit, &mut data).await?;
            } else {
                first_page_into(setup, store, &layout, limit, &mut data).await?;
            }
            data.layout = Some(layout);
        }
    }
    // The last look at the costs: what the command's commands cost Redis since it began.
    store.router.sample_costs_now().await?;
    data.redis_cpu_share = store.topology.share_overall();
    data.budget = store.topology.load_report().budget;
    data.commands_sent = store.topology.commands_sent();
    Ok(data)
}

/// The options of a page read: what only the sessions listed get (memory, status).
fn page_read(setup: &Setup) -> ReadOptions {
    ReadOptions {
        page: true,
        max_value_bytes: setup.collect.census.max_value_bytes,
        thresholds: setup.collect.census.thresholds,
    }
}

/// The server and the first page of sessions only (the first screen).
async fn first_page_into(
    setup: &Setup,
    store: &mut Store,
    layout: &Layout,
    limit: usize,
    data: &mut SnapshotData,
) -> Result<(), HeadlessError> {
    let scan_count = setup.collect.census.scan_count;
    let ids = page::first_page(&store.router, layout, limit, scan_count).await?;
    let batch =
        read_rows(&store.router, layout, ids, None, page_read(setup), &mut Reader::default(), now_millis()).await?;
    data.model.session_unavailable = batch.unavailable;
    let mut top = TopN::new(limit, data.model.settings.idle);
    for row in &batch.rows {
        top.offer(row);
    }
    data.items = top.into_rows();
    Ok(())
}

/// What the work costs Redis, for a progress bar that is shown: the share of a core of the node
/// that pays most, and the budget.
fn cost(topology: &Topology, progress: &Progress) -> Option<String> {
    if !progress.shown() {
        return None;
    }
    let load = topology.load_report();
    let share = load.redis_cpu_share?;
    Some(format!("{} of a core (budget {})", text::percent(share), load.budget))
}

/// A census pass, streamed: its counts, the stalled, and the `limit` most recent sessions read
/// again as a page.
async fn census_into(
    setup: &Setup,
    store: &mut Store,
    layout: &Layout,
    limit: usize,
    data: &mut SnapshotData,
) -> Result<(), HeadlessError> {
    let started = data.model.now;
    let model = &mut data.model;
    let mut top = TopN::new(limit, model.settings.idle);
    let mut stalled = StalledCount::new(model.settings.clone(), started);
    let mut links = store.census_links().await?;
    let stages = data.stages.as_deref();
    let (progress, topology) = (Progress::start("census"), store.topology.clone());
    let outcome = census::run_pass(&mut links, layout, setup.collect.census, 1, stages, None, |p| {
        for row in &p.rows {
            top.offer(row);
            stalled.see(row);
        }
        progress.update(p.tally.examined, p.fraction, cost(&topology, &progress));
    })
    .await?;
    progress.finish();
    let census_duration_ms = outcome.duration.as_millis() as u64;
    let mut tally = outcome.tally;
    tally.flow = stages.and_then(|s| s.pass_done(now_millis()));
    model.apply(Update::CensusDone {
        generation: 1,
        tally,
        duration_ms: census_duration_ms,
        orphan_ids: outcome.orphan_ids,
    });
    let by_stage = stalled.by_stage(model.lifetime_s());
    let stalled: u64 = by_stage.iter().map(|(_, n)| n).sum();
    // Counted over the whole pass (generation 1) as it streamed.
    model.set_stalled(stalled, by_stage, Some(1));
    data.stalled = Some(stalled);
    data.census_duration_ms = Some(census_duration_ms);

    // The most recent, read again with what only a page read reads (memory, status).
    let kept = top.into_rows();
    let ids: Vec<SessionId> = kept.iter().map(|r| r.id.clone()).collect();
    let batch =
        read_rows(&store.router, layout, ids, None, page_read(setup), &mut Reader::default(), now_millis()).await?;
    data.model.session_unavailable = batch.unavailable;
    let mut fresh: std::collections::HashMap<SessionId, SessionRow> =
        batch.rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    // A session that expired since the census is left out; the order is the census's.
    data.items = kept.into_iter().filter_map(|r| fresh.remove(&r.id)).collect();
    Ok(())
}

/// Everything about one session.
pub async fn inspect(
    setup: &Setup,
    store: &mut Store,
    id: &SessionId,
) -> Result<(SessionReport, Model), HeadlessError> {
    let layout = store.layout()?.clone();
    let scan_count = setup.collect.census.scan_count;
    let (keys, score) = inspect::find_keys(&store.router, &layout, id, scan_count, None).await?;
    if keys.is_empty() && score.is_none() {
        return Err(HeadlessError::NoSession { id: id.escaped(), layout: store.describe_layout() });
    }
    let now = now_millis();
    let max_value_bytes = setup.collect.census.max_value_bytes;
    let mut decoded = inspect::Decoded::default();
    let report = inspect::inspect(&store.router, &layout, id, &keys, score, max_value_bytes, now, &mut decoded).await?;
    let mut model = Model::new(store.target.info.clone(), setup.model_settings(), now);
    model.apply(Update::Layout(Box::new(crate::engine::domain::LayoutInfo::new(&layout, store.note.clone()))));
    model.apply(Update::Inspect(Box::new(report.clone())));
    Ok((report, model))
}

/// Plans a write, asks `confirm` (for delete), carries it out and reads it back.
pub async fn write(
    setup: &Setup,
    store: &mut Store,
    id: &SessionId,
    kind: WriteKind,
    confirm: impl FnOnce(&WritePlan) -> Result<(), HeadlessError>,
) -> Result<WriteOutcome, HeadlessError> {
    let writer = store.target.writer.clone();
    // Refuse before reading anything, so read-only is obviously safe.
    if writer.is_read_only() {
        return Err(HeadlessError::Write(WriteError::ReadOnly));
    }
    let layout = store.layout()?.clone();
    let scan_count = setup.collect.census.scan_count;
    let (keys, score) = inspect::find_keys(&store.router.primary_only(), &layout, id, scan_count, None).await?;
    let plan = writer
        .plan(&store.router.topology().map(), &layout, id, kind, keys, score)
        .map_err(|e| HeadlessError::from_write(e, store))?;
    if plan.keys.is_empty() && plan.index.is_none() {
        return Err(HeadlessError::Refused(format!(
            "nothing to {} for session '{}': it has no keys of its own{}",
            kind.verb(),
            id,
            if plan.untouched.is_empty() { "" } else { " (locks and counters are left to expire)" }
        )));
    }
    confirm(&plan)?;
    writer.execute(&store.router.primary_only(), &plan).await.map_err(|e| HeadlessError::from_write(e, store))
}

/// `check`'s exit code when it cannot judge (the Nagios plugin convention).
pub const CHECK_UNKNOWN: u8 = 3;

/// What `check` concludes: the worst finding, as the Nagios plugin convention grades it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub worst: Option<crate::engine::domain::Severity>,
    pub observed_s: u64,
    /// What could not be judged (no session layout found), said beside what was.
    pub unjudged: Option<String>,
}

impl Verdict {
    pub fn of(data: &SnapshotData, observed_s: u64) -> Verdict {
        Verdict { worst: crate::engine::diagnose::worst(&data.model.findings), observed_s, unjudged: None }
    }

    /// 0 OK (nothing, or only information), 1 warning, 2 critical; 3 unknown when the sessions
    /// could not be judged and the server showed nothing worse (the order of the Nagios
    /// plugins' own worst-of: critical, warning, unknown, OK).
    pub fn exit_code(&self) -> u8 {
        match (self.worst, &self.unjudged) {
            (Some(crate::engine::domain::Severity::Critical), _) => 2,
            (Some(crate::engine::domain::Severity::Warning), _) => 1,
            (_, Some(_)) => CHECK_UNKNOWN,
            _ => 0,
        }
    }

    pub fn status(&self) -> &'static str {
        match self.exit_code() {
            2 => "CRITICAL",
            1 => "WARNING",
            0 => "OK",
            _ => "UNKNOWN",
        }
    }

    /// The first line: `WARNING: 1,234 sessions; 1 warning (no_ttl), 2 info`.
    pub fn summary(&self, data: &SnapshotData) -> String {
        use crate::engine::domain::Severity;
        let f = &data.model.findings;
        let count = |s: Severity| f.iter().filter(|x| x.severity == s).count();
        let names =
            |s: Severity| f.iter().filter(|x| x.severity == s).map(|x| x.kind.name()).collect::<Vec<_>>().join(", ");
        let sessions = match (&data.layout, &self.unjudged) {
            (Some(_), None) => format!("{} sessions", text::grouped(data.model.census.totals().total)),
            (Some(_), Some(why)) => format!("{} sessions; {why}", text::grouped(data.model.census.totals().total)),
            (None, Some(why)) => why.clone(),
            (None, None) => "no session layout".to_string(),
        };
        let mut parts = Vec::new();
        for (severity, one, many) in
            [(Severity::Critical, "critical", "critical"), (Severity::Warning, "warning", "warnings")]
        {
            match count(severity) {
                0 => {}
                1 => parts.push(format!("1 {one} ({})", names(severity))),
                n => parts.push(format!("{n} {many} ({})", names(severity))),
            }
        }
        if parts.is_empty() {
            parts.push("no warnings".into());
        }
        if count(Severity::Info) > 0 {
            parts.push(format!("{} info", count(Severity::Info)));
        }
        let watched = if self.observed_s > 0 {
            format!(" (watched {})", text::human_duration(self.observed_s as i64))
        } else {
            String::new()
        };
        format!("{}: {sessions}; {}{watched}", self.status(), parts.join(", "))
    }
}

/// `check`: one poll and census (and, with `observe`, more polls and passes for that long, so
/// that what only a series shows is seen too), then the findings.
pub async fn check(
    setup: &Setup,
    store: &mut Store,
    observe: std::time::Duration,
) -> Result<(SnapshotData, Verdict), HeadlessError> {
    let started = std::time::Instant::now();
    let first = if observe.is_zero() { Observe::No } else { Observe::Start };
    let mut data = snapshot_watched(setup, store, 0, true, first).await?;
    // A connection lost while watching (a restart, a failover) is found again and the watch
    // goes on from where it was; one still lost at the end is said beside what was seen.
    let mut lost: Option<String> = None;
    while started.elapsed() < observe {
        let left = observe.saturating_sub(started.elapsed());
        tokio::time::sleep(setup.collect.poll_interval.min(left)).await;
        let step = if started.elapsed() >= observe {
            // The last look at the server, judged against the watch.
            last_look(store, &mut data).await
        } else {
            // Another poll and pass, judged against the ones before.
            snapshot_watched(setup, store, 0, true, Observe::From(&data)).await.map(|next| data = next)
        };
        match step {
            Ok(()) => lost = None,
            Err(HeadlessError::Redis(f)) if f.is_connection() => {
                tracing::info!(error = %f, "check: connection lost, connecting again");
                data.model.apply(Update::Link(crate::engine::domain::LinkState::Reconnecting {
                    attempt: 1,
                    retry_at: now_millis(),
                    error: f.to_string(),
                }));
                lost = Some(f.to_string());
                if let Ok(router) = Router::discover(&store.topology, LinkUse::Poll).await {
                    store.router = router;
                }
            }
            Err(other) => return Err(other),
        }
    }
    let mut verdict = Verdict::of(&data, started.elapsed().as_secs().min(observe.as_secs()));
    verdict.unjudged = lost.map(|f| format!("Redis did not answer at the end of the watch ({})", text::escape_str(&f)));
    Ok((data, verdict))
}

/// The watch's last look at the server, through a connection found again if the one held
/// was lost (a server restarted since the last poll).
async fn last_look(store: &mut Store, data: &mut SnapshotData) -> Result<(), HeadlessError> {
    let polled = match server::poll_target(&store.router).await {
        Err(f) if f.is_connection() => {
            store.router = Router::discover(&store.topology, LinkUse::Poll).await?;
            server::poll_target(&store.router).await?
        }
        polled => polled?,
    };
    data.model.tick(now_millis(), store.topology.commands_sent());
    data.model.apply(Update::Server { stats: Box::new(polled.stats), unavailable: polled.unavailable });
    if let Some(nodes) = polled.nodes {
        data.model.apply(Update::Nodes(Box::new(nodes)));
    }
    Ok(())
}

/// The most sessions `inspect --by` names when an id belongs to several.
const BY_ID_MATCHES: usize = 20;

/// The session that one of the application's own ids (`session_id=9b2f…`) belongs to, found by
/// a pass over the sessions (paced like the census) that reads each session's id fields.
pub async fn find_by_app_id(setup: &Setup, store: &mut Store, by: &str) -> Result<SessionId, HeadlessError> {
    let layout = store.layout()?.clone();
    let ids: Vec<&String> = layout.fields.ids.iter().take(crate::engine::domain::APP_ID_FIELDS).collect();
    let Some((field, value)) = by.split_once('=').map(|(f, v)| (f.trim(), v.trim())) else {
        return Err(HeadlessError::Refused(format!(
            "--by takes FIELD=VALUE, like {}=…",
            ids.first().map_or("session_id", |f| f.as_str())
        )));
    };
    if !ids.iter().any(|f| *f == field) {
        let known = if ids.is_empty() {
            "it names none".to_string()
        } else {
            ids.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
        };
        return Err(HeadlessError::Refused(format!(
            "layout {} has no id field '{}' ({known}; a layout file lists them in [fields] ids)",
            layout.name,
            text::escape_str(field)
        )));
    }
    let key = crate::engine::domain::app_id_key(field, value.as_bytes());
    let mut found: Vec<SessionId> = Vec::new();
    let mut total = 0u64;
    let mut links = store.census_links().await?;
    census::run_pass(&mut links, &layout, setup.collect.census, 1, None, None, |p| {
        for row in &p.rows {
            if row.app_ids.contains(&key) {
                total += 1;
                if found.len() < BY_ID_MATCHES && !found.contains(&row.id) {
                    found.push(row.id.clone());
                }
            }
        }
    })
    .await?;
    match found.len() {
        0 => Err(HeadlessError::NoSession {
            id: format!("{}={}", text::escape_str(field), text::escape_str(value)),
            layout: store.describe_layout(),
        }),
        1 => Ok(found.remove(0)),
        _ => Err(HeadlessError::Refused(format!(
            "{total} sessions have {}={}: {}; inspect one by its id",
            text::escape_str(field),
            text::escape_str(value),
            found.iter().map(|id| id.escaped()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// What `fix` planned: the writes, one per session, and what it left out and why.
pub struct FixPlans {
    pub kind: crate::engine::domain::FindingKind,
    pub plans: Vec<WritePlan>,
    /// Sessions the fix does not fit (any more), with why.
    pub skipped: Vec<(SessionId, String)>,
    /// Sessions the finding counts in all (more than `--limit` are left for another run).
    pub found: u64,
}

/// Plans the fix for a finding: a census pass finds the sessions it counts (at most `limit`),
/// and each gets its exact write: `ZREM` of an orphaned entry, `EXPIRE` of exactly the keys
/// without TTL, `UNLINK` of a stale lock, or `EXPIRE`/`DELETE` of a stuck session.
pub async fn plan_fix(
    setup: &Setup,
    store: &mut Store,
    order: FixOrder,
    limit: usize,
) -> Result<FixPlans, HeadlessError> {
    use crate::engine::domain::{FindingKind, OwnFix};
    let kind = order.kind;
    let layout = store.layout()?.clone();
    let mut targets: Vec<SessionId> = Vec::new();
    let mut found = 0u64;
    let mut links = store.census_links().await?;
    let (progress, topology) = (Progress::start("finding them"), store.topology.clone());
    let outcome = census::run_pass(&mut links, &layout, setup.collect.census, 1, None, None, |p| {
        for row in &p.rows {
            if row.findings.iter().any(|f| f.kind == kind) {
                found += 1;
                if targets.len() < limit {
                    targets.push(row.id.clone());
                }
            }
        }
        progress.update(p.tally.examined, p.fraction, cost(&topology, &progress));
    })
    .await?;
    progress.finish();
    if kind == FindingKind::Orphaned {
        found = outcome.tally.orphaned;
        targets = outcome.orphan_ids.into_iter().take(limit).collect();
    }
    let lifetime = order.ttl_s.or(layout.lifetime_s).or_else(|| {
        let max = outcome.tally.max_ttl_ms;
        (max > 0).then(|| crate::engine::domain::infer_lifetime((max + 999) / 1000))
    });
    if kind.own_fix() == Some(OwnFix::GiveTtl) && lifetime.is_none() {
        return Err(HeadlessError::Refused("no session lifetime is known: pass --ttl".into()));
    }
    if kind.own_fix().is_none() && order.write.is_none() {
        return Err(HeadlessError::Refused("say what to do with them: --expire DURATION or --delete".into()));
    }
    let writer = store.target.writer.clone();
    let primary = store.router.primary_only();
    let mut planner = Planner { router: &primary, layout: &layout, writer: &writer };
    let order = FixOrder { ttl_s: lifetime, ..order };
    let mut plans = Vec::new();
    let mut skipped = Vec::new();
    for id in targets {
        match planner.plan(&id, order).await? {
            Ok(plan) => plans.push(plan),
            Err(why) => skipped.push((id, why.to_string())),
        }
    }
    Ok(FixPlans { kind, plans, skipped, found })
}

/// A fix's write that failed: which, for which session, and why.
#[derive(Debug, thiserror::Error)]
#[error("{verb} of '{id}': {error}")]
pub struct FixFailed {
    pub verb: &'static str,
    pub id: SessionId,
    pub error: WriteError,
}

/// Carries out confirmed fix plans one by one; each is audited like any write.
pub async fn apply_fix(store: &mut Store, plans: &[WritePlan]) -> Vec<Result<WriteOutcome, FixFailed>> {
    let writer = store.target.writer.clone();
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let result = writer.execute(&store.router.primary_only(), plan).await.map_err(|error| FixFailed {
            verb: plan.kind.verb(),
            id: plan.id.clone(),
            error,
        });
        out.push(result);
    }
    out
}
