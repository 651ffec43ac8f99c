//! Writes to Redis: expire, persist and delete a session, and the fixes findings offer (remove an
//! orphaned index entry, give keys without TTL one, release a stale lock). Each is planned first
//! (the exact keys it will touch, which the user confirms), refused under `--read-only`,
//! written to the audit log before and after, run atomically in `MULTI`/`EXEC`, and read back.
//!
//! Must never write anything the plan did not list, and never write when read-only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::conn::link::{Failure, reply};
use crate::conn::route::Router;
use crate::engine::domain::SessionKey;
use crate::engine::layout::{Layout, Lifecycle};
use crate::engine::msg::{WriteKind, WritePlan};
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
        Ok(WritePlan { id: id.clone(), kind, keys, untouched, index })
    }

    /// Carries out a plan the user confirmed.
    pub async fn execute(&self, router: &Router, plan: &WritePlan) -> Result<WriteOutcome, WriteError> {
        if self.read_only {
            return Err(WriteError::ReadOnly);
        }
        if plan.is_empty() {
            return Err(WriteError::NoSession(plan.id.escaped()));
        }
        let keys: Vec<&Key> = plan.keys.iter().map(|k| &k.key).collect();
        self.audit.record(&AuditRecord::new(&self.target_url, plan, "begin", None))?;

        let mut pipe = crate::conn::link::pipe();
        match plan.kind {
            WriteKind::Expire(seconds) => {
                for key in &keys {
                    pipe.cmd("EXPIRE").arg(*key).arg(seconds);
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
                if let Some(index) = &plan.index {
                    pipe.cmd("ZREM").arg(index).arg(&plan.id);
                }
            }
        }
        let result = router.transaction(&pipe).await;
        let outcome = match result {
            Ok(replies) if !replies.is_empty() && replies.iter().all(Result::is_err) => {
                let failure = replies.into_iter().find_map(Result::err).unwrap_or(Failure::Protocol("EXEC".into()));
                Err(WriteError::Refused(failure))
            }
            Ok(replies) => match replies.iter().find_map(|r| r.as_ref().err()) {
                Some(failure) => Err(WriteError::Incomplete(failure.to_string())),
                None => self.read_back(router, plan).await,
            },
            Err(failure) => Err(WriteError::Redis(failure)),
        };
        let note = match &outcome {
            Ok(o) => o.summary(),
            Err(e) => format!("failed: {e}"),
        };
        self.audit.record(&AuditRecord::new(&self.target_url, plan, "end", Some(note)))?;
        outcome
    }

    /// Reads back each key's state after a write.
    async fn read_back(&self, router: &Router, plan: &WritePlan) -> Result<WriteOutcome, WriteError> {
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
        if matches!(plan.kind, WriteKind::Delete | WriteKind::Release)
            && let Some((key, _)) = keys.iter().find(|(_, s)| s != "deleted")
        {
            return Err(WriteError::Incomplete(format!("{key} is still present")));
        }
        Ok(WriteOutcome { session: plan.id.clone(), action: plan.kind.verb(), keys, index_entry_removed })
    }
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
            outcome,
        }
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
