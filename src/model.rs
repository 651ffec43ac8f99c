//! The one state sessiontop knows about its target: server statistics with their trends, the
//! sessions seen, the census totals, the connection's health and sessiontop's own load.
//!
//! Collectors change it only by sending [`Update`]s, applied in one place ([`Model::apply`]).
//! Time enters only through [`Model::tick`], so every derived figure (TTL left, idle time) is a
//! pure function of the model and views can be drawn and tested without a clock.
//!
//! Must never do I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::decode::{Format, Value};
use crate::layout::{IdleSource, Layout};
use crate::names::{Key, SessionId};

/// Epoch milliseconds.
pub type Millis = i64;
/// Epoch microseconds: last-interaction times keep the precision of the index score, so the
/// most recently active sessions are told apart within a second.
pub type Micros = i64;

/// How long a session's keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Not known (not read yet, or the read failed).
    Unknown,
    /// The key exists without an expiry.
    Persistent,
    /// The key expires at this instant.
    ExpiresAt(Millis),
}

impl Ttl {
    /// From a `PTTL` reply observed at `now`: -1 is persistent, -2 (missing) is unknown.
    pub fn from_pttl(pttl: Option<i64>, now: Millis) -> Ttl {
        match pttl {
            Some(-1) => Ttl::Persistent,
            Some(ms) if ms >= 0 => Ttl::ExpiresAt(now + ms),
            _ => Ttl::Unknown,
        }
    }

    /// Whole seconds left at `now` (rounded up, never negative); `None` unless it expires.
    pub fn seconds_left(self, now: Millis) -> Option<i64> {
        match self {
            Ttl::ExpiresAt(at) => Some(((at - now).max(0) + 999) / 1000),
            _ => None,
        }
    }
}

/// One live session as the census and the page poll see it: small, so that a census of many
/// sessions fits in memory. Strings that repeat across sessions (stages) are shared.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: SessionId,
    pub stage: Option<Arc<str>>,
    pub substate: Option<Arc<str>>,
    pub status: Option<Arc<str>>,
    /// From the last-interaction field, or the index score.
    pub last_interaction: Option<Micros>,
    /// TTL of the session's primary key.
    pub ttl: Ttl,
    pub history_len: Option<u64>,
    /// `MEMORY USAGE` summed over the session's keys; only read for the visible page.
    pub memory_bytes: Option<u64>,
    /// Why the session's payload or fields could not be read or decoded (over the read cap,
    /// not a format sessiontop reads, the wrong type).
    pub decode_error: Option<String>,
    /// The census generation that last saw this session.
    pub generation: u64,
}

impl SessionRow {
    pub fn new(id: impl Into<SessionId>) -> Self {
        SessionRow {
            id: id.into(),
            stage: None,
            substate: None,
            status: None,
            last_interaction: None,
            ttl: Ttl::Unknown,
            history_len: None,
            memory_bytes: None,
            decode_error: None,
            generation: 0,
        }
    }
}

/// What the census counts over all sessions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CensusTally {
    /// Live sessions (primary key present).
    pub total: u64,
    pub by_stage: BTreeMap<String, u64>,
    pub by_substate: BTreeMap<String, u64>,
    /// Live sessions whose stage is not known (field absent or payload undecodable).
    pub no_stage: u64,
    /// Live sessions whose primary key has no TTL.
    pub no_ttl: u64,
    /// Index entries whose session keys are gone.
    pub orphaned: u64,
    /// Live sessions whose payload did not decode.
    pub undecodable: u64,
    /// Live sessions whose payload exceeds the read cap.
    pub oversized: u64,
    /// The largest TTL seen, in milliseconds: the default session lifetime for `lifetime - TTL`.
    pub max_ttl_ms: i64,
    /// Session keys found gone between the walk of the keyspace and their read (expired or
    /// deleted meanwhile; a walk of the index counts those as orphaned).
    pub vanished: u64,
    /// Distinct index entries or session keys examined: live + orphaned + vanished.
    pub examined: u64,
}

/// Where the census is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CensusState {
    /// The running pass (starts at 1).
    pub generation: u64,
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
    pub problem: Option<String>,
}

impl CensusState {
    /// The totals to show: the last complete pass, else the running one.
    pub fn totals(&self) -> &CensusTally {
        self.complete.as_ref().unwrap_or(&self.partial)
    }
}

/// The keyspace line of one database (`db0:keys=3,expires=3,avg_ttl=1729782`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceLine {
    pub db: u32,
    pub keys: u64,
    pub expires: u64,
    pub avg_ttl_ms: u64,
}

/// What `INFO` and `DBSIZE` said. Every field is optional: a field the server does not report
/// (or a section the user may not read) stays `None` and is shown as unavailable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    pub redis_version: Option<String>,
    pub redis_mode: Option<String>,
    pub os: Option<String>,
    pub role: Option<String>,
    pub run_id: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub used_memory_bytes: Option<u64>,
    pub used_memory_peak_bytes: Option<u64>,
    pub used_memory_rss_bytes: Option<u64>,
    pub maxmemory_bytes: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub connected_clients: Option<u64>,
    pub blocked_clients: Option<u64>,
    pub ops_per_sec: Option<u64>,
    pub total_commands_processed: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    pub evicted_keys: Option<u64>,
    pub expired_keys: Option<u64>,
    pub connected_slaves: Option<u64>,
    pub master_link_status: Option<String>,
    pub keyspace: Vec<KeyspaceLine>,
    /// `DBSIZE` of the selected database.
    pub db_keys: Option<u64>,
}

impl ServerStats {
    /// Parses the text of `INFO`. Unknown lines are ignored; malformed numbers stay `None`.
    pub fn from_info(text: &str) -> ServerStats {
        let fields: HashMap<&str, &str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
            .collect();
        let s = |k: &str| fields.get(k).map(|v| v.to_string());
        let n = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let keyspace = fields
            .iter()
            .filter_map(|(k, v)| parse_keyspace(k, v))
            .collect::<BTreeMap<u32, KeyspaceLine>>()
            .into_values()
            .collect();
        ServerStats {
            redis_version: s("redis_version"),
            redis_mode: s("redis_mode"),
            os: s("os"),
            role: s("role"),
            run_id: s("run_id"),
            uptime_seconds: n("uptime_in_seconds"),
            used_memory_bytes: n("used_memory"),
            used_memory_peak_bytes: n("used_memory_peak"),
            used_memory_rss_bytes: n("used_memory_rss"),
            maxmemory_bytes: n("maxmemory"),
            maxmemory_policy: s("maxmemory_policy"),
            mem_fragmentation_ratio: fields.get("mem_fragmentation_ratio").and_then(|v| v.parse().ok()),
            connected_clients: n("connected_clients"),
            blocked_clients: n("blocked_clients"),
            ops_per_sec: n("instantaneous_ops_per_sec"),
            total_commands_processed: n("total_commands_processed"),
            keyspace_hits: n("keyspace_hits"),
            keyspace_misses: n("keyspace_misses"),
            evicted_keys: n("evicted_keys"),
            expired_keys: n("expired_keys"),
            connected_slaves: n("connected_slaves"),
            master_link_status: s("master_link_status"),
            keyspace,
            db_keys: None,
        }
    }

    /// Hits over lookups, when any lookups happened.
    pub fn hit_rate(&self) -> Option<f64> {
        let (h, m) = (self.keyspace_hits?, self.keyspace_misses?);
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    /// Used memory over `maxmemory`; `None` when there is no limit (0) or it is unknown.
    pub fn memory_fraction(&self) -> Option<f64> {
        let (used, max) = (self.used_memory_bytes?, self.maxmemory_bytes?);
        (max > 0).then(|| used as f64 / max as f64)
    }
}

fn parse_keyspace(key: &str, value: &str) -> Option<(u32, KeyspaceLine)> {
    let db: u32 = key.strip_prefix("db")?.parse().ok()?;
    let mut line = KeyspaceLine { db, keys: 0, expires: 0, avg_ttl_ms: 0 };
    for pair in value.split(',') {
        let (k, v) = pair.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "keys" => line.keys = v,
            "expires" => line.expires = v,
            "avg_ttl" => line.avg_ttl_ms = v,
            _ => {}
        }
    }
    Some((db, line))
}

/// A metric's history since start in bounded memory: when full, neighbouring points are
/// averaged in pairs, so the series always spans the whole run at a coarser step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    points: Vec<f64>,
    capacity: usize,
    /// Samples per point.
    step: u32,
    /// Samples folded into the pending point.
    pending: (f64, u32),
}

impl Series {
    pub fn new(capacity: usize) -> Self {
        Series { points: Vec::with_capacity(capacity), capacity: capacity.max(2), step: 1, pending: (0.0, 0) }
    }

    pub fn push(&mut self, value: f64) {
        self.pending.0 += value;
        self.pending.1 += 1;
        if self.pending.1 < self.step {
            return;
        }
        self.points.push(self.pending.0 / f64::from(self.pending.1));
        self.pending = (0.0, 0);
        if self.points.len() >= self.capacity {
            self.points = self.points.chunks(2).map(|c| c.iter().sum::<f64>() / c.len() as f64).collect();
            self.step *= 2;
        }
    }

    pub fn points(&self) -> &[f64] {
        &self.points
    }

    /// The last value pushed into a point.
    pub fn last(&self) -> Option<f64> {
        self.points.last().copied()
    }
}

/// How many points a trend keeps before it halves its resolution.
pub const SERIES_CAPACITY: usize = 512;

/// Trends of the server panel, one sample per server poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Trends {
    pub used_memory: Series,
    pub clients: Series,
    pub blocked_clients: Series,
    pub ops_per_sec: Series,
    pub hit_rate: Series,
    pub evicted_per_poll: Series,
    pub expired_per_poll: Series,
    pub db_keys: Series,
    pub sessions: Series,
    pub own_commands_per_sec: Series,
}

impl Default for Trends {
    fn default() -> Self {
        let s = || Series::new(SERIES_CAPACITY);
        Trends {
            used_memory: s(),
            clients: s(),
            blocked_clients: s(),
            ops_per_sec: s(),
            hit_rate: s(),
            evicted_per_poll: s(),
            expired_per_poll: s(),
            db_keys: s(),
            sessions: s(),
            own_commands_per_sec: s(),
        }
    }
}

/// The connection's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected {
        since: Millis,
    },
    /// Lost; the next attempt is at `retry_at`.
    Reconnecting {
        attempt: u32,
        retry_at: Millis,
        error: String,
    },
    /// The server refused the credentials; retried slowly in case they are fixed server-side.
    AuthFailed {
        error: String,
        retry_at: Millis,
    },
}

/// A decoded part of a session, or why it did not decode (with the raw bytes kept).
#[derive(Debug, Clone, PartialEq)]
pub enum Decodedish {
    Value { format: Option<Format>, value: Value },
    Undecodable { reason: String, raw: Vec<u8>, total_len: u64 },
}

/// One key of a session, for the inspector.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyReport {
    pub key: Key,
    /// `primary`, a part name (`history`, `meta`) or a related family name (`lock`).
    pub role: String,
    pub redis_type: String,
    pub ttl: Ttl,
    pub memory_bytes: Option<u64>,
    /// Length in the key type's unit: bytes, fields, entries or members.
    pub length: Option<u64>,
    /// Decoded contents (not for history, which is in `history`).
    pub content: Option<Decodedish>,
    /// Whether `content` holds only the first part of the value (capped).
    pub truncated: bool,
    /// The contents as stored, for the raw view: the value, or each field, entry or member
    /// (labelled with its field name or index).
    pub raw: Vec<(Option<String>, Vec<u8>)>,
}

/// Everything about one session, for `inspect` and the inspector.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionReport {
    pub id: SessionId,
    pub row: SessionRow,
    pub keys: Vec<KeyReport>,
    /// The session's score in the index, when it has an entry there.
    pub index_score: Option<f64>,
    /// History entries, newest first (capped).
    pub history: Vec<Value>,
    /// The same entries as stored, for the raw view.
    pub history_raw: Vec<Vec<u8>>,
    pub history_total: u64,
    pub observed_at: Millis,
    /// Fields that could not be read, with why (`MEMORY USAGE denied`).
    pub unavailable: Vec<String>,
}

impl SessionReport {
    /// Whether anything of the session exists: a key or an index entry.
    pub fn exists(&self) -> bool {
        !self.keys.is_empty() || self.index_score.is_some()
    }

    /// Whether only the index entry is left.
    pub fn is_orphan(&self) -> bool {
        self.index_score.is_some() && !self.keys.iter().any(|k| k.role == "primary")
    }
}

/// A message from a collector to the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Link(LinkState),
    /// Which layout is in use (after `--layout` or detection), with the detector's note.
    Layout(Box<LayoutInfo>),
    /// The layout could not be detected (yet).
    LayoutUnknown {
        note: String,
    },
    Server {
        stats: Box<ServerStats>,
        unavailable: Vec<String>,
    },
    /// Fresh details of some sessions (the visible page).
    Page {
        rows: Vec<SessionRow>,
        unavailable: Vec<String>,
    },
    /// Sessions whose primary key was found gone by the page poll.
    Gone {
        ids: Vec<SessionId>,
    },
    CensusBatch {
        generation: u64,
        rows: Vec<SessionRow>,
        partial: CensusTally,
        progress: Option<f64>,
    },
    CensusDone {
        generation: u64,
        tally: CensusTally,
        duration_ms: u64,
        orphan_ids: Vec<SessionId>,
    },
    Inspect(Box<SessionReport>),
    /// The census cannot get on: why, shown until its next batch arrives.
    CensusProblem(String),
    /// A write finished: one line for the user, and whether it succeeded.
    WriteDone {
        message: String,
        ok: bool,
    },
    /// A non-fatal problem worth a line on screen.
    Notice(String),
    /// The answer to a request to plan a write (for its confirmation dialog).
    Plan(PlanReply),
    /// sessiontop's own process: CPU share and resident memory.
    OwnProcess {
        cpu_percent: f32,
        rss_bytes: u64,
    },
}

/// What a write would change, or why it cannot be planned.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanReply {
    Ready(crate::action::WritePlan),
    Failed { id: SessionId, kind: crate::action::WriteKind, error: String },
}

/// Facts about the target that do not change while sessiontop runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetInfo {
    pub url: String,
    pub name: Option<String>,
    pub read_only: bool,
}

/// The layout in use, as shown, with what the model needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutInfo {
    pub name: String,
    pub kind: crate::layout::LayoutKind,
    pub prefix: String,
    /// What detection saw, when the layout was detected.
    pub note: Option<String>,
    pub idle: IdleSource,
    pub finals: Vec<String>,
    pub stages: Vec<String>,
    pub substates: Vec<String>,
}

impl LayoutInfo {
    pub fn new(layout: &Layout, note: Option<String>) -> LayoutInfo {
        LayoutInfo {
            name: layout.name.clone(),
            kind: layout.kind,
            prefix: layout.prefix.clone(),
            note,
            idle: layout.idle,
            finals: layout.finals.clone(),
            stages: layout.stages.clone(),
            substates: layout.substates.clone(),
        }
    }
}

/// Settings the model needs to derive figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// How sessions' idle time is found.
    pub idle: IdleSource,
    /// `--session-lifetime`; else the largest TTL the census saw.
    pub lifetime_s: Option<i64>,
    /// `--stalled-after`.
    pub stalled_after_s: i64,
    /// Final stages/substates of the layout (never stalled).
    pub finals: Vec<String>,
    /// Stages and substates in workflow order, for the per-stage bar.
    pub stages: Vec<String>,
    pub substates: Vec<String>,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            idle: IdleSource::LastInteraction,
            lifetime_s: None,
            stalled_after_s: DEFAULT_STALLED_AFTER_S,
            finals: Vec::new(),
            stages: Vec::new(),
            substates: Vec::new(),
        }
    }
}

/// Idle time after which a session not at a final stage counts as stalled.
pub const DEFAULT_STALLED_AFTER_S: i64 = 15 * 60;

/// How many recent notices the model keeps.
const NOTICE_CAPACITY: usize = 20;

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
    /// When `server` was read.
    pub server_at: Option<Millis>,
    /// Server fields that could not be read, with why.
    pub server_unavailable: Vec<String>,
    pub trends: Trends,
    pub sessions: HashMap<SessionId, SessionRow>,
    /// Bumped whenever `sessions` changes, so views can cache their ordering.
    pub sessions_version: u64,
    pub census: CensusState,
    /// Session fields that could not be read (`MEMORY USAGE denied`).
    pub session_unavailable: Vec<String>,
    pub inspect: Option<SessionReport>,
    /// The latest write plan, for the confirmation dialog.
    pub plan: Option<PlanReply>,
    pub notices: Vec<(Millis, String)>,
    /// Commands sessiontop has sent, and when that was last sampled.
    own_commands: Option<(Millis, u64)>,
    pub own_commands_per_sec: Option<f64>,
    /// sessiontop's own CPU share (percent of one core) and resident memory.
    pub own_process: Option<(f32, u64)>,
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
            server_at: None,
            server_unavailable: Vec::new(),
            trends: Trends::default(),
            sessions: HashMap::new(),
            sessions_version: 0,
            census: CensusState::default(),
            session_unavailable: Vec::new(),
            inspect: None,
            plan: None,
            notices: Vec::new(),
            own_commands: None,
            own_commands_per_sec: None,
            own_process: None,
        }
    }

    /// Advances the model's clock and samples sessiontop's own command count.
    pub fn tick(&mut self, now: Millis, own_commands_total: u64) {
        self.now = now;
        match self.own_commands {
            Some((then, before)) if now - then >= 1000 => {
                let rate = (own_commands_total.saturating_sub(before)) as f64 * 1000.0 / (now - then) as f64;
                self.own_commands_per_sec = Some(rate);
                self.trends.own_commands_per_sec.push(rate);
                self.own_commands = Some((now, own_commands_total));
            }
            Some(_) => {}
            None => self.own_commands = Some((now, own_commands_total)),
        }
    }

    /// Whether what is shown may be out of date (the connection is not up).
    pub fn is_stale(&self) -> bool {
        !matches!(self.link, LinkState::Connected { .. })
    }

    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Link(state) => self.link = state,
            Update::Layout(info) => {
                self.settings.idle = info.idle;
                self.settings.finals = info.finals.clone();
                self.settings.stages = info.stages.clone();
                self.settings.substates = info.substates.clone();
                self.layout_note = info.note.clone();
                self.layout = Some(*info);
            }
            Update::LayoutUnknown { note } => self.layout_note = Some(note),
            Update::Server { stats, unavailable } => self.apply_server(*stats, unavailable),
            Update::Page { rows, unavailable } => {
                let generation = self.census.generation;
                for mut row in rows {
                    row.generation = row.generation.max(generation);
                    self.sessions.insert(row.id.clone(), row);
                }
                self.session_unavailable = unavailable;
                self.sessions_version += 1;
            }
            Update::Gone { ids } => {
                for id in ids {
                    self.sessions.remove(&id);
                }
                self.sessions_version += 1;
            }
            Update::CensusProblem(reason) => self.census.problem = Some(reason),
            Update::CensusBatch { generation, rows, partial, progress } => {
                self.census.problem = None;
                self.census.generation = generation;
                self.census.partial = partial;
                self.census.progress = progress;
                self.sessions.reserve(rows.len());
                for row in rows {
                    match self.sessions.get_mut(&row.id) {
                        // Keep what only the page poll reads.
                        Some(existing) => {
                            let memory = existing.memory_bytes;
                            *existing = row;
                            existing.memory_bytes = existing.memory_bytes.or(memory);
                        }
                        None => {
                            self.sessions.insert(row.id.clone(), row);
                        }
                    }
                }
                self.sessions_version += 1;
            }
            Update::CensusDone { generation, tally, duration_ms, orphan_ids } => {
                self.census.problem = None;
                // Sessions not seen by this pass have expired or been deleted.
                self.sessions.retain(|_, row| row.generation >= generation);
                self.trends.sessions.push(tally.total as f64);
                self.census.complete = Some(tally);
                self.census.last_duration_ms = Some(duration_ms);
                self.census.completed_at = Some(self.now);
                self.census.orphan_ids = orphan_ids;
                self.sessions_version += 1;
            }
            Update::Inspect(report) => self.inspect = Some(*report),
            Update::Plan(reply) => self.plan = Some(reply),
            Update::OwnProcess { cpu_percent, rss_bytes } => self.own_process = Some((cpu_percent, rss_bytes)),
            Update::WriteDone { message, .. } | Update::Notice(message) => {
                self.notices.push((self.now, message));
                if self.notices.len() > NOTICE_CAPACITY {
                    self.notices.remove(0);
                }
            }
        }
    }

    fn apply_server(&mut self, stats: ServerStats, unavailable: Vec<String>) {
        let t = &mut self.trends;
        if let Some(v) = stats.used_memory_bytes {
            t.used_memory.push(v as f64);
        }
        if let Some(v) = stats.connected_clients {
            t.clients.push(v as f64);
        }
        if let Some(v) = stats.blocked_clients {
            t.blocked_clients.push(v as f64);
        }
        if let Some(v) = stats.ops_per_sec {
            t.ops_per_sec.push(v as f64);
        }
        if let Some(v) = stats.hit_rate() {
            t.hit_rate.push(v);
        }
        if let Some(v) = stats.db_keys {
            t.db_keys.push(v as f64);
        }
        // Counters become per-poll deltas; a restart (counter went down) restarts the delta.
        let previous = self.server.as_ref();
        let delta = |now: Option<u64>, before: Option<u64>| match (now, before) {
            (Some(n), Some(b)) if n >= b => Some((n - b) as f64),
            _ => None,
        };
        if let Some(d) = delta(stats.evicted_keys, previous.and_then(|p| p.evicted_keys)) {
            t.evicted_per_poll.push(d);
        }
        if let Some(d) = delta(stats.expired_keys, previous.and_then(|p| p.expired_keys)) {
            t.expired_per_poll.push(d);
        }
        self.server = Some(stats);
        self.server_at = Some(self.now);
        self.server_unavailable = unavailable;
    }

    /// The session lifetime used for `lifetime - TTL`: the setting, else the largest TTL seen.
    pub fn lifetime_s(&self) -> Option<i64> {
        self.settings.lifetime_s.or_else(|| {
            let max = self.census.complete.as_ref().map_or(0, |c| c.max_ttl_ms).max(self.census.partial.max_ttl_ms);
            (max > 0).then(|| (max + 999) / 1000)
        })
    }

    /// Seconds since the session's last interaction, by the layout's rule; `None` if unknown.
    pub fn idle_seconds(&self, row: &SessionRow) -> Option<i64> {
        match self.settings.idle {
            IdleSource::LastInteraction => row.last_interaction.map(|t| ((self.now * 1000 - t) / 1_000_000).max(0)),
            IdleSource::Ttl => {
                let left = row.ttl.seconds_left(self.now)?;
                Some((self.lifetime_s()? - left).max(0))
            }
        }
    }

    /// When the session was last active, exactly, for ordering by recency (larger is more
    /// recent): the last interaction in microseconds, or, where idle time comes from the TTL,
    /// when the key expires (a later expiry means a later request). `None` when unknown.
    pub fn activity(&self, row: &SessionRow) -> Option<i64> {
        match self.settings.idle {
            IdleSource::LastInteraction => row.last_interaction,
            IdleSource::Ttl => match row.ttl {
                Ttl::ExpiresAt(at) => Some(at.saturating_mul(1000)),
                _ => None,
            },
        }
    }

    /// Whether a session looks stalled: in a workflow stage that is not final, and idle longer
    /// than `--stalled-after`.
    pub fn is_stalled(&self, row: &SessionRow) -> bool {
        let in_workflow = row.stage.is_some() || row.substate.is_some();
        let is_final = [row.stage.as_deref(), row.substate.as_deref()]
            .into_iter()
            .flatten()
            .any(|s| self.settings.finals.iter().any(|f| f == s));
        in_workflow && !is_final && self.idle_seconds(row).is_some_and(|idle| idle > self.settings.stalled_after_s)
    }

    /// Live sessions whose primary key has no TTL.
    pub fn has_no_ttl(row: &SessionRow) -> bool {
        row.ttl == Ttl::Persistent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nrun_id:abc\r\nuptime_in_seconds:42\r\n\
        # Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n# Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\n\
        maxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:5.61\r\n# Stats\r\ninstantaneous_ops_per_sec:12\r\n\
        keyspace_hits:3\r\nkeyspace_misses:1\r\nevicted_keys:0\r\nexpired_keys:7\r\n# Replication\r\nrole:master\r\n\
        # Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=1729782\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n";

    #[test]
    fn info_parses_into_stats() {
        let s = ServerStats::from_info(INFO);
        assert_eq!(s.redis_version.as_deref(), Some("7.0.15"));
        assert_eq!(s.role.as_deref(), Some("master"));
        assert_eq!(s.used_memory_bytes, Some(1_048_576));
        assert_eq!(s.maxmemory_bytes, Some(0));
        assert_eq!(s.memory_fraction(), None, "maxmemory 0 means no limit");
        assert_eq!(s.mem_fragmentation_ratio, Some(5.61));
        assert_eq!(s.hit_rate(), Some(0.75));
        assert_eq!(s.keyspace.len(), 2);
        assert_eq!(s.keyspace[0], KeyspaceLine { db: 0, keys: 3, expires: 2, avg_ttl_ms: 1_729_782 });
        assert_eq!(s.evicted_keys, Some(0));
        assert_eq!(s.os, None, "absent fields stay unknown");
    }

    #[test]
    fn series_halves_resolution_instead_of_growing() {
        let mut s = Series::new(8);
        for i in 0..64 {
            s.push(f64::from(i));
        }
        assert!(s.points().len() < 8);
        // Still spans the whole run: the first point is near the start, the last near the end.
        assert!(s.points()[0] < 10.0, "{:?}", s.points());
        assert!(s.last().unwrap() > 50.0, "{:?}", s.points());
    }

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
    fn census_done_drops_sessions_it_did_not_see() {
        let mut m = Model::new(TargetInfo::default(), ModelSettings::default(), 0);
        let row = |id: &str, generation| SessionRow { generation, ..SessionRow::new(id) };
        m.apply(Update::CensusBatch {
            generation: 1,
            rows: vec![row("a", 1), row("b", 1)],
            partial: CensusTally::default(),
            progress: None,
        });
        m.apply(Update::CensusBatch {
            generation: 2,
            rows: vec![row("a", 2)],
            partial: CensusTally::default(),
            progress: None,
        });
        m.apply(Update::CensusDone {
            generation: 2,
            tally: CensusTally { total: 1, ..Default::default() },
            duration_ms: 5,
            orphan_ids: vec![],
        });
        assert!(m.sessions.contains_key(&b"a"[..]));
        assert!(!m.sessions.contains_key(&b"b"[..]));
        assert_eq!(m.census.totals().total, 1);
    }

    #[test]
    fn own_load_is_a_rate() {
        let mut m = Model::new(TargetInfo::default(), ModelSettings::default(), 0);
        m.tick(0, 100);
        m.tick(2000, 300);
        assert_eq!(m.own_commands_per_sec, Some(100.0));
    }
}
