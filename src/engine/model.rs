//! The one state sessiontop knows about its target: server statistics with their trends, the
//! sessions seen, the census totals, the connection's health and sessiontop's own load.
//!
//! Collectors change it only by sending [`Update`]s, applied in one place ([`Model::apply`]).
//! Time enters only through [`Model::tick`], so every derived figure (TTL left, idle time) is a
//! pure function of the model and views can be drawn and tested without a clock.
//!
//! Must never do I/O.

use crate::conn::info::ServerStats;
use crate::engine::diagnose::{self, Tracker};
use crate::engine::domain::{
    self, CensusTally, Finding, FindingKind, LayoutInfo, LifetimeSource, LinkState, Millis, SessionReport, SessionRow,
    Severity, TargetInfo, Thresholds, Ttl,
};
use crate::engine::layout::IdleSource;
use crate::engine::msg::Update;
use crate::engine::names::SessionId;

/// Where the census is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CensusState {
    /// The running pass (starts at 1).
    pub generation: u64,
    /// The last pass that ended.
    pub done_generation: u64,
    /// Totals of the last complete pass, if one completed.
    pub complete: Option<CensusTally>,
    /// Totals of the running pass so far.
    pub partial: CensusTally,
    /// How far the running pass is, 0.0 to 1.0, when known.
    pub progress: Option<f64>,
    /// How long the last complete pass took.
    pub last_duration_ms: Option<u64>,
    /// When the last complete pass finished.
    pub completed_at: Option<Millis>,
    /// Ids of orphaned index entries from the last pass (capped).
    pub orphan_ids: Vec<SessionId>,
    /// Why the census is not making progress (cannot connect, a pass failed), until it does.
    pub blocked: Option<String>,
}

impl CensusState {
    /// The totals to show: the last complete pass, else the running one.
    pub fn totals(&self) -> &CensusTally {
        self.complete.as_ref().unwrap_or(&self.partial)
    }
}

/// Settings the model needs to derive figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// How sessions' idle time is found.
    pub idle: IdleSource,
    /// `--session-lifetime`; else the layout's; else inferred from the largest TTL seen.
    pub lifetime_s: Option<i64>,
    /// The layout's own session lifetime.
    pub layout_lifetime_s: Option<i64>,
    /// `--stalled-after`: the threshold of stages without one of their own.
    pub stalled_after_s: i64,
    /// Stages or substates with their own stalled threshold (the layout's).
    pub stage_limits: Vec<(String, i64)>,
    /// Final stages/substates of the layout (never stalled).
    pub finals: Vec<String>,
    /// Stages and substates in workflow order, for the per-stage bar.
    pub stages: Vec<String>,
    pub substates: Vec<String>,
    /// Where findings start.
    pub thresholds: Thresholds,
    /// How often the server is polled, to tell a server that stopped answering.
    pub poll_interval_ms: Millis,
}

impl ModelSettings {
    /// How long `row` may sit idle before it is stalled.
    pub fn stalled_after(&self, row: &SessionRow) -> i64 {
        domain::stalled_after_for(
            self.stalled_after_s,
            &self.stage_limits,
            row.stage.as_deref(),
            row.substate.as_deref(),
        )
    }
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            idle: IdleSource::LastInteraction,
            lifetime_s: None,
            layout_lifetime_s: None,
            stalled_after_s: domain::DEFAULT_STALLED_AFTER_S,
            stage_limits: Vec::new(),
            finals: Vec::new(),
            stages: Vec::new(),
            substates: Vec::new(),
            thresholds: Thresholds::default(),
            poll_interval_ms: 1000,
        }
    }
}

/// How long a connected server may leave a poll unanswered before it is said to be silent (or
/// three polls, when they are further apart).
pub const SILENT_AFTER_MS: Millis = 5000;

/// How many recent notices the model keeps.
const NOTICE_CAPACITY: usize = 20;

/// What sessiontop's own work costs: its commands, the share of a Redis core they use, the
/// budget, and its own process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnLoad {
    /// Commands sent in all, and when that was last sampled.
    sampled: Option<(Millis, u64)>,
    pub commands_per_sec: Option<f64>,
    /// The share of one Redis core sessiontop's commands used lately, the budget in force, and
    /// whether the pacer is holding back because Redis is slow.
    pub redis_share: Option<f64>,
    pub budget: Option<String>,
    pub backing_off: bool,
    /// sessiontop's own CPU share (percent of one core) and resident memory.
    pub process: Option<(f32, u64)>,
}

/// How many session events the model keeps for the events view and the inspector.
pub const EVENTS_KEPT: usize = 500;

/// The state.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub target: TargetInfo,
    pub settings: ModelSettings,
    pub now: Millis,
    /// The local time zone's offset from UTC, in seconds, for the clock on screen; set by the
    /// runtime, so views never read the system time zone.
    pub utc_offset_s: i32,
    pub link: LinkState,
    pub layout: Option<LayoutInfo>,
    pub layout_note: Option<String>,
    pub server: Option<ServerStats>,
    /// The nodes of a target made of several, as the last poll saw them.
    pub nodes: Option<crate::engine::domain::NodesView>,
    /// Who is connected, as last listed.
    pub clients: Option<crate::engine::domain::ClientsView>,
    /// The slowlog of every primary, as last read.
    pub slowlog: Option<crate::engine::domain::SlowlogView>,
    /// When the model began watching.
    pub watch_began: Millis,
    /// Whether session events can be had here, and the newest of them (at most
    /// [`EVENTS_KEPT`]), oldest first.
    pub events_state: crate::engine::domain::EventsState,
    pub events: std::collections::VecDeque<crate::engine::domain::SessionEvent>,
    /// Sessions the events said were created, and ended (expired, evicted, deleted), since the
    /// last census pass ended: its count kept current between passes.
    pub since_pass: (u64, u64),
    /// When `server` was read.
    pub server_at: Option<Millis>,
    /// Server fields that could not be read, with why.
    pub server_unavailable: Vec<String>,
    /// Every figure over the last day: the charts and the panels' trends read it.
    pub history: crate::engine::history::Histories,
    /// The deploy baseline (`--baseline`, `b`): panels show changes since it.
    pub baseline: Option<Millis>,
    /// The machine sessiontop runs on, as last sampled.
    pub host: Option<crate::engine::domain::HostStats>,
    /// Other targets watched beside this one that are the same Redis server (see
    /// [`crate::engine::diagnose::same_servers`]).
    pub same_server: Vec<(String, bool)>,
    pub census: CensusState,
    /// Session fields that could not be read (`MEMORY USAGE denied`).
    pub session_unavailable: Vec<String>,
    pub inspect: Option<SessionReport>,
    pub notices: Vec<(Millis, String)>,
    pub own: OwnLoad,
    /// Stalled sessions in all and by stage, as the table last counted them.
    pub stalled: Option<(u64, Vec<(String, u64)>)>,
    /// Whether a pass ended since the stalled counts were last given (the next are its).
    stalled_due: bool,
    /// What the findings remember between polls, and the findings now, most severe first.
    pub tracker: Tracker,
    pub findings: Vec<Finding>,
}

impl Model {
    pub fn new(target: TargetInfo, settings: ModelSettings, now: Millis) -> Self {
        Model {
            target,
            settings,
            now,
            utc_offset_s: 0,
            link: LinkState::Connecting,
            layout: None,
            layout_note: None,
            server: None,
            nodes: None,
            clients: None,
            slowlog: None,
            watch_began: now,
            events_state: crate::engine::domain::EventsState::Unknown,
            events: std::collections::VecDeque::new(),
            since_pass: (0, 0),
            server_at: None,
            server_unavailable: Vec::new(),
            history: Default::default(),
            baseline: None,
            host: None,
            same_server: Vec::new(),
            census: CensusState::default(),
            session_unavailable: Vec::new(),
            inspect: None,
            notices: Vec::new(),
            own: OwnLoad::default(),
            stalled: None,
            stalled_due: false,
            tracker: Tracker::default(),
            findings: Vec::new(),
        }
    }

    /// Takes over what an earlier model of the same target watched: the series findings need
    /// (restarts, evictions, passes, stalled counts) and the history.
    pub fn continue_from(&mut self, earlier: &Model) {
        self.tracker = earlier.tracker.clone();
        self.history = earlier.history.clone();
        self.census.generation = earlier.census.generation;
    }

    /// Puts the findings together again from what the model holds.
    pub fn refresh_findings(&mut self) {
        let has_index = self.layout.as_ref().is_some_and(|l| l.has_index);
        let has_history = self.layout.as_ref().is_some_and(|l| l.stuck_by_history);
        let inputs = diagnose::Inputs {
            server: self.server.as_ref(),
            nodes: self.nodes.as_ref(),
            census: self.census.complete.as_ref(),
            orphan_ids: &self.census.orphan_ids,
            stalled: self.stalled.as_ref().map(|(n, by)| (*n, by.as_slice())),
            stalled_after_s: self.settings.stalled_after_s,
            stage_limits: &self.settings.stage_limits,
            thresholds: &self.settings.thresholds,
            same_server: &self.same_server,
            has_index,
            has_history,
            finals: self.layout.as_ref().map_or(&[], |l| l.finals.as_slice()),
            slowlog: self.slowlog.as_ref(),
            watch_began: self.watch_began,
            utc_offset_s: self.utc_offset_s,
            now: self.now,
        };
        self.findings = diagnose::findings(&inputs, &self.tracker);
    }

    /// The stalled counts, made after census pass `pass` ended (`None`: while the first pours
    /// in). The series and the jump are judged only on counts of a whole pass, the first
    /// after each: a count of part of a pass is no level to jump from.
    pub fn set_stalled(&mut self, total: u64, by_stage: Vec<(String, u64)>, pass: Option<u64>) {
        let whole = pass.is_some_and(|p| p >= self.census.done_generation);
        let due = self.stalled_due && whole;
        if due {
            self.stalled_due = false;
        }
        if due {
            self.tracker.observe_stalled(self.now, &by_stage);
            self.history.record("stalled", self.now, Some(total as f64));
        }
        if due || self.stalled.as_ref() != Some(&(total, by_stage.clone())) {
            self.stalled = Some((total, by_stage));
            self.refresh_findings();
        }
    }

    /// Advances the model's clock and samples sessiontop's own command count.
    pub fn tick(&mut self, now: Millis, own_commands_total: u64) {
        self.now = now;
        match self.own.sampled {
            Some((then, before)) if now.saturating_sub(then) >= 1000 => {
                let rate =
                    (own_commands_total.saturating_sub(before)) as f64 * 1000.0 / (now.saturating_sub(then)) as f64;
                self.own.commands_per_sec = Some(rate);
                self.history.record("own_commands_per_sec", now, Some(rate));
                self.own.sampled = Some((now, own_commands_total));
            }
            Some(_) => {}
            None => self.own.sampled = Some((now, own_commands_total)),
        }
    }

    /// Whether what is shown may be out of date (the connection is not up).
    /// Whether what is shown is not the server as it is now: the connection is down, or the
    /// server keeps it and answers nothing ([`Model::silent_ms`]).
    pub fn is_stale(&self) -> bool {
        !matches!(self.link, LinkState::Connected { .. }) || self.silent_ms().is_some()
    }

    /// How long a server whose connection is up has answered no poll, once that is longer
    /// than [`SILENT_AFTER_MS`] or three polls: a paused, frozen or overloaded server keeps its
    /// connections and answers nothing until the response timeout ends them.
    pub fn silent_ms(&self) -> Option<Millis> {
        if !matches!(self.link, LinkState::Connected { .. }) {
            return None;
        }
        let quiet = self.now.saturating_sub(self.server_at?);
        (quiet > (3 * self.settings.poll_interval_ms).max(SILENT_AFTER_MS)).then_some(quiet)
    }

    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Host(host) => {
                let (h, now) = (&mut self.history, self.now);
                h.record("host_cpu", now, Some(f64::from(host.cpu_percent) / 100.0));
                h.record("host_memory", now, Some(host.memory_used_bytes as f64));
                for p in &host.processes {
                    h.record(&crate::engine::history::process_series(&p.pattern), now, Some(p.rss_bytes as f64));
                }
                let changed = self.tracker.observe_host(&host, now);
                self.host = Some(*host);
                if changed {
                    self.refresh_findings();
                }
            }
            Update::Link(state) => {
                if !matches!(state, LinkState::Connected { .. }) {
                    self.history.gap(self.now);
                }
                self.link = state;
            }
            Update::Layout(info) => {
                self.settings.idle = info.idle;
                self.settings.finals = info.finals.clone();
                self.settings.stages = info.stages.clone();
                self.settings.substates = info.substates.clone();
                self.settings.stage_limits = info.stage_limits.clone();
                self.settings.layout_lifetime_s = info.lifetime_s;
                self.layout_note = info.note.clone();
                self.layout = Some(*info);
            }
            Update::LayoutUnknown { note } => self.layout_note = Some(note),
            Update::Server { stats, unavailable } => self.apply_server(*stats, unavailable),
            Update::EventsState(state) => self.events_state = state,
            Update::Slowlog(view) => {
                self.slowlog = Some(*view);
                self.refresh_findings();
            }
            Update::SessionEvents(events) => self.take_events(events),
            Update::Clients(view) => {
                self.tracker.observe_clients(&view, self.baseline);
                self.clients = Some(*view);
                self.refresh_findings();
            }
            Update::Nodes(view) => {
                self.tracker.observe_nodes(&view, self.now);
                for n in &view.nodes {
                    let s = n.stats.as_deref();
                    let (h, now) = (&mut self.history, self.now);
                    let memory = format!("{}{}", crate::engine::history::NODE_MEMORY_PREFIX, n.address);
                    h.record(&memory, now, s.and_then(|s| s.used_memory_bytes).map(|v| v as f64));
                    let ops = format!("{}{}", crate::engine::history::NODE_OPS_PREFIX, n.address);
                    h.record(&ops, now, s.and_then(|s| s.ops_per_sec).map(|v| v as f64));
                }
                self.nodes = Some(*view);
                self.refresh_findings();
            }
            // The rows are the table's (the dashboard sends them there); the model keeps what
            // was said about them.
            Update::Page { unavailable, .. } => self.session_unavailable = unavailable,
            Update::Gone { .. } => {}
            Update::CensusBlocked(reason) => self.census.blocked = Some(reason),
            // The dialog shows how far a search has come; the model keeps nothing of it.
            Update::Searching { .. } => {}
            Update::OwnLoad { redis_cpu_share, budget, backing_off } => {
                self.own.redis_share = redis_cpu_share;
                if let Some(share) = redis_cpu_share {
                    self.history.record("own_redis_share", self.now, Some(share));
                }
                self.own.budget = Some(budget);
                self.own.backing_off = backing_off;
            }
            Update::CensusBatch { generation, partial, progress, .. } => {
                self.census.blocked = None;
                self.census.generation = generation;
                self.census.partial = partial;
                self.census.progress = progress;
            }
            Update::CensusDone { generation, tally, duration_ms, orphan_ids } => {
                self.census_done(generation, tally, duration_ms, orphan_ids);
            }
            Update::Inspect(report) => self.inspect = Some(*report),
            // The dashboard's dialogs take these; the model keeps nothing of them.
            Update::FixPlans { .. } | Update::Plan(_) => {}
            Update::OwnProcess { cpu_percent, rss_bytes } => self.own.process = Some((cpu_percent, rss_bytes)),
            Update::WriteDone { message, .. } | Update::Notice(message) => {
                self.notices.push((self.now, message));
                if self.notices.len() > NOTICE_CAPACITY {
                    self.notices.remove(0);
                }
            }
        }
    }

    fn apply_server(&mut self, stats: ServerStats, unavailable: Vec<String>) {
        self.tracker.observe_server(&stats, self.now);
        self.record_server(&stats);
        self.server = Some(stats);
        self.server_at = Some(self.now);
        self.server_unavailable = unavailable;
        self.refresh_findings();
        self.record_findings();
    }

    /// The server's figures into the history; counters as rates since the last poll.
    fn record_server(&mut self, stats: &ServerStats) {
        let (h, now) = (&mut self.history, self.now);
        let n = |v: Option<u64>| v.map(|v| v as f64);
        h.record(crate::engine::history::USED_MEMORY, now, n(stats.used_memory_bytes));
        h.record(crate::engine::history::MAXMEMORY, now, n(stats.maxmemory_bytes));
        h.record("rss", now, n(stats.used_memory_rss_bytes));
        h.record("fragmentation", now, stats.mem_fragmentation_ratio);
        h.record("clients", now, n(stats.connected_clients));
        h.record("blocked_clients", now, n(stats.blocked_clients));
        h.record("ops_per_sec", now, n(stats.ops_per_sec));
        h.record("hit_rate", now, stats.hit_rate());
        h.record("db_keys", now, n(stats.db_keys));
        h.record(crate::engine::history::EVICTED_KEYS, now, n(stats.evicted_keys));
        h.record(crate::engine::history::EXPIRED_KEYS, now, n(stats.expired_keys));
        h.record(crate::engine::history::UPTIME, now, n(stats.uptime_seconds));
        if let (Some(before), Some(at)) = (self.server.as_ref(), self.server_at)
            && now > at
        {
            let secs = (now - at) as f64 / 1000.0;
            let rate = |a: Option<u64>, b: Option<u64>| match (a, b) {
                (Some(a), Some(b)) if a >= b => Some((a - b) as f64 / secs),
                _ => None,
            };
            h.record("evicted_per_sec", now, rate(stats.evicted_keys, before.evicted_keys));
            h.record("expired_per_sec", now, rate(stats.expired_keys, before.expired_keys));
        }
    }

    /// Says which other targets are the same server, and finds again when that changed.
    /// This target as the same-server check sees it beside others ([`diagnose::same_servers`]).
    pub fn peer<'a>(&'a self, name: &'a str, address: &'a str, db: i64) -> diagnose::Peer<'a> {
        diagnose::Peer {
            name,
            run_id: self.server.as_ref().and_then(|s| s.run_id.as_deref()),
            address,
            db,
            layout: self.layout.as_ref().map(|l| (l.name.as_str(), l.prefix.as_str())),
        }
    }

    /// A pass ended: its counts, the series and the findings they feed.
    fn census_done(&mut self, generation: u64, tally: CensusTally, duration_ms: u64, orphan_ids: Vec<SessionId>) {
        self.census.done_generation = generation;
        self.census.blocked = None;
        self.since_pass = (0, 0);
        self.record_pass(&tally);
        self.census.complete = Some(tally);
        self.census.last_duration_ms = Some(duration_ms);
        self.census.completed_at = Some(self.now);
        self.census.orphan_ids = orphan_ids;
        let live = self.census.complete.as_ref().map_or(0, |c| c.total);
        let started = self.now - duration_ms as Millis;
        self.tracker.observe_pass(self.now, started, live, self.settings.thresholds.drop_share);
        self.stalled_due = true;
        self.refresh_findings();
    }

    /// Session events: kept (the newest [`EVENTS_KEPT`]), and counted against the last pass.
    fn take_events(&mut self, events: Vec<crate::engine::domain::SessionEvent>) {
        use crate::engine::domain::EventKind;
        for e in events {
            match e.kind {
                EventKind::Created => self.since_pass.0 += 1,
                k if k.ends() => self.since_pass.1 += 1,
                _ => {}
            }
            if self.events.len() == EVENTS_KEPT {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
    }

    /// Live sessions now: the last pass's count, with the sessions events said were created or
    /// ended since (`None` before a pass).
    pub fn live_now(&self) -> Option<u64> {
        let total = self.census.complete.as_ref()?.total;
        Some((total + self.since_pass.0).saturating_sub(self.since_pass.1))
    }

    pub fn set_same_server(&mut self, same: Vec<(String, bool)>) {
        if self.same_server != same {
            self.same_server = same;
            self.refresh_findings();
        }
    }

    /// How much a figure changed since the baseline: its newest value less its value then.
    pub fn since_baseline(&self, name: &str) -> Option<f64> {
        let at = self.baseline?;
        let h = self.history.get(name)?;
        let then = h.at_or_after(at)?;
        let (_, now) = h.last()?;
        Some(now - then.mean)
    }

    /// Findings by severity into the history.
    fn record_findings(&mut self) {
        let count = |s: Severity| self.findings.iter().filter(|f| f.severity == s).count() as f64;
        let (critical, warning) = (count(Severity::Critical), count(Severity::Warning));
        self.history.record("findings_critical", self.now, Some(critical));
        self.history.record("findings_warning", self.now, Some(warning));
    }

    /// A finished pass's counts into the history: live sessions, by stage (or substate), stuck.
    fn record_pass(&mut self, tally: &CensusTally) {
        let now = self.now;
        self.history.record(crate::engine::history::SESSIONS, now, Some(tally.total as f64));
        let (by, order) = if tally.by_substate.is_empty() {
            (&tally.by_stage, &self.settings.stages)
        } else {
            (&tally.by_substate, &self.settings.substates)
        };
        // The layout's stages count 0 when no session is in them, rather than leaving a gap.
        for stage in order.iter().filter(|s| !by.contains_key(s.as_str())) {
            self.history.record(&crate::engine::history::stage_series(stage), now, Some(0.0));
        }
        for (stage, n) in by {
            self.history.record(&crate::engine::history::stage_series(stage), now, Some(*n as f64));
        }
        self.history.record("stuck", now, Some(tally.evidence.count(FindingKind::Stuck) as f64));
    }

    /// The session lifetime used for `lifetime - TTL`: the setting, else the largest TTL seen.
    pub fn lifetime_s(&self) -> Option<i64> {
        self.lifetime().map(|(s, _)| s)
    }

    /// The session lifetime and where it comes from (see [`domain::session_lifetime`]).
    pub fn lifetime(&self) -> Option<(i64, LifetimeSource)> {
        let largest = self.census.complete.as_ref().map_or(0, |c| c.max_ttl_ms).max(self.census.partial.max_ttl_ms);
        domain::session_lifetime(self.settings.lifetime_s, self.settings.layout_lifetime_s, largest)
    }

    /// Seconds since the session's last interaction, by the layout's rule; `None` if unknown.
    pub fn idle_seconds(&self, row: &SessionRow) -> Option<i64> {
        domain::idle_seconds(self.settings.idle, row.last_interaction, row.ttl, self.now, self.lifetime_s())
    }

    /// When the session was last active, exactly, for ordering by recency.
    pub fn activity(&self, row: &SessionRow) -> Option<i64> {
        domain::activity(self.settings.idle, row.last_interaction, row.ttl)
    }

    /// Whether a session looks stalled: in a workflow stage that is not final, and idle longer
    /// than its stage's threshold.
    pub fn is_stalled(&self, row: &SessionRow) -> bool {
        let in_workflow = row.stage.is_some() || row.substate.is_some();
        let is_final = [row.stage.as_deref(), row.substate.as_deref()]
            .into_iter()
            .flatten()
            .any(|s| self.settings.finals.iter().any(|f| f == s));
        domain::stalled(in_workflow, is_final, self.idle_seconds(row), self.settings.stalled_after(row))
    }

    /// Live sessions whose primary key has no TTL.
    pub fn has_no_ttl(row: &SessionRow) -> bool {
        row.ttl == Ttl::Persistent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::{CensusTally, SessionRow, Ttl};

    #[test]
    fn ttl_and_idle_follow_the_clock_and_the_layout() {
        assert_eq!(Ttl::from_pttl(Some(-1), 0), Ttl::Persistent);
        assert_eq!(Ttl::from_pttl(Some(-2), 0), Ttl::Unknown);
        assert_eq!(Ttl::ExpiresAt(10_500).seconds_left(10_000), Some(1));
        assert_eq!(Ttl::ExpiresAt(5).seconds_left(10_000), Some(0));

        let settings = ModelSettings {
            idle: IdleSource::Ttl,
            lifetime_s: Some(86_400),
            finals: vec!["done".into()],
            ..Default::default()
        };
        let mut m = Model::new(TargetInfo::default(), settings, 1_000_000);
        let mut row = SessionRow::new("s");
        row.ttl = Ttl::ExpiresAt(1_000_000 + 86_000 * 1000);
        assert_eq!(m.idle_seconds(&row), Some(400));
        assert!(!m.is_stalled(&row), "no stage: not in a workflow");
        row.stage = Some("uploaded".into());
        assert!(!m.is_stalled(&row), "idle 400 s < 15 min");
        m.tick(1_000_000 + 600_000, 0);
        assert!(m.is_stalled(&row));
        row.stage = Some("done".into());
        assert!(!m.is_stalled(&row), "final stage");
    }

    #[test]
    fn stalled_counts_of_part_of_a_pass_are_no_level_to_jump_from() {
        let mut m = Model::new(TargetInfo::default(), ModelSettings::default(), 0);
        let done = |m: &mut Model, generation| {
            m.apply(Update::CensusDone {
                generation,
                tally: CensusTally::default(),
                duration_ms: 1,
                orphan_ids: vec![],
            })
        };
        let by = |n: u64| vec![("uploaded".to_string(), n)];
        // The first passes: each count first made while its rows still poured into the table
        // (after the pass before it ended), then over the whole pass.
        for generation in 1..=3 {
            done(&mut m, generation);
            m.set_stalled(180, by(180), Some(generation - 1));
            m.set_stalled(365, by(365), Some(generation));
        }
        let jumps = |m: &Model| {
            m.findings.iter().filter(|f| f.kind == FindingKind::Stalled && f.severity != Severity::Info).count()
        };
        assert_eq!(jumps(&m), 0, "{:?}", m.findings);
        assert_eq!(
            m.history.get("stalled").map(|h| h.recent(10)),
            Some(vec![365.0, 365.0, 365.0]),
            "one sample a pass, whole"
        );
        // A real jump, over a whole pass, is still one.
        done(&mut m, 4);
        m.set_stalled(900, by(900), Some(4));
        assert_eq!(jumps(&m), 1, "{:?}", m.findings);
    }

    #[test]
    fn a_pass_is_counted_and_its_rows_are_left_to_the_table() {
        let mut m = Model::new(TargetInfo::default(), ModelSettings::default(), 0);
        m.apply(Update::CensusBatch {
            generation: 2,
            rows: vec![SessionRow::new("a")],
            partial: CensusTally::default(),
            progress: None,
        });
        m.apply(Update::CensusDone {
            generation: 2,
            tally: CensusTally { total: 1, ..Default::default() },
            duration_ms: 5,
            orphan_ids: vec![],
        });
        assert_eq!(m.census.totals().total, 1);
        assert_eq!(m.census.generation, 2);
    }

    #[test]
    fn own_load_is_a_rate() {
        let mut m = Model::new(TargetInfo::default(), ModelSettings::default(), 0);
        m.tick(0, 100);
        m.tick(2000, 300);
        assert_eq!(m.own.commands_per_sec, Some(100.0));
    }
}
