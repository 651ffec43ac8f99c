//! What sessiontop knows of the things it watches: a session's row and report, its TTL, what
//! the census counts, the connection's health, the target and the layout in use. Plain data,
//! shared by the collectors, the model, the messages and the views; no behaviour beyond
//! reading itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

use crate::decode::{Format, Value};
use crate::engine::layout::{IdleSource, Layout, Lifecycle, NaiveTime, PartRole};
use crate::engine::names::{Key, SessionId};

/// Epoch milliseconds.
pub type Millis = i64;

/// How long a restart, a failover or another event seen while watching stays a finding.
pub const EVENT_FINDING_MS: Millis = 60 * 60 * 1000;
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
            Ttl::ExpiresAt(at) => {
                let ms = at.saturating_sub(now).max(0);
                Some(ms / 1000 + i64::from(ms % 1000 != 0))
            }
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
    /// When the part written once at creation with the session's lifetime (the layout's meta)
    /// expires: the session was created one lifetime before.
    pub created_expiry: Option<Millis>,
    /// `MEMORY USAGE` summed over the session's keys; only read for the visible page.
    pub memory_bytes: Option<u64>,
    /// Why the session's payload or fields could not be read or decoded (over the read cap,
    /// not a format sessiontop reads, the wrong type).
    pub decode_error: Option<String>,
    /// The census generation that last saw this session.
    pub generation: u64,
    /// What is wrong with this session, as read (`history outlives the session key by 2h`).
    /// Empty for most sessions.
    pub findings: Vec<RowFinding>,
    /// The layout's markers this session carries, one bit each in the layout's order.
    pub markers: u8,
    /// The application's own ids for the session, as [`app_id_key`]s of the layout's id fields
    /// (0 where the session has none): what `inspect --by` and the filter `FIELD=VALUE` find.
    pub app_ids: [u64; APP_ID_FIELDS],
}

/// How many of a layout's id fields a row keeps.
pub const APP_ID_FIELDS: usize = 3;

/// The key under which a session is found by one of its application ids: a hash of the field's
/// name and its value (never 0), the same in every part of one process.
pub fn app_id_key(field: &str, value: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    field.hash(&mut h);
    value.hash(&mut h);
    h.finish().max(1)
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
            created_expiry: None,
            memory_bytes: None,
            decode_error: None,
            generation: 0,
            findings: Vec::new(),
            markers: 0,
            app_ids: [0; APP_ID_FIELDS],
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
    /// What is wrong with sessions, counted with a sample of each (see [`SessionRow::findings`]).
    pub evidence: Evidence,
    /// Live sessions carrying each of the layout's markers (ChatMRPT's `TPR`).
    pub by_marker: BTreeMap<String, u64>,
    /// A cluster's hash slots the pass could not count: served by no primary, or still moving
    /// after the pass had walked their new primaries again.
    pub uncovered_slots: Vec<(u16, u16)>,
    /// Sessions the pass read settled and light, which keyspace events proved unwritten since
    /// their last read (a watch's census); the rest of those examined were read whole.
    pub read_settled: u64,
    pub read_light: u64,
    /// How sessions arrive and move through their stages, as watched up to the pass's end
    /// (`None` where nothing watches them).
    pub flow: Option<FlowSummary>,
}

/// One stage's flow: entries in the window and whether they left, against the hour before.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StageFlow {
    pub stage: String,
    /// Sessions that entered the stage within the window, and how many of them left it.
    pub entered: u64,
    pub left: u64,
    /// Of those, the ones that have been in it long enough to have left (older than the usual
    /// time spent in it), and how many did.
    pub judged: u64,
    pub judged_left: u64,
    /// Entries in the hour before the window, how many left, and within how long nine in ten
    /// of those that left did.
    pub before_entered: u64,
    pub before_left: u64,
    pub before_dwell_ms: Option<Millis>,
    /// Entries by minute (start of the minute, count) over the window and the hour before: what
    /// a stage nobody reaches any more since a baseline is judged by.
    pub by_minute: Vec<(Millis, u32)>,
}

/// New sessions in the window and whether they came back, against the hour before.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Arrivals {
    /// How long of the window, and of the hour before it, was watched (a watch begun recently
    /// has seen less of them).
    pub span_ms: Millis,
    pub before_span_ms: Millis,
    /// New sessions in the window; those old enough to judge; of those, never used again.
    pub born: u64,
    pub judged: u64,
    pub unused: u64,
    pub before_born: u64,
    pub before_judged: u64,
    pub before_unused: u64,
}

/// How sessions arrived and moved through their stages, as watched up to the end of a pass
/// (see `engine::flow`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FlowSummary {
    pub at: Millis,
    pub stages_window_ms: Millis,
    pub arrivals_window_ms: Millis,
    /// When the watch began.
    pub since: Millis,
    /// The deploy baseline the window was judged against (the hour before it), when one is set.
    pub baseline: Option<Millis>,
    pub stages: Vec<StageFlow>,
    pub arrivals: Arrivals,
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
    /// On a cluster, the primary that holds the key and the key's hash slot.
    pub node: Option<(String, u16)>,
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
    /// How far the search for wildcard related keys has come (`None` once done): until then
    /// `keys` may lack some of them.
    pub related_search: Option<f64>,
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
    pub kind: crate::engine::layout::LayoutKind,
    pub prefix: String,
    /// What detection saw, when the layout was detected.
    pub note: Option<String>,
    pub idle: IdleSource,
    pub finals: Vec<String>,
    pub stages: Vec<String>,
    pub substates: Vec<String>,
    /// Stages or substates with their own stalled threshold (seconds).
    pub stage_limits: Vec<(String, i64)>,
    /// Whether the layout keeps an index of sessions (where orphaned entries can be).
    pub has_index: bool,
    /// The session lifetime the layout knows, if it does.
    pub lifetime_s: Option<i64>,
    /// The names of the markers sessions may carry, in bit order.
    pub markers: Vec<String>,
    /// The fields holding the application's own ids for a session.
    pub id_fields: Vec<String>,
    /// Whether a session's history shows that it is stuck (else stuck is judged by watching).
    pub stuck_by_history: bool,
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
            stage_limits: layout.stalled_after.clone(),
            has_index: layout.index.is_some(),
            lifetime_s: layout.lifetime_s,
            markers: layout.fields.markers.iter().map(|m| m.name.clone()).collect(),
            id_fields: layout.fields.ids.clone(),
            stuck_by_history: layout.stuck.is_some() && layout.history().is_some(),
        }
    }
}

/// A key that belongs to a session, as the layout names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub key: Key,
    /// `primary`, a part name or a related family name.
    pub role: String,
    pub part: Option<PartRole>,
    pub lifecycle: Lifecycle,
}

/// Idle time after which a session not at a final stage counts as stalled.
pub const DEFAULT_STALLED_AFTER_S: i64 = 15 * 60;

/// Seconds since a session's last interaction, by the layout's rule: from the last-interaction
/// time, or `lifetime - TTL` for stores that rewrite the key with a fresh TTL on every request.
/// `None` when unknown. The one rule, for the model, the table and the headless commands.
pub fn idle_seconds(
    idle: IdleSource,
    last_interaction: Option<Micros>,
    ttl: Ttl,
    now: Millis,
    lifetime_s: Option<i64>,
) -> Option<i64> {
    match idle {
        IdleSource::LastInteraction => {
            last_interaction.map(|t| (now.saturating_mul(1000).saturating_sub(t) / 1_000_000).max(0))
        }
        IdleSource::Ttl => {
            let left = ttl.seconds_left(now)?;
            Some(lifetime_s?.saturating_sub(left).max(0))
        }
    }
}

/// When a session was last active, exactly, for ordering by recency (larger is more recent):
/// the last interaction in microseconds, or, where idle time comes from the TTL, when the key
/// expires (a later expiry means a later request). `None` when unknown.
pub fn activity(idle: IdleSource, last_interaction: Option<Micros>, ttl: Ttl) -> Option<i64> {
    match idle {
        IdleSource::LastInteraction => last_interaction,
        IdleSource::Ttl => match ttl {
            Ttl::ExpiresAt(at) => Some(at.saturating_mul(1000)),
            _ => None,
        },
    }
}

/// How long a session may sit idle before it counts as stalled: its substate's or its stage's own
/// threshold when the layout sets one (`[workflow] stalled_after`), else `default_s`
/// (`--stalled-after`). A substate's threshold wins over its stage's.
pub fn stalled_after_for(default_s: i64, limits: &[(String, i64)], stage: Option<&str>, substate: Option<&str>) -> i64 {
    let limit = |label: Option<&str>| label.and_then(|l| limits.iter().find(|(name, _)| name == l)).map(|(_, s)| *s);
    limit(substate).or_else(|| limit(stage)).unwrap_or(default_s)
}

/// Whether a session looks stalled: in a workflow stage that is not final, and idle longer than
/// its stage's threshold ([`stalled_after_for`]).
pub fn stalled(in_workflow: bool, is_final: bool, idle_seconds: Option<i64>, stalled_after_s: i64) -> bool {
    in_workflow && !is_final && idle_seconds.is_some_and(|idle| idle > stalled_after_s)
}

/// How bad a finding is. Ordered: the worst is the greatest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    // The sessions' data.
    Stuck,
    Stalled,
    Orphaned,
    NoTtl,
    TtlMismatch,
    HistoryOverCap,
    StaleLock,
    RateLimited,
    Oversized,
    Undecodable,
    ClockTrouble,
    // The server.
    MemoryHigh,
    NoMaxmemory,
    EvictionPolicy,
    Evicted,
    RejectedConnections,
    BlockedClients,
    Fragmentation,
    Restarted,
    RoleChanged,
    // The nodes of a cluster.
    NodeDown,
    Failover,
    SlotsUncovered,
    SlotsMoved,
    SessionsDropped,
    // Causes seen across sessions: sessions that never come back, a stage the flow stopped at.
    NotComingBack,
    FlowStopped,
    StageUnreached,
    // The host sessiontop runs on.
    ProcessCount,
    // Who connects to Redis.
    NewClientHost,
    ClientsFell,
    // The application's own commands on sessions in the slowlog.
    SlowSessionCommands,
    // Targets watched side by side.
    SameServer,
}

impl FindingKind {
    /// How many of [`FindingKind::ALL`], from the first, are about sessions.
    pub const SESSION_KINDS: usize = 11;

    pub const ALL: [FindingKind; 33] = [
        FindingKind::Stuck,
        FindingKind::Stalled,
        FindingKind::Orphaned,
        FindingKind::NoTtl,
        FindingKind::TtlMismatch,
        FindingKind::HistoryOverCap,
        FindingKind::StaleLock,
        FindingKind::RateLimited,
        FindingKind::Oversized,
        FindingKind::Undecodable,
        FindingKind::ClockTrouble,
        FindingKind::MemoryHigh,
        FindingKind::NoMaxmemory,
        FindingKind::EvictionPolicy,
        FindingKind::Evicted,
        FindingKind::RejectedConnections,
        FindingKind::BlockedClients,
        FindingKind::Fragmentation,
        FindingKind::Restarted,
        FindingKind::RoleChanged,
        FindingKind::NodeDown,
        FindingKind::Failover,
        FindingKind::SlotsUncovered,
        FindingKind::SlotsMoved,
        FindingKind::SessionsDropped,
        FindingKind::NotComingBack,
        FindingKind::FlowStopped,
        FindingKind::StageUnreached,
        FindingKind::ProcessCount,
        FindingKind::NewClientHost,
        FindingKind::ClientsFell,
        FindingKind::SlowSessionCommands,
        FindingKind::SameServer,
    ];

    /// The name in JSON and on the command line (`no_ttl`).
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Stuck => "stuck",
            FindingKind::Stalled => "stalled",
            FindingKind::Orphaned => "orphaned",
            FindingKind::NoTtl => "no_ttl",
            FindingKind::TtlMismatch => "ttl_mismatch",
            FindingKind::HistoryOverCap => "history_over_cap",
            FindingKind::StaleLock => "stale_lock",
            FindingKind::RateLimited => "rate_limited",
            FindingKind::Oversized => "oversized",
            FindingKind::Undecodable => "undecodable",
            FindingKind::ClockTrouble => "clock_trouble",
            FindingKind::MemoryHigh => "memory_high",
            FindingKind::NoMaxmemory => "no_maxmemory",
            FindingKind::EvictionPolicy => "eviction_policy",
            FindingKind::Evicted => "evicted",
            FindingKind::RejectedConnections => "rejected_connections",
            FindingKind::BlockedClients => "blocked_clients",
            FindingKind::Fragmentation => "fragmentation",
            FindingKind::Restarted => "restarted",
            FindingKind::RoleChanged => "role_changed",
            FindingKind::NodeDown => "node_down",
            FindingKind::Failover => "failover",
            FindingKind::SlotsUncovered => "slots_uncovered",
            FindingKind::SlotsMoved => "slots_moved",
            FindingKind::SessionsDropped => "sessions_dropped",
            FindingKind::NotComingBack => "not_coming_back",
            FindingKind::FlowStopped => "flow_stopped",
            FindingKind::StageUnreached => "stage_unreached",
            FindingKind::ProcessCount => "process_count",
            FindingKind::NewClientHost => "new_client_host",
            FindingKind::ClientsFell => "clients_fell",
            FindingKind::SlowSessionCommands => "slow_session_commands",
            FindingKind::SameServer => "same_server",
        }
    }

    /// Whether the finding is about the server rather than sessions (its subjects are not ids).
    pub fn is_server(self) -> bool {
        self >= FindingKind::MemoryHigh
            && !matches!(
                self,
                FindingKind::SessionsDropped
                    | FindingKind::NotComingBack
                    | FindingKind::FlowStopped
                    | FindingKind::StageUnreached
            )
    }

    /// The write that fixes the finding's sessions by itself, if it has one; the sessions of any
    /// other session finding can only be expired or deleted, as the user chooses. The one place
    /// that says which findings `x` and `sessiontop fix` can mend on their own.
    pub fn own_fix(self) -> Option<OwnFix> {
        match self {
            FindingKind::Orphaned => Some(OwnFix::Unindex),
            FindingKind::NoTtl => Some(OwnFix::GiveTtl),
            FindingKind::StaleLock => Some(OwnFix::Release),
            _ => None,
        }
    }
}

/// A finding's own fix (see [`FindingKind::own_fix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnFix {
    /// Remove the index entry that names no keys.
    Unindex,
    /// Give the keys without a TTL the session lifetime.
    GiveTtl,
    /// Delete the lock held too long.
    Release,
}

/// One node of a target made of several (a cluster's primaries and replicas), as the last
/// poll saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeStatus {
    /// `host:port` as the cluster announces it.
    pub address: String,
    /// The cluster's id for the node.
    pub id: String,
    pub primary: bool,
    /// A replica's primary, by address.
    pub replica_of: Option<String>,
    /// What the cluster says of the node: `online`, `failed`, `loading`.
    pub health: String,
    /// The slots a primary serves.
    pub slots: Vec<(u16, u16)>,
    /// What the node's own `INFO` and `DBSIZE` said; `None` when it could not be asked.
    pub stats: Option<Box<crate::conn::info::ServerStats>>,
    /// Why the node could not be polled.
    pub error: Option<String>,
    /// The share of the node's core sessiontop's commands cost lately.
    pub own_share: Option<f64>,
    pub commands_sent: u64,
    /// How far a replica is behind its primary, in bytes of the replication stream.
    pub lag_bytes: Option<u64>,
}

impl NodeStatus {
    /// How many slots a primary serves.
    pub fn slot_count(&self) -> u32 {
        self.slots.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum()
    }
}

/// What a target made of several nodes is made of, as of the last poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodesView {
    /// `cluster`.
    pub kind: String,
    /// Goes up with every change of slots, primaries or nodes.
    pub epoch: u64,
    pub nodes: Vec<NodeStatus>,
    /// Slot ranges no primary serves.
    pub uncovered: Vec<(u16, u16)>,
    /// Where sessions are read from under `--read-from` (`reads from 10.0.0.2:6380 (lag 0 B)`);
    /// `None` when from the primary.
    pub reads: Option<String>,
}

impl NodesView {
    pub fn primaries(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.iter().filter(|n| n.primary)
    }
}

/// One command the server logged as slow (`SLOWLOG GET`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlowEntry {
    /// The node that logged it (a cluster's primaries each keep their own).
    pub node: String,
    pub at: Millis,
    pub micros: u64,
    /// The command and its arguments as the server kept them, escaped and clipped.
    pub command: String,
    /// The session whose key it touched, when it touched one of the layout's.
    pub session: Option<crate::engine::names::SessionId>,
    /// The client's address and name.
    pub client: String,
    pub client_name: String,
    /// Sent by sessiontop itself.
    pub own: bool,
}

/// The slowlog of every primary, newest first, and `LATENCY LATEST` where it is allowed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlowlogView {
    pub at: Millis,
    pub entries: Vec<SlowEntry>,
    /// Latency events: name, latest and all-time highest milliseconds (`None`: not allowed).
    pub latency: Option<Vec<(String, u64, u64)>>,
    /// Why the slowlog could not be read (denied, absent), if it could not.
    pub unavailable: Option<String>,
}

/// What happened to a session, as a keyspace notification said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// Its session key was made (`new`, Redis 7.0+ with the `n` class).
    Created,
    /// Its key or one of its parts was written.
    Saved,
    /// Its session key expired.
    Expired,
    /// Its session key was evicted (`maxmemory`).
    Evicted,
    /// Its session key was deleted.
    Deleted,
}

impl EventKind {
    pub fn word(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Saved => "saved",
            EventKind::Expired => "expired",
            EventKind::Evicted => "evicted",
            EventKind::Deleted => "deleted",
        }
    }

    /// Whether the session is gone after it.
    pub fn ends(self) -> bool {
        matches!(self, EventKind::Expired | EventKind::Evicted | EventKind::Deleted)
    }
}

/// One session event.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub at: Millis,
    pub id: crate::engine::names::SessionId,
    pub kind: EventKind,
    /// The part of the session it touched (`session`, `history`, …), and the event's own name.
    pub part: String,
    pub event: String,
}

/// Whether session events can be had from this target.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EventsState {
    /// Not looked at yet (or no layout).
    #[default]
    Unknown,
    /// Subscribed; `flags` is the server's `notify-keyspace-events` where it could be read.
    On { flags: Option<String> },
    /// The server does not send what sessions need: how to turn it on.
    Off { flags: String, how: String },
    /// They cannot be had here (a subscription refused): why.
    Unavailable(String),
}

/// Who is connected to the target, by source host, as `CLIENT LIST` (of every primary) showed
/// it at `at`; sessiontop's own connections (named `sessiontop`) are counted apart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClientsView {
    pub at: Millis,
    /// Connections listed (replicas and subscribers are not).
    pub total: u64,
    /// sessiontop's own among them.
    pub own: u64,
    /// By source host, most connections first.
    pub hosts: Vec<HostClients>,
    /// Why the clients are not listed (denied, as on ElastiCache Serverless; too many to list
    /// cheaply); `hosts` is then empty.
    pub unavailable: Option<String>,
}

/// The connections from one source host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostClients {
    /// The address without its port (`10.0.0.5`), or `local socket`.
    pub host: String,
    /// Connections, sessiontop's own left out.
    pub connections: u64,
    /// Client names and libraries (`CLIENT SETNAME`, `lib-name` on 7.2+), with their counts.
    pub names: Vec<(String, u64)>,
    /// The least and the most seconds any of them has been idle.
    pub idle_s: (u64, u64),
    /// The last commands they ran, with their counts, most first.
    pub commands: Vec<(String, u64)>,
}

/// The machine sessiontop runs on, and the processes `--watch-process` names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostStats {
    /// The whole machine's CPU use, in percent of all its CPUs (0–100).
    pub cpu_percent: f32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// 1, 5 and 15 minutes; `None` where the system has none.
    pub load: Option<[f64; 3]>,
    pub processes: Vec<WatchedProcesses>,
}

/// The processes one `--watch-process` pattern matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchedProcesses {
    pub pattern: String,
    pub count: u64,
    pub rss_bytes: u64,
    /// Percent of one CPU, summed.
    pub cpu_percent: f32,
}

/// One thing wrong with a session, as read: the finding it counts towards, a word on why, and
/// the key it is about (the lock, the history, the session key), when it is about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFinding {
    pub kind: FindingKind,
    pub why: String,
    pub key: Option<Key>,
}

impl RowFinding {
    pub fn new(kind: FindingKind, why: String) -> RowFinding {
        RowFinding { kind, why, key: None }
    }
}

/// What a finding points at: a session, one of its keys, or both, with a word on why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: Option<SessionId>,
    pub key: Option<Key>,
    pub detail: Option<String>,
}

impl Subject {
    pub fn session(id: SessionId, detail: Option<String>) -> Subject {
        Subject { id: Some(id), key: None, detail }
    }

    /// Whether the subject is small enough to keep in a sample: an id or key longer than
    /// [`SUBJECT_MAX_BYTES`] (hostile, or not a session's) is counted but not named.
    pub fn fits_a_sample(&self) -> bool {
        self.id.as_ref().is_none_or(|id| id.as_bytes().len() <= SUBJECT_MAX_BYTES)
            && self.key.as_ref().is_none_or(|k| k.as_bytes().len() <= SUBJECT_MAX_BYTES)
    }
}

/// The longest id or key a finding names.
pub const SUBJECT_MAX_BYTES: usize = 1024;

/// At most this many subjects a finding names (all are counted).
pub const FINDING_SAMPLE: usize = 20;

/// A named problem: how bad, how many, what fired it, and a bounded sample of what it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub count: u64,
    /// One line: what is wrong, with the threshold that fired.
    pub summary: String,
    /// Counts by stage (or substate), where a finding has them (the stalled funnel).
    pub by_stage: Vec<(String, u64)>,
    /// At most [`FINDING_SAMPLE`] of the sessions or keys involved.
    pub sample: Vec<Subject>,
}

/// Per-session findings the census counts, with a bounded sample of each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub counts: BTreeMap<FindingKind, u64>,
    pub samples: BTreeMap<FindingKind, Vec<Subject>>,
}

impl Evidence {
    /// Counts one more of `kind`; keeps `subject` while the sample has room.
    pub fn note(&mut self, kind: FindingKind, subject: impl FnOnce() -> Subject) {
        *self.counts.entry(kind).or_insert(0) += 1;
        let sample = self.samples.entry(kind).or_default();
        if sample.len() < FINDING_SAMPLE {
            let subject = subject();
            if subject.fits_a_sample() {
                sample.push(subject);
            }
        }
    }

    pub fn count(&self, kind: FindingKind) -> u64 {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    pub fn sample(&self, kind: FindingKind) -> &[Subject] {
        self.samples.get(&kind).map_or(&[], Vec::as_slice)
    }
}

/// Where findings start. Per-session rules are judged as rows are read; the rest when the
/// findings are put together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A session active within this window is a user still trying (stuck, not gone).
    pub active_window_s: i64,
    /// Turns in the same non-final stage, with the same decision, that make a session stuck.
    pub stuck_turns: usize,
    /// A payload larger than this is oversized.
    pub large_session_bytes: u64,
    /// Parts of one session that expire this much apart disagree.
    pub ttl_mismatch_s: i64,
    /// A last interaction this far in the future is clock trouble.
    pub clock_skew_s: i64,
    /// A lock held (or set to be held) longer than this is stale.
    pub lock_held_s: i64,
    /// Used memory at these shares of `maxmemory` warns, then is critical.
    pub memory_warning: f64,
    pub memory_critical: f64,
    /// Fragmentation above this, on a server using at least `fragmentation_min_bytes`.
    pub fragmentation: f64,
    pub fragmentation_min_bytes: u64,
    /// Live sessions falling by more than this share between two census passes.
    pub drop_share: f64,
    /// New sessions are counted over this window; this share of them never used again is a
    /// cookie the application does not get back.
    pub arrivals_window_s: i64,
    pub unused_share: f64,
    /// Entries into and exits from stages are counted over this window.
    pub flow_window_s: i64,
    /// Connections from the application's hosts falling by this share is workers gone.
    pub clients_fall_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            active_window_s: 30 * 60,
            stuck_turns: 6,
            large_session_bytes: 256 << 10,
            ttl_mismatch_s: 10 * 60,
            clock_skew_s: 5 * 60,
            lock_held_s: 60,
            memory_warning: 0.8,
            memory_critical: 0.9,
            fragmentation: 1.5,
            fragmentation_min_bytes: 64 << 20,
            drop_share: 0.3,
            arrivals_window_s: 10 * 60,
            unused_share: 0.8,
            flow_window_s: 30 * 60,
            clients_fall_share: 0.5,
        }
    }
}

/// Where the session lifetime in use comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeSource {
    Flag,
    Layout,
    /// Rounded up from the largest TTL the census saw.
    Inferred {
        largest_ttl_s: i64,
    },
}

impl LifetimeSource {
    /// How the lifetime was found, in words (`inferred from the largest TTL seen, 23h59m`).
    pub fn describe(self) -> String {
        match self {
            LifetimeSource::Flag => "--session-lifetime".into(),
            LifetimeSource::Layout => "the layout's".into(),
            LifetimeSource::Inferred { largest_ttl_s } => format!(
                "inferred from the largest TTL seen ({}), rounded up; pass --session-lifetime if it is wrong",
                crate::util::text::human_duration(largest_ttl_s)
            ),
        }
    }
}

/// Session lifetimes applications set: 5, 10, 15 and 30 minutes, 1, 2, 4, 6, 8 and 12 hours,
/// 1, 2, 7, 14, 30 and 31 days (Flask's default).
const COMMON_LIFETIMES_S: [i64; 16] = [
    300, 600, 900, 1800, 3600, 7200, 14_400, 21_600, 28_800, 43_200, 86_400, 172_800, 604_800, 1_209_600, 2_592_000,
    2_678_400,
];

/// The lifetime a session store with this largest TTL most likely has: the next common lifetime
/// at or above it, or beyond them the next whole day. One of [`inferable_lifetimes`].
pub fn infer_lifetime(largest_ttl_s: i64) -> i64 {
    COMMON_LIFETIMES_S
        .iter()
        .copied()
        .find(|l| *l >= largest_ttl_s)
        .unwrap_or_else(|| largest_ttl_s.saturating_add(86_399) / 86_400 * 86_400)
}

/// Every lifetime [`infer_lifetime`] can give up to `largest_ttl_s`, so that a count that needs
/// the lifetime can be kept for each before the pass that infers it ends.
pub fn inferable_lifetimes() -> impl Iterator<Item = i64> {
    COMMON_LIFETIMES_S.into_iter().chain((32..=MAX_INFERRED_DAYS).map(|d| d * 86_400))
}

/// Beyond this many days an inferred lifetime is not told apart (a year and a month).
pub const MAX_INFERRED_DAYS: i64 = 400;

/// The session lifetime used for `lifetime - TTL`, and where it comes from:
/// `--session-lifetime`, the layout's, or the largest TTL seen (in ms), rounded up to the
/// lifetime applications set (a TTL is at most the lifetime, and only just after a request
/// equal to it, so the largest TTL seen alone would understate every idle time by the time
/// since the newest request). The one rule for the model, the census and the stage watch.
pub fn session_lifetime(
    flag_s: Option<i64>,
    layout_s: Option<i64>,
    largest_ttl_ms: i64,
) -> Option<(i64, LifetimeSource)> {
    if let Some(s) = flag_s {
        return Some((s, LifetimeSource::Flag));
    }
    if let Some(s) = layout_s {
        return Some((s, LifetimeSource::Layout));
    }
    (largest_ttl_ms > 0).then(|| {
        let largest = (largest_ttl_ms + 999) / 1000;
        (infer_lifetime(largest), LifetimeSource::Inferred { largest_ttl_s: largest })
    })
}

/// Reads a timestamp as applications write it: epoch seconds (or milliseconds), RFC 3339, or
/// ISO 8601 without an offset (read as local time or UTC, per the layout). Microseconds.
pub fn parse_time(text: &str, naive: NaiveTime) -> Option<Micros> {
    parse_time_zoned(text, naive).map(|(at, _)| at)
}

/// [`parse_time`], and whether the text said its own zone (a number of epoch seconds or
/// milliseconds, or RFC 3339 with its offset) rather than naive time. Every session of a census
/// has its time read, so the text's shape spares the parsers that cannot read it: a date that
/// begins with its four-digit year and a dash is not tried as a number, and only a text with an
/// offset after its tenth byte is tried as RFC 3339.
pub fn parse_time_zoned(text: &str, naive: NaiveTime) -> Option<(Micros, bool)> {
    let text = text.trim();
    let dated = text.len() >= 10 && text.as_bytes()[4] == b'-';
    if !dated && let Ok(n) = text.parse::<f64>() {
        if !n.is_finite() || n <= 0.0 {
            return None;
        }
        return Some((if n > 1e11 { (n * 1000.0) as Micros } else { (n * 1e6) as Micros }, true));
    }
    // RFC 3339 ends in its offset, after the day.
    let offset = text.as_bytes().iter().skip(10).any(|b| matches!(b, b'Z' | b'z' | b'+' | b'-'));
    if offset && let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some((t.timestamp_micros(), true));
    }
    // Python's `isoformat()` (with a `T`) or `str(datetime)` (with a space), read by hand in
    // their one common shape; any other by chrono's parsers.
    let parsed = match plain_iso(text.as_bytes()) {
        Some(parsed) => parsed,
        None => match text.parse::<NaiveDateTime>() {
            Ok(parsed) => parsed,
            Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?,
        },
    };
    naive_micros(&parsed, naive).map(|at| (at, false))
}

/// A time written without its zone, read in the zone the layout says.
fn naive_micros(parsed: &NaiveDateTime, naive: NaiveTime) -> Option<Micros> {
    match naive {
        NaiveTime::Utc => Some(Utc.from_utc_datetime(parsed).timestamp_micros()),
        NaiveTime::Local => Local.from_local_datetime(parsed).earliest().map(|t| t.timestamp_micros()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` with a `T` or a space, and six or fewer digits of fraction, as Python
/// writes a naive `datetime`: the shape of most sessions' times, read without chrono's general
/// parser (a census reads one a session). `None` for any other text, which chrono then reads.
fn plain_iso(b: &[u8]) -> Option<NaiveDateTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && (at(10, b'T') || at(10, b' ')) && at(13, b':') && at(16, b':')) {
        return None;
    }
    let micros = match b.len() {
        19 => 0,
        21..=26 if b[19] == b'.' => digits(20..b.len())? * 10u32.pow(26 - b.len() as u32),
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_micro_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?, micros)?;
    Some(NaiveDateTime::new(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_iso_reads_what_chrono_reads() {
        for text in [
            "2024-05-17T12:34:56",
            "2024-05-17 12:34:56",
            "2024-05-17T12:34:56.7",
            "2024-05-17T12:34:56.789012",
            "2024-02-29T00:00:00.000001",
            "1999-12-31 23:59:59.5",
        ] {
            let chrono = text.replace(' ', "T").parse::<NaiveDateTime>().ok();
            assert_eq!(plain_iso(text.as_bytes()), chrono, "{text}");
            assert!(chrono.is_some(), "{text}");
        }
        // Not its shape, or not a time: left to chrono (which refuses these too).
        for text in [
            "2023-02-29T00:00:00",
            "2024-05-17T24:00:00",
            "2024-05-17T12:34",
            "2024-05-17T12:34:56.1234567",
            "2024-05-17T12:34:56,5",
            "２０２４-05-17T12:34:56",
        ] {
            assert_eq!(plain_iso(text.as_bytes()), None, "{text}");
        }
    }

    /// What reading a time meant before the text's shape picked the parser: each parser tried
    /// in turn, the zone said by a number or RFC 3339.
    fn every_parser_in_turn(text: &str, naive: NaiveTime) -> Option<(Micros, bool)> {
        let text = text.trim();
        if let Ok(n) = text.parse::<f64>() {
            if !n.is_finite() || n <= 0.0 {
                return None;
            }
            return Some((if n > 1e11 { (n * 1000.0) as Micros } else { (n * 1e6) as Micros }, true));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some((t.timestamp_micros(), true));
        }
        let parsed = match text.parse::<NaiveDateTime>() {
            Ok(parsed) => parsed,
            Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?,
        };
        naive_micros(&parsed, naive).map(|at| (at, false))
    }

    #[test]
    fn the_shape_picks_the_parser_that_reads_it() {
        let dates = ["2024-05-17", "2024-02-29", "2023-02-29", "1999-12-31", "0001-01-01", "+2024-05-17"];
        let times = [
            "",
            "T12:34:56",
            " 12:34:56",
            "T23:59:60",
            "T12:34:56.5",
            "T12:34:56.789012",
            "T12:34:56.1234567",
            "T12:34",
            "t12:34:56",
        ];
        let zones = ["", "Z", "z", "+01:00", "-05:30", "+0100", " UTC", "-"];
        let mut texts: Vec<String> = Vec::new();
        for d in dates {
            for t in times {
                for z in zones {
                    texts.push(format!("{d}{t}{z}"));
                    texts.push(format!("  {d}{t}{z} "));
                }
            }
        }
        texts.extend(
            [
                "1715949296",
                "1715949296.5",
                "1715949296500",
                "1e9",
                "-5",
                "0",
                "nan",
                "inf",
                "",
                "yesterday",
                "2024-05",
                "12345-05-17T12:34:56",
                "2024-05-1712:34:56",
            ]
            .map(String::from),
        );
        for text in &texts {
            for naive in [NaiveTime::Utc, NaiveTime::Local] {
                assert_eq!(parse_time_zoned(text, naive), every_parser_in_turn(text, naive), "{text:?}");
            }
        }
    }

    #[test]
    fn times_in_every_shape_applications_write() {
        assert_eq!(parse_time("1715949296", NaiveTime::Utc), Some(1_715_949_296_000_000));
        assert_eq!(parse_time("1715949296.5", NaiveTime::Utc), Some(1_715_949_296_500_000));
        assert_eq!(parse_time("1715949296500", NaiveTime::Utc), Some(1_715_949_296_500_000));
        assert_eq!(parse_time("2024-05-17T12:34:56.789+00:00", NaiveTime::Local), Some(1_715_949_296_789_000));
        assert_eq!(parse_time("2024-05-17T12:34:56.789012", NaiveTime::Utc), Some(1_715_949_296_789_012));
        assert_eq!(parse_time("2024-05-17 12:34:56", NaiveTime::Utc), Some(1_715_949_296_000_000));
        assert_eq!(parse_time("yesterday", NaiveTime::Utc), None);
        assert_eq!(parse_time("-5", NaiveTime::Utc), None);
        assert_eq!(parse_time("2024-05-17T12:34:56Z", NaiveTime::Local), Some(1_715_949_296_000_000));
        assert_eq!(parse_time("2024-05-17T14:34:56-02:00", NaiveTime::Utc), Some(1_715_963_696_000_000));
        assert_eq!(parse_time("1e3", NaiveTime::Utc), Some(1_000_000_000));
        // Whether the text said its zone.
        assert_eq!(parse_time_zoned("1715949296", NaiveTime::Utc).map(|t| t.1), Some(true));
        assert_eq!(parse_time_zoned("2024-05-17T12:34:56+01:00", NaiveTime::Utc).map(|t| t.1), Some(true));
        assert_eq!(parse_time_zoned("2024-05-17T12:34:56.789012", NaiveTime::Utc).map(|t| t.1), Some(false));
        assert_eq!(parse_time_zoned("2024-05-17 12:34:56", NaiveTime::Utc).map(|t| t.1), Some(false));
    }
}
