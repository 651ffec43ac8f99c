//! The poller: one task per target that keeps a connection to the target's node, finds the
//! session layout, polls `INFO` and `DBSIZE`, reads the sessions on screen and those saved
//! since the last poll, keeps the open inspector fresh, and plans and carries out the writes
//! the user confirmed. Between polls it answers requests as they come.
//!
//! A lost connection is said ([`LinkState::Reconnecting`]) and retried with backoff; while it
//! is down, requests that need no connection are kept and writes are refused with why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::census::CensusOptions;
use super::detect::{self, ResolveError, Resolved};
use super::fix::{FixOrder, Planner};
use super::inspect::{self, RelatedSearch};
use super::read::{self, ReadOptions};
use super::stages::Stages;
use super::write::{WriteError, Writer};
use super::{CollectOptions, Found, LayoutSpec, backoff, now_millis, page, server};
use crate::conn::link::Failure;
use crate::conn::route::Router;
use crate::conn::topology::{LinkUse, Topology};
use crate::engine::domain::{FindingKind, LayoutInfo, LinkState};
use crate::engine::layout::Layout;
use crate::engine::msg::{PlanReply, Request, Update, WriteKind, WritePlan};
use crate::engine::names::SessionId;

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
/// Retry interval after the server refused the credentials.
const AUTH_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// `SCAN`s a search for wildcard keys takes before the poller looks at its requests again.
const SEARCH_CALLS_PER_STEP: usize = 8;

/// The poller of one target: what it was given, and what it remembers across polls and
/// reconnects.
pub struct Poller {
    topology: Arc<Topology>,
    layout_spec: LayoutSpec,
    options: CollectOptions,
    writer: Writer,
    updates: mpsc::UnboundedSender<Update>,
    /// Whether a poll has succeeded on the current connection.
    polled: bool,
    /// Whether the last look for a layout found no key at all.
    keyspace_empty: bool,
    /// The newest index score seen, so that each poll reads only the sessions saved since.
    newest_score: Option<f64>,
    /// When the layout was last looked for, while none is known.
    detected_at: Option<Instant>,
    layout: Option<Arc<Layout>>,
    /// The watch over the stages of the layout's sessions, when they keep no history.
    stages: Option<Arc<Stages>>,
    /// When the clients were last listed.
    clients_at: Option<crate::engine::domain::Millis>,
    /// When the slowlog was last read.
    slowlog_at: Option<crate::engine::domain::Millis>,
    viewport: Vec<SessionId>,
    /// Sessions events said were written since the last poll (at most a page, newest kept).
    touched: Vec<SessionId>,
    inspecting: Option<SessionId>,
    /// The search for the inspected session's wildcard related keys, and when it began.
    related: Option<(RelatedSearch, Instant)>,
    /// The inspected session's payload as last decoded.
    decoded: inspect::Decoded,
    /// A write being planned: its search for every key of the session goes on across polls.
    planning: Option<(WriteKind, RelatedSearch)>,
    /// The page's reader: shared label texts, and large payloads' decodings.
    reader: read::Reader,
}

impl Poller {
    pub fn new(
        topology: Arc<Topology>,
        layout_spec: LayoutSpec,
        options: CollectOptions,
        writer: Writer,
        updates: mpsc::UnboundedSender<Update>,
    ) -> Poller {
        Poller {
            topology,
            layout_spec,
            options,
            writer,
            updates,
            polled: false,
            keyspace_empty: false,
            newest_score: None,
            detected_at: None,
            layout: None,
            stages: None,
            clients_at: None,
            slowlog_at: None,
            viewport: Vec::new(),
            touched: Vec::new(),
            inspecting: None,
            related: None,
            decoded: inspect::Decoded::default(),
            planning: None,
            reader: read::Reader::default(),
        }
    }

    fn send(&self, update: Update) {
        // The receiver is gone only when the program is ending.
        let _ = self.updates.send(update);
    }

    fn census(&self) -> CensusOptions {
        self.options.census
    }

    /// Connects, polls until the connection fails, says so, waits, and connects again; forever,
    /// or until the requests' sender is gone. The layout found is passed to the census.
    pub async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        layout_tx: watch::Sender<Option<Found>>,
    ) {
        let mut attempt: u32 = 0;
        loop {
            self.polled = false;
            let failure = match Router::discover(&self.topology, LinkUse::Poll).await {
                Ok(router) => {
                    // A restarted or failed-over server may hold other sessions: look again.
                    self.newest_score = None;
                    self.detected_at = None;
                    self.send(Update::Link(LinkState::Connected { since: now_millis() }));
                    self.run_connected(&router, &mut requests, &layout_tx).await
                }
                Err(failure) => failure,
            };
            // The backoff starts over only after a connection that worked: one that drops at
            // once (or fails every poll) is retried ever more slowly.
            if self.polled {
                attempt = 0;
            }
            attempt += 1;
            let delay = self.say_lost(&failure, attempt);
            // While waiting, answer requests that need no connection; `Refresh` retries at once.
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    request = requests.recv() => match request {
                        None => return,
                        Some(Request::Refresh) => break,
                        Some(other) => self.note_offline(other),
                    },
                }
            }
        }
    }

    /// Says the connection is lost and when it is tried again; returns how long to wait.
    fn say_lost(&self, failure: &Failure, attempt: u32) -> Duration {
        let (delay, link_state) = match failure {
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
        self.send(Update::Link(link_state));
        delay
    }

    /// Keeps what a request asks for until the connection is back; writes are refused.
    fn note_offline(&mut self, request: Request) {
        let offline = "not connected to Redis";
        match request {
            Request::Refresh => {}
            Request::CancelPlan => self.planning = None,
            Request::Viewport(ids) => self.viewport = ids,
            Request::Touched(ids) => self.touch(ids),
            Request::Inspect(id) => self.inspecting = id,
            Request::PlanWrite { id, kind } => {
                self.send(Update::Plan(PlanReply::Failed { id, kind, error: offline.into() }))
            }
            Request::Execute(plan) => self.send(Update::WriteDone {
                message: format!("{} of '{}' not done: {offline}", plan.kind.verb(), plan.id),
                ok: false,
            }),
            Request::PlanFix { kind, .. } => {
                self.send(Update::FixPlans { kind, plans: Vec::new(), skipped: Vec::new() });
                self.send(Update::Notice(format!("{} not fixed: {offline}", kind.name())));
            }
            Request::ExecuteFix(plans) => self
                .send(Update::WriteDone { message: format!("{} fixes not done: {offline}", plans.len()), ok: false }),
            Request::Baseline(at) => self.set_baseline(at),
        }
    }

    /// The deploy baseline, for the watch of stages now and any made after.
    fn set_baseline(&mut self, at: Option<crate::engine::domain::Millis>) {
        self.options.watch.baseline = at;
        if let Some(stages) = &self.stages {
            stages.set_baseline(at);
        }
    }

    /// Polls on the connection until it fails: returns why.
    async fn run_connected(
        &mut self,
        router: &Router,
        requests: &mut mpsc::UnboundedReceiver<Request>,
        layout_tx: &watch::Sender<Option<Found>>,
    ) -> Failure {
        // Reading from replicas needs to know which are in sync before the first read.
        if self.layout.is_none()
            && router.topology().read_from() != crate::conn::topology::ReadFrom::Primary
            && let Err(f) = self.poll_servers(router).await
        {
            return f;
        }
        loop {
            if let Err(f) = self.find_layout(router, layout_tx).await {
                return f;
            }
            match self.poll_once(router).await {
                Ok(()) => self.polled = true,
                Err(f) if f.is_connection() => return f,
                Err(f) => self.send(Update::Notice(f.to_string())),
            }
            // The poll, and what the requests before it sent, cost the nodes' budgets too.
            router.charge().await;
            if let Err(f) = self.answer_until_next_poll(router, requests).await {
                return f;
            }
        }
    }

    /// Looks for the layout while none is known, now and then; a connection failure is the
    /// only error.
    async fn find_layout(&mut self, router: &Router, layout_tx: &watch::Sender<Option<Found>>) -> Result<(), Failure> {
        let retry = if self.keyspace_empty { DETECT_EMPTY_RETRY_INTERVAL } else { DETECT_RETRY_INTERVAL };
        if self.layout.is_some() || self.detected_at.is_some_and(|at| at.elapsed() < retry) {
            return Ok(());
        }
        self.detected_at = Some(Instant::now());
        let spec = &self.layout_spec;
        match detect::resolve_layout(router, &spec.choice, &spec.overrides).await {
            Ok(Resolved::Layout { layout, note }) => {
                self.send(Update::Layout(Box::new(LayoutInfo::new(&layout, note))));
                let layout: Arc<Layout> = Arc::from(layout);
                self.stages = Some(Stages::for_layout(&layout, self.options.watch));
                self.layout = Some(layout.clone());
                let _ = layout_tx.send(Some((layout, self.stages.clone())));
            }
            Ok(Resolved::NotDetected { note, empty }) => {
                self.keyspace_empty = empty;
                self.send(Update::LayoutUnknown { note });
            }
            Err(ResolveError::Redis(f)) if f.is_connection() => return Err(f),
            Err(e) => self.send(Update::LayoutUnknown { note: e.to_string() }),
        }
        Ok(())
    }

    /// Waits for the next poll, answering requests meanwhile; a write being planned goes on
    /// searching between them.
    async fn answer_until_next_poll(
        &mut self,
        router: &Router,
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) -> Result<(), Failure> {
        let last_poll = Instant::now();
        let deadline = tokio::time::Instant::now() + self.options.poll_interval;
        loop {
            if let Err(f) = self.advance_plan(&router.primary_only()).await
                && f.is_connection()
            {
                return Err(f);
            }
            let planning = self.planning.is_some();
            let request = tokio::select! {
                biased;
                request = requests.recv() => request,
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = std::future::ready(()), if planning => continue,
            };
            let Some(request) = request else {
                return Err(Failure::Connection("sessiontop is stopping".into()));
            };
            if self.answer(router, request).await? {
                tokio::time::sleep(MIN_POLL_GAP.saturating_sub(last_poll.elapsed())).await;
                return Ok(());
            }
        }
    }

    /// Answers one request; returns whether to poll at once. A connection failure is the only
    /// error.
    async fn answer(&mut self, router: &Router, request: Request) -> Result<bool, Failure> {
        Ok(match request {
            Request::Refresh => {
                // Asked to look again now: that includes looking for the layout.
                self.detected_at = None;
                true
            }
            Request::Viewport(ids) => {
                self.viewport = ids;
                false
            }
            Request::Touched(ids) => {
                self.touch(ids);
                false
            }
            Request::Inspect(id) => {
                let changed = self.inspecting != id;
                self.inspecting = id;
                changed && self.inspecting.is_some()
            }
            Request::PlanWrite { id, kind } => {
                match &self.layout {
                    // Every key, found afresh: the search goes on between polls.
                    Some(layout) => self.planning = Some((kind, RelatedSearch::new(layout, &id))),
                    None => {
                        let error = "the session layout is not known yet".into();
                        self.send(Update::Plan(PlanReply::Failed { id, kind, error }));
                    }
                }
                false
            }
            Request::CancelPlan => {
                self.planning = None;
                false
            }
            Request::PlanFix { kind, ids, ttl_s } => {
                self.plan_fixes(&router.primary_only(), FixOrder { kind, write: None, ttl_s }, ids).await?;
                false
            }
            Request::ExecuteFix(plans) => {
                self.execute_fixes(&router.primary_only(), &plans).await?;
                true
            }
            Request::Execute(plan) => {
                self.execute(&router.primary_only(), &plan).await?;
                true
            }
            Request::Baseline(at) => {
                self.set_baseline(at);
                false
            }
        })
    }

    /// Plans a finding's fix for the sessions it names, for the dashboard's dialog.
    async fn plan_fixes(&mut self, router: &Router, order: FixOrder, ids: Vec<SessionId>) -> Result<(), Failure> {
        let kind: FindingKind = order.kind;
        let Some(layout) = self.layout.clone() else {
            self.send(Update::FixPlans { kind, plans: Vec::new(), skipped: Vec::new() });
            return Ok(());
        };
        let mut planner = Planner { router, layout: &layout, writer: &self.writer };
        let mut plans = Vec::new();
        let mut skipped = Vec::new();
        for id in ids {
            match planner.plan(&id, order).await {
                Ok(Ok(plan)) => plans.push(plan),
                Ok(Err(why)) => skipped.push((id, why.to_string())),
                Err(f) if f.is_connection() => return Err(f),
                Err(f) => skipped.push((id, f.to_string())),
            }
        }
        self.send(Update::FixPlans { kind, plans, skipped });
        Ok(())
    }

    /// Carries out a fix's writes one by one, and says how many were made.
    async fn execute_fixes(&mut self, router: &Router, plans: &[WritePlan]) -> Result<(), Failure> {
        let (mut done, mut failed) = (0, Vec::new());
        for plan in plans {
            match self.writer.execute(router, plan).await {
                Ok(_) => done += 1,
                Err(WriteError::Redis(f)) if f.is_connection() => {
                    let message = format!("fixed {done} of {}; then: {f}", plans.len());
                    self.send(Update::WriteDone { message, ok: false });
                    return Err(f);
                }
                Err(e) => failed.push(format!("'{}': {e}", plan.id)),
            }
        }
        let message = match failed.first() {
            None => format!("fixed {done} of {} sessions (see the audit log)", plans.len()),
            Some(first) => format!("fixed {done} of {}; {} failed, first {first}", plans.len(), failed.len()),
        };
        tracing::info!(%message, "fix");
        self.send(Update::WriteDone { message, ok: failed.is_empty() });
        Ok(())
    }

    /// Carries out a write the user confirmed, and says what it did.
    async fn execute(&mut self, router: &Router, plan: &WritePlan) -> Result<(), Failure> {
        let (message, ok) = match self.writer.execute(router, plan).await {
            Ok(outcome) => (outcome.summary(), true),
            Err(WriteError::Redis(f)) if f.is_connection() => {
                let message = format!("{} of '{}' failed: {f}", plan.kind.verb(), plan.id);
                self.send(Update::WriteDone { message, ok: false });
                return Err(f);
            }
            Err(e) => (format!("{} of '{}' failed: {e}", plan.kind.verb(), plan.id), false),
        };
        tracing::info!(%message, "write");
        self.send(Update::WriteDone { message, ok });
        Ok(())
    }

    /// Takes a write's search for every key of its session a step further; when it is done,
    /// plans the write and answers the dialog.
    async fn advance_plan(&mut self, router: &Router) -> Result<(), Failure> {
        let scan_count = self.options.census.scan_count;
        let (Some(layout), Some((kind, search))) = (self.layout.clone(), self.planning.as_mut()) else { return Ok(()) };
        let kind = *kind;
        let step = search.step(router, &layout, scan_count, SEARCH_CALLS_PER_STEP).await;
        let (id, progress) = (search.id.clone(), search.progress());
        match step {
            Err(f) => {
                self.planning = None;
                self.send(Update::Plan(PlanReply::Failed { id, kind, error: f.to_string() }));
                return Err(f);
            }
            Ok(false) => {
                self.send(Update::Searching { id, progress });
                return Ok(());
            }
            Ok(true) => {}
        }
        let Some((kind, search)) = self.planning.take() else { return Ok(()) };
        let found = inspect::find_keys(router, &layout, &id, scan_count, Some(&search.found)).await;
        let reply = match found {
            Ok((keys, score)) => match self.writer.plan(&router.topology().map(), &layout, &id, kind, keys, score) {
                Ok(plan) => PlanReply::Ready(plan),
                Err(e) => PlanReply::Failed { id, kind, error: e.to_string() },
            },
            Err(f) => {
                self.send(Update::Plan(PlanReply::Failed { id, kind, error: f.to_string() }));
                return Err(f);
            }
        };
        self.send(Update::Plan(reply));
        Ok(())
    }

    /// One poll: server statistics, sessiontop's cost, the visible page, the inspector.
    async fn poll_once(&mut self, router: &Router) -> Result<(), Failure> {
        self.poll_servers(router).await?;
        let load = self.topology.load_report();
        self.send(Update::OwnLoad {
            redis_cpu_share: load.redis_cpu_share,
            // Each node has the whole budget of its own core; the share shown is the dearest node's.
            budget: if load.nodes > 1 { format!("{} a node", load.budget) } else { load.budget },
            backing_off: load.backing_off,
        });
        let Some(layout) = self.layout.clone() else { return Ok(()) };
        self.poll_page(router, &layout).await?;
        if let Some(id) = self.inspecting.clone() {
            self.poll_inspector(router, &layout, &id).await?;
        }
        Ok(())
    }

    /// The server's statistics, and what sessiontop's commands cost it: of its one node, or of
    /// every node of a cluster (with the map read again, and each node's own figures).
    async fn poll_servers(&mut self, router: &Router) -> Result<(), Failure> {
        let polled = server::poll_target(router).await?;
        let now = super::now_millis();
        if self.clients_at.is_none_or(|at| now - at >= super::clients::CLIENTS_EVERY_MS) {
            self.clients_at = Some(now);
            let view = super::clients::poll(router, polled.stats.connected_clients, now).await?;
            self.send(Update::Clients(Box::new(view)));
        }
        if self.slowlog_at.is_none_or(|at| now - at >= super::slowlog::SLOWLOG_EVERY_MS) {
            self.slowlog_at = Some(now);
            let view = super::slowlog::poll(router, self.layout.as_deref(), now).await?;
            self.send(Update::Slowlog(Box::new(view)));
        }
        self.send(Update::Server { stats: Box::new(polled.stats), unavailable: polled.unavailable });
        if let Some(nodes) = polled.nodes {
            self.send(Update::Nodes(Box::new(nodes)));
        }
        Ok(())
    }

    /// Remembers sessions events said were written, for the next poll: a page of them at most,
    /// the newest kept.
    fn touch(&mut self, ids: Vec<SessionId>) {
        for id in ids {
            if !self.touched.contains(&id) {
                self.touched.push(id);
            }
        }
        let excess = self.touched.len().saturating_sub(self.options.page_size);
        self.touched.drain(..excess);
    }

    /// The sessions on screen, and those saved since the last poll (from an index scored by
    /// last interaction: the most recent first time round, then only what is newer).
    async fn poll_page(&mut self, router: &Router, layout: &Layout) -> Result<(), Failure> {
        let mut ids = self.viewport.clone();
        for id in std::mem::take(&mut self.touched) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        if let Some(index) = page::recency_index(layout) {
            let recent = page::saved_since(router, index, self.newest_score, self.options.page_size).await?;
            if let Some(newest) = recent.iter().map(|(_, s)| *s).reduce(f64::max) {
                self.newest_score = Some(self.newest_score.map_or(newest, |s| s.max(newest)));
            }
            for (id, _) in recent {
                let id = SessionId::from(id);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let census = self.census();
        let options =
            ReadOptions { page: true, max_value_bytes: census.max_value_bytes, thresholds: census.thresholds };
        let now = now_millis();
        let mut batch = read::read_rows(router, layout, ids, None, options, &mut self.reader, now).await?;
        if let Some(stages) = &self.stages {
            stages.observe(&mut batch.rows, now);
        }
        self.send(Update::Page { rows: batch.rows, unavailable: batch.unavailable });
        if !batch.missing.is_empty() {
            self.send(Update::Gone { ids: batch.missing });
        }
        Ok(())
    }

    /// The open inspector's session, read afresh; the search for its wildcard keys goes a step
    /// further each poll, and starts over now and then while the inspector stays open.
    async fn poll_inspector(&mut self, router: &Router, layout: &Layout, id: &SessionId) -> Result<(), Failure> {
        let stale = self
            .related
            .as_ref()
            .is_none_or(|(s, at)| s.id != *id || (s.done && at.elapsed() >= RELATED_RESCAN_INTERVAL));
        if stale {
            self.related = Some((RelatedSearch::new(layout, id), Instant::now()));
        }
        let mut progress = None;
        let mut related = Vec::new();
        if let Some((search, _)) = self.related.as_mut() {
            let scan_count = self.options.census.scan_count;
            search.step(router, layout, scan_count, SEARCH_CALLS_PER_STEP).await?;
            progress = (!search.done).then(|| search.progress().unwrap_or(0.0));
            related = search.found.clone();
        }
        let (keys, score) = inspect::find_keys(router, layout, id, 0, Some(&related)).await?;
        let max_value_bytes = self.census().max_value_bytes;
        let now = now_millis();
        let decoded = &mut self.decoded;
        let mut report = inspect::inspect(router, layout, id, &keys, score, max_value_bytes, now, decoded).await?;
        report.related_search = progress;
        self.send(Update::Inspect(Box::new(report)));
        Ok(())
    }
}
