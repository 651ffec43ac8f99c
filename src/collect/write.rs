//! Writes to Redis: expire, persist and delete a session, and the fixes findings offer (remove an
//! orphaned index entry, give keys without TTL one, release a stale lock). Each is planned first
//! (the exact keys it will touch, which the user confirms), refused under `--read-only`,
//! written to the audit log before and after, run in `MULTI`/`EXEC`, and read back. On one
//! server the whole write is one transaction; on a cluster it is one per hash slot (see
//! [`steps`]), which the plan, the dialog and the audit log say.
//!
//! Must never write anything the plan did not list, and never write when read-only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::conn::link::{Failure, reply};
use crate::conn::route::Router;
use crate::conn::topology::Map;
use crate::engine::domain::SessionKey;
use crate::engine::layout::{Layout, Lifecycle};
use crate::engine::msg::{WriteKind, WritePlan, WriteSpan};
use crate::engine::names::{Key, SessionId};

/// What a write did, as read back afterwards.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteOutcome {
    pub session: SessionId,
    pub action: &'static str,
    /// Each changed key with its state after the write: `deleted`, `persistent`, `ttl 60s`, or
    /// `still present` when a delete did not take.
    pub keys: Vec<(Key, String)>,
    pub index_entry_removed: bool,
    /// How many transactions it took, on how many nodes.
    #[serde(skip)]
    pub span: WriteSpan,
}

impl WriteOutcome {
    /// One line for the user.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} session '{}': {} key{}",
            past(self.action),
            self.session,
            self.keys.len(),
            if self.keys.len() == 1 { "" } else { "s" }
        );
        if self.index_entry_removed {
            line.push_str(" and its index entry");
        }
        if !self.span.is_atomic() {
            line.push_str(&format!(
                ", in {} transactions on {} node{} (one per hash slot, not atomic together)",
                self.span.steps,
                self.span.nodes,
                if self.span.nodes == 1 { "" } else { "s" }
            ));
        }
        line
    }
}

fn past(verb: &str) -> &'static str {
    match verb {
        "expire" => "expired",
        "persist" => "persisted",
        "unindex" => "removed the orphaned index entry of",
        "release" => "released the locks of",
        _ => "deleted",
    }
}

/// Why a write did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("refused: sessiontop is read-only for this target (--read-only or read_only in the config)")]
    ReadOnly,
    #[error("no session '{0}' under this layout and prefix")]
    NoSession(String),
    #[error("cannot write the audit log {path}: {reason}; refusing to write to Redis unaudited")]
    Audit { path: String, reason: String },
    #[error("{0}")]
    Redis(#[from] Failure),
    /// Redis refused the transaction as it was queued: nothing was changed.
    #[error("Redis refused it, nothing was changed: {0}")]
    Refused(Failure),
    #[error("the write did not complete: {0}")]
    Incomplete(String),
    /// The fix does not fit this session (any more): nothing was changed.
    #[error("{0}")]
    NotApplicable(String),
}

/// Performs writes for one target.
#[derive(Debug, Clone)]
pub struct Writer {
    read_only: bool,
    audit: AuditLog,
    target_url: String,
}

impl Writer {
    pub fn new(read_only: bool, audit: AuditLog, target_url: impl Into<String>) -> Self {
        Writer { read_only, audit, target_url: target_url.into() }
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Lists exactly what `kind` would change for session `id`, given the session's keys that
    /// exist and its index score (as the collectors' `find_keys` finds them).
    pub fn plan(
        &self,
        map: &Map,
        layout: &Layout,
        id: &SessionId,
        kind: WriteKind,
        keys: Vec<SessionKey>,
        score: Option<f64>,
    ) -> Result<WritePlan, WriteError> {
        if keys.is_empty() && score.is_none() {
            return Err(WriteError::NoSession(id.escaped()));
        }
        let (keys, untouched) = match kind {
            WriteKind::Delete => (keys, Vec::new()),
            // An entry is an orphan only while nothing of its session exists.
            WriteKind::Unindex if keys.iter().any(|k| k.role == "primary") => {
                return Err(WriteError::NotApplicable(format!(
                    "'{}' has its session key: its index entry is not an orphan",
                    id.escaped()
                )));
            }
            WriteKind::Unindex => (Vec::new(), keys),
            WriteKind::Release => keys.into_iter().partition(|k| layout.is_lock(&k.role)),
            _ => keys.into_iter().partition(|k| k.lifecycle == Lifecycle::Session),
        };
        let index = match kind {
            WriteKind::Delete | WriteKind::Unindex if score.is_some() => layout.index.as_ref().map(|i| i.key.clone()),
            _ => None,
        };
        let mut plan = WritePlan { id: id.clone(), kind, keys, untouched, index, span: WriteSpan::default() };
        plan.span = span(map, &plan);
        Ok(plan)
    }

    /// Carries out a plan the user confirmed: one transaction on one server; on a cluster one
    /// per hash slot, the session's keys first and its index entry last, each audited.
    pub async fn execute(&self, router: &Router, plan: &WritePlan) -> Result<WriteOutcome, WriteError> {
        if self.read_only {
            return Err(WriteError::ReadOnly);
        }
        if plan.is_empty() {
            return Err(WriteError::NoSession(plan.id.escaped()));
        }
        // The slots as they are now, whatever they were when the plan was made.
        let steps = steps(&router.topology().map(), plan);
        self.audit.record(&AuditRecord::new(&self.target_url, plan, "begin", None))?;
        // An absolute time, so that a step sent again cannot put the session's end later.
        let expire_at = match plan.kind {
            WriteKind::Expire(seconds) => Some(chrono::Utc::now().timestamp_millis() + seconds.saturating_mul(1000)),
            _ => None,
        };
        let mut stopped: Option<(usize, WriteError)> = None;
        for (i, step) in steps.iter().enumerate() {
            let pipe = step.commands(plan, expire_at);
            // What went wrong, for a first step (nothing was changed) and for a later one.
            let failed = |failure: Failure, refused: bool| -> WriteError {
                match (i, refused) {
                    (0, true) => WriteError::Refused(failure),
                    (0, false) if failure.is_connection() => WriteError::Redis(failure),
                    _ => WriteError::Incomplete(failure.to_string()),
                }
            };
            let result = match router.transaction(&pipe).await {
                Ok(replies) if !replies.is_empty() && replies.iter().all(Result::is_err) => {
                    let failure = replies.into_iter().find_map(Result::err).unwrap_or(Failure::Protocol("EXEC".into()));
                    Err(failed(failure, true))
                }
                Ok(replies) => match replies.into_iter().find_map(Result::err) {
                    Some(failure) => Err(failed(failure, false)),
                    None => Ok(()),
                },
                Err(failure) => Err(failed(failure, false)),
            };
            if steps.len() > 1 {
                let note = result.as_ref().map_or_else(|e| format!("failed: {e}"), |()| "done".into());
                self.audit.record(&AuditRecord::step(&self.target_url, plan, step, note))?;
            }
            if let Err(e) = result {
                stopped = Some((i, e));
                break;
            }
        }
        let outcome = match stopped {
            None => self.read_back(router, plan).await,
            Some((0, e)) => Err(e),
            // Some steps ran: say which, and where every key stands now.
            Some((done, e)) => {
                let now = self.read_back_states(router, plan).await.unwrap_or_default();
                let states: Vec<String> = now.iter().map(|(k, s)| format!("{k} {s}")).collect();
                let why = match e {
                    WriteError::Incomplete(why) => why,
                    other => other.to_string(),
                };
                Err(WriteError::Incomplete(format!(
                    "{done} of {} steps done, then {why}; now: {}",
                    steps.len(),
                    if states.is_empty() { "unknown".into() } else { states.join(", ") }
                )))
            }
        };
        let note = match &outcome {
            Ok(o) => o.summary(),
            Err(e) => format!("failed: {e}"),
        };
        self.audit.record(&AuditRecord::new(&self.target_url, plan, "end", Some(note)))?;
        outcome
    }

    /// Each key's state now, and the index entry's, without judging them.
    async fn read_back_states(&self, router: &Router, plan: &WritePlan) -> Result<Vec<(Key, String)>, WriteError> {
        let mut states = self.read_states(router, plan).await?.0;
        if let Some(index) = &plan.index {
            let entry = router.query::<Option<f64>>(redis::cmd("ZSCORE").arg(index).arg(&plan.id)).await.ok();
            let state = match entry {
                Some(Some(_)) => "still indexed",
                Some(None) => "removed",
                None => "unknown",
            };
            states.push((Key::from(format!("index entry in {index}").into_bytes()), state.to_string()));
        }
        Ok(states)
    }

    /// Reads back each key's state after a write.
    async fn read_back(&self, router: &Router, plan: &WritePlan) -> Result<WriteOutcome, WriteError> {
        let (keys, index_entry_removed) = self.read_states(router, plan).await?;
        if matches!(plan.kind, WriteKind::Delete | WriteKind::Release)
            && let Some((key, _)) = keys.iter().find(|(_, s)| s != "deleted")
        {
            return Err(WriteError::Incomplete(format!("{key} is still present")));
        }
        Ok(WriteOutcome {
            session: plan.id.clone(),
            action: plan.kind.verb(),
            keys,
            index_entry_removed,
            span: plan.span,
        })
    }

    /// Each key's state (`deleted`, `persistent`, `ttl 60s`), and whether the index entry is gone.
    async fn read_states(&self, router: &Router, plan: &WritePlan) -> Result<(Vec<(Key, String)>, bool), WriteError> {
        let mut pipe = crate::conn::link::pipe();
        for k in &plan.keys {
            pipe.cmd("PTTL").arg(&k.key);
        }
        if let Some(index) = &plan.index {
            pipe.cmd("ZSCORE").arg(index).arg(&plan.id);
        }
        let replies = router.pipeline(&pipe).await?;
        let keys = plan
            .keys
            .iter()
            .zip(&replies)
            .map(|(k, r)| {
                let state = match reply::int(r) {
                    Some(-2) => "deleted".to_string(),
                    Some(-1) => "persistent".to_string(),
                    Some(ms) => format!("ttl {}s", (ms + 999) / 1000),
                    None => "unknown".to_string(),
                };
                (k.key.clone(), state)
            })
            .collect::<Vec<_>>();
        let index_entry_removed =
            plan.index.is_some() && replies.last().is_some_and(|r| matches!(r, Ok(redis::Value::Nil)));
        Ok((keys, index_entry_removed))
    }
}

/// One transaction of a write: the plan's keys in one hash slot (all of them on one server),
/// and whether the index entry goes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node it goes to, as the map names it.
    pub node: String,
    /// The hash slot; `None` on one server.
    pub slot: Option<u16>,
    /// Indices into the plan's keys.
    pub keys: Vec<usize>,
    pub index: bool,
}

impl Step {
    /// The step's commands: `PEXPIREAT` (at `expire_at`), `PERSIST` or `UNLINK` of its keys,
    /// then `ZREM` of the index entry.
    fn commands(&self, plan: &WritePlan, expire_at: Option<i64>) -> redis::Pipeline {
        let mut pipe = crate::conn::link::pipe();
        let keys: Vec<&Key> = self.keys.iter().filter_map(|i| plan.keys.get(*i)).map(|k| &k.key).collect();
        match plan.kind {
            WriteKind::Expire(_) => {
                for key in &keys {
                    pipe.cmd("PEXPIREAT").arg(*key).arg(expire_at.unwrap_or(0));
                }
            }
            WriteKind::Persist => {
                for key in &keys {
                    pipe.cmd("PERSIST").arg(*key);
                }
            }
            WriteKind::Delete | WriteKind::Unindex | WriteKind::Release => {
                if !keys.is_empty() {
                    pipe.cmd("UNLINK").arg(&keys);
                }
            }
        }
        if self.index
            && let Some(index) = &plan.index
        {
            pipe.cmd("ZREM").arg(index).arg(&plan.id);
        }
        pipe
    }
}

/// The transactions a plan takes on the target `map` describes: one on a single server; on a
/// cluster one per hash slot, in the order of the plan's keys, with the index entry in the last
/// (so that an interruption leaves at worst an orphaned index entry, which the census finds and
/// `fix` removes, never an index that lost a live session).
pub fn steps(map: &Map, plan: &WritePlan) -> Vec<Step> {
    if let Some(node) = map.single() {
        let keys = (0..plan.keys.len()).collect();
        return vec![Step { node: node.address().to_string(), slot: None, keys, index: plan.index.is_some() }];
    }
    let node_of = |slot: u16| {
        map.shard_of(slot).and_then(|s| s.primary.as_ref()).map_or_else(String::new, |p| p.node.address().to_string())
    };
    let mut steps: Vec<Step> = Vec::new();
    for (i, k) in plan.keys.iter().enumerate() {
        let slot = crate::conn::slot::of(k.key.as_bytes());
        match steps.iter_mut().find(|s| s.slot == Some(slot)) {
            Some(step) => step.keys.push(i),
            None => steps.push(Step { node: node_of(slot), slot: Some(slot), keys: vec![i], index: false }),
        }
    }
    if let Some(index) = &plan.index {
        let slot = crate::conn::slot::of(index.as_bytes());
        let mut last = match steps.iter().position(|s| s.slot == Some(slot)) {
            Some(i) => steps.remove(i),
            None => Step { node: node_of(slot), slot: Some(slot), keys: Vec::new(), index: false },
        };
        last.index = true;
        steps.push(last);
    }
    steps
}

/// How many transactions a plan takes, on how many nodes.
pub fn span(map: &Map, plan: &WritePlan) -> WriteSpan {
    let steps = steps(map, plan);
    let mut nodes: Vec<&str> = steps.iter().map(|s| s.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    WriteSpan { steps: steps.len().max(1), nodes: nodes.len().max(1) }
}

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct AuditRecord<'a> {
    time: String,
    user: String,
    target: &'a str,
    phase: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds: Option<i64>,
    /// Escaped, as every id and key shown anywhere.
    session: String,
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    /// Whether the write is one transaction; when it is not, how many and on how many nodes.
    atomic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<usize>,
    /// A step's node and hash slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slot: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
}

impl<'a> AuditRecord<'a> {
    fn new(target: &'a str, plan: &'a WritePlan, phase: &'a str, outcome: Option<String>) -> Self {
        AuditRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: who_am_i(),
            target,
            phase,
            action: plan.kind.verb(),
            seconds: match plan.kind {
                WriteKind::Expire(s) => Some(s),
                _ => None,
            },
            session: plan.id.escaped(),
            keys: plan.keys.iter().map(|k| k.key.escaped()).collect(),
            index: plan.index.as_deref(),
            atomic: plan.span.is_atomic(),
            steps: (!plan.span.is_atomic()).then_some(plan.span.steps),
            nodes: (!plan.span.is_atomic()).then_some(plan.span.nodes),
            node: None,
            slot: None,
            outcome,
        }
    }

    /// One step of a write that is not one transaction: its node, slot and keys, and how it went.
    fn step(target: &'a str, plan: &'a WritePlan, step: &Step, outcome: String) -> Self {
        let mut record = AuditRecord::new(target, plan, "step", Some(outcome));
        record.keys = step.keys.iter().filter_map(|i| plan.keys.get(*i)).map(|k| k.key.escaped()).collect();
        record.index = if step.index { plan.index.as_deref() } else { None };
        record.node = Some(step.node.clone());
        record.slot = step.slot;
        record
    }
}

/// Who is writing, for the audit log: `$USER`, else `$LOGNAME`, else the account of the
/// process's user id, else the id itself; never empty.
fn who_am_i() -> String {
    if let Some(name) = ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty())) {
        return name;
    }
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers given to it.
    unsafe {
        let uid = libc::getuid();
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) == 0
            && !found.is_null()
            && !pw.pw_name.is_null()
        {
            let name = std::ffi::CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned();
            if !name.is_empty() {
                return name;
            }
        }
        format!("uid {uid}")
    }
}

/// Creates `path` for appending, readable and writable by its owner only (0600), and its
/// missing directories owner-only too (0700): the audit log names sessions, which for
/// Flask-Session are the users' cookies.
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// An append-only file of JSON lines, one before and one after every write.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditLog { path: path.into() }
    }

    /// `$XDG_STATE_HOME/sessiontop/audit.log`, else `~/.local/state/sessiontop/audit.log`.
    pub fn default_path() -> Option<PathBuf> {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
        Some(state.join("sessiontop").join("audit.log"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&self, record: &AuditRecord<'_>) -> Result<(), WriteError> {
        let fail = |reason: String| WriteError::Audit { path: self.path.display().to_string(), reason };
        let mut line = serde_json::to_string(record).map_err(|e| fail(e.to_string()))?;
        line.push('\n');
        let mut file = open_private(&self.path).map_err(|e| fail(e.to_string()))?;
        file.write_all(line.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| fail(e.to_string()))
    }
}
