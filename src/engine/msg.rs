//! The messages the collectors, the model and the dashboard exchange: updates from Redis,
//! requests for the collectors, and the writes they plan and carry out. Below every module that
//! sends or receives them, so none of those modules imports another to talk to it.

use serde::Serialize;

use crate::conn::info::ServerStats;
use crate::engine::domain::{
    CensusTally, FindingKind, LayoutInfo, LinkState, Millis, SessionKey, SessionReport, SessionRow,
};
use crate::engine::names::SessionId;

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
    /// The nodes of a target made of several, each as its own poll saw it.
    Nodes(Box<crate::engine::domain::NodesView>),
    /// Who is connected, by source host.
    Clients(Box<crate::engine::domain::ClientsView>),
    /// The slowlog of every primary.
    Slowlog(Box<crate::engine::domain::SlowlogView>),
    /// Whether session events can be had, and why not.
    EventsState(crate::engine::domain::EventsState),
    /// Session events, as they came.
    SessionEvents(Vec<crate::engine::domain::SessionEvent>),
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
    /// How far the search for every key of a session being planned for a write has come.
    Searching {
        id: SessionId,
        progress: Option<f64>,
    },
    /// What sessiontop's own commands cost Redis lately (`INFO commandstats`), the budget in
    /// force, and whether the pacer is holding back because Redis is slow.
    OwnLoad {
        redis_cpu_share: Option<f64>,
        budget: String,
        backing_off: bool,
    },
    /// The census cannot get on: why, shown until its next batch arrives.
    CensusBlocked(String),
    /// A write finished: one line for the user, and whether it succeeded.
    WriteDone {
        message: String,
        ok: bool,
    },
    /// A non-fatal problem worth a line on screen.
    Notice(String),
    /// The answer to a request to plan a write (for its confirmation dialog).
    Plan(PlanReply),
    /// The machine sessiontop runs on, and the processes it watches.
    Host(Box<crate::engine::domain::HostStats>),
    /// sessiontop's own process: CPU share and resident memory.
    OwnProcess {
        cpu_percent: f32,
        rss_bytes: u64,
    },
    /// What fixing a finding would change, session by session (for the confirmation dialog),
    /// and the sessions it does not fit, with why.
    FixPlans {
        kind: FindingKind,
        plans: Vec<WritePlan>,
        skipped: Vec<(SessionId, String)>,
    },
}

/// What a write would change, or why it cannot be planned.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanReply {
    Ready(WritePlan),
    Failed { id: SessionId, kind: WriteKind, error: String },
}

/// What the view asks the collectors for.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Poll now.
    Refresh,
    /// The ids currently on screen: their details are read every poll.
    Viewport(Vec<SessionId>),
    /// Sessions events said were written: read at the next poll (at most a page of them), so
    /// that they show between census passes.
    Touched(Vec<SessionId>),
    /// Open (or, with `None`, close) the inspector on a session.
    Inspect(Option<SessionId>),
    /// Work out exactly what a write would change, for the confirmation dialog.
    PlanWrite { id: SessionId, kind: WriteKind },
    /// Stop planning a write (its dialog was closed).
    CancelPlan,
    /// Carry out a plan the user confirmed.
    Execute(WritePlan),
    /// Work out the writes that fix a finding for these sessions (`ttl_s` for keys without TTL).
    PlanFix { kind: FindingKind, ids: Vec<SessionId>, ttl_s: Option<i64> },
    /// Carry out a fix's writes the user confirmed, one by one.
    ExecuteFix(Vec<WritePlan>),
    /// The deploy baseline was marked (or, with `None`, cleared): the causes are judged against
    /// the hour before it.
    Baseline(Option<Millis>),
}

/// A write the user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "action", content = "seconds")]
pub enum WriteKind {
    /// Give the session's keys this TTL in seconds.
    Expire(i64),
    /// Remove the TTL of the session's keys.
    Persist,
    /// Remove every key of the session and its index entry.
    Delete,
    /// Remove the session's index entry, which names no keys (an orphan).
    Unindex,
    /// Delete the session's locks, which are stale.
    Release,
}

impl WriteKind {
    pub fn verb(self) -> &'static str {
        match self {
            WriteKind::Expire(_) => "expire",
            WriteKind::Persist => "persist",
            WriteKind::Delete => "delete",
            WriteKind::Unindex => "unindex",
            WriteKind::Release => "release",
        }
    }
}

/// Exactly what a write will touch.
#[derive(Debug, Clone, PartialEq)]
pub struct WritePlan {
    pub id: SessionId,
    pub kind: WriteKind,
    /// Keys the write changes.
    pub keys: Vec<SessionKey>,
    /// Keys of the session the write leaves alone (locks and counters are never given the
    /// session's TTL or made persistent).
    pub untouched: Vec<SessionKey>,
    /// The index whose entry for `id` the write removes.
    pub index: Option<String>,
    /// How many transactions the write takes, on how many nodes.
    pub span: WriteSpan,
}

/// Where a write goes. On one server it is one transaction; on a cluster one per hash slot
/// its keys are in (a transaction cannot span slots), so a session whose keys share no hash
/// tag is written in several steps that are not atomic together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSpan {
    pub steps: usize,
    pub nodes: usize,
}

impl Default for WriteSpan {
    fn default() -> Self {
        WriteSpan { steps: 1, nodes: 1 }
    }
}

impl WriteSpan {
    /// Whether the whole write is one transaction.
    pub fn is_atomic(&self) -> bool {
        self.steps <= 1
    }

    /// What a person is told of a write that is not one transaction; `None` when it is.
    pub fn warning(&self) -> Option<String> {
        (!self.is_atomic()).then(|| {
            format!(
                "not atomic: {} hash slots on {} node{}, one transaction each; the session's keys go first and its \
                 index entry last, so an interruption leaves at worst an orphaned entry that `fix` removes",
                self.steps,
                self.nodes,
                if self.nodes == 1 { "" } else { "s" }
            )
        })
    }
}

impl WritePlan {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.index.is_none()
    }
}
