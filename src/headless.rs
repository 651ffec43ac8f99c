//! The headless commands: `snapshot`, `inspect`, `expire`, `persist`, `delete`. They fill the
//! same [`Model`] the dashboard draws from, with the same collectors, and print it as text or
//! JSON. Everything printed from Redis is escaped; unknown values are `null`, never invented.

use std::fmt::Write as _;

use serde_json::{Value as J, json};

use crate::action::{WriteError, WriteOutcome};
use crate::collect::census::{self, Budget};
use crate::collect::read::{Interner, LABEL_MAX_CHARS, ReadOptions, read_rows};
use crate::collect::{self, Resolved, inspect, now_millis, server};
use crate::decode::Value;
use crate::domain::{Decodedish, SessionReport, SessionRow, Ttl};
use crate::layout::Layout;
use crate::link::{Failure, Link};
use crate::model::Model;
use crate::msg::{Update, WriteKind, WritePlan};
use crate::names::SessionId;
use crate::present::{self, Exchange};
use crate::setup::Setup;
use crate::text;

/// Why a headless command failed, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    #[error("cannot connect to {url}: {failure}")]
    Connect { url: String, failure: Failure },
    #[error("{0}")]
    Redis(Failure),
    #[error(transparent)]
    Resolve(#[from] collect::ResolveError),
    #[error("{0}")]
    NotDetected(String),
    #[error("no session '{id}' under layout {layout} (no keys, no index entry)")]
    NoSession { id: String, layout: String },
    #[error(transparent)]
    Write(WriteError),
    /// The user (or the lack of a terminal) declined.
    #[error("{0}")]
    Refused(String),
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
    fn from_write(e: WriteError, session: &Session) -> Self {
        match e {
            WriteError::NoSession(id) => HeadlessError::NoSession { id, layout: session.describe_layout() },
            other => HeadlessError::Write(other),
        }
    }
}

/// A connection and the layout in use.
pub struct Session {
    pub link: Link,
    /// `None` when `--layout auto` recognised no layout (an empty or unfamiliar keyspace).
    pub layout: Option<Layout>,
    /// What detection said: the evidence for the layout it chose, or why it chose none.
    pub note: Option<String>,
}

impl Session {
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
}

/// Connects and resolves the layout.
pub async fn open(setup: &Setup) -> Result<Session, HeadlessError> {
    let mut link = setup
        .target
        .connect(setup.load.clone())
        .await
        .map_err(|failure| HeadlessError::Connect { url: setup.target.redacted_url().to_string(), failure })?;
    let resolved = collect::resolve_layout(&mut link, &setup.choice, &setup.overrides).await.map_err(|e| match e {
        // A server that wants a password answers the first command, not the connection.
        collect::ResolveError::Redis(failure @ Failure::Auth(_)) => {
            HeadlessError::Connect { url: setup.target.redacted_url().to_string(), failure }
        }
        other => HeadlessError::Resolve(other),
    })?;
    Ok(match resolved {
        Resolved::Layout { layout, note } => Session { link, layout: Some(*layout), note },
        Resolved::NotDetected { note, .. } => Session { link, layout: None, note: Some(note) },
    })
}

/// A full poll and census, as the model holds it, plus the sessions to list.
pub struct SnapshotData {
    pub model: Model,
    /// `None` when no layout was recognised: the server alone is reported.
    pub layout: Option<Layout>,
    /// What detection said.
    pub detection: Option<String>,
    pub items: Vec<SessionRow>,
    pub census_duration_ms: Option<u64>,
}

/// One full poll and census. Without a layout (an empty keyspace under `--layout auto`), the
/// server alone: no session is invented.
pub async fn snapshot(setup: &Setup, session: &mut Session, limit: usize) -> Result<SnapshotData, HeadlessError> {
    let link = &mut session.link;
    let mut model = Model::new(setup.target_info.clone(), setup.model_settings(), now_millis());
    model.apply(Update::Link(crate::domain::LinkState::Connected { since: model.now }));
    let (stats, unavailable) = server::poll(link).await?;
    model.apply(Update::Server { stats: Box::new(stats), unavailable });
    let Some(layout) = session.layout.clone() else {
        if let Some(note) = &session.note {
            model.apply(Update::LayoutUnknown { note: note.clone() });
        }
        model.tick(now_millis(), setup.load.total());
        return Ok(SnapshotData {
            model,
            layout: None,
            detection: session.note.clone(),
            items: Vec::new(),
            census_duration_ms: None,
        });
    };
    model.apply(Update::Layout(Box::new(crate::domain::LayoutInfo::new(&layout, session.note.clone()))));

    let walk_link = setup.target.connect(setup.load.clone()).await?;
    let mut batches = Vec::new();
    let outcome = census::run_pass(link, walk_link, &layout, setup.collect.census, 1, now_millis, |p| {
        batches.push(Update::CensusBatch {
            generation: 1,
            rows: p.rows,
            partial: p.tally.clone(),
            progress: p.fraction,
        });
    })
    .await?;
    for batch in batches {
        model.apply(batch);
    }
    let census_duration_ms = outcome.duration.as_millis() as u64;
    model.apply(Update::CensusDone {
        generation: 1,
        tally: outcome.tally,
        duration_ms: census_duration_ms,
        orphan_ids: outcome.orphan_ids,
    });
    model.tick(now_millis(), setup.load.total());

    let ids = most_recent(&model, limit);
    let read = ReadOptions { page: true, max_value_bytes: setup.collect.census.max_value_bytes };
    let batch = read_rows(link, &layout, ids.clone(), None, read, &mut Interner::default(), now_millis()).await?;
    model.apply(Update::Page { rows: batch.rows, unavailable: batch.unavailable });
    let items = ids.iter().filter_map(|id| model.sessions.get(id).cloned()).collect();
    Ok(SnapshotData {
        model,
        layout: Some(layout),
        detection: session.note.clone(),
        items,
        census_duration_ms: Some(census_duration_ms),
    })
}

/// The `limit` most recently active sessions, by their exact last activity (unknown last; ties
/// by id).
pub fn most_recent(model: &Model, limit: usize) -> Vec<SessionId> {
    let key = |r: &SessionRow| {
        let activity = model.activity(r);
        (activity.is_none(), std::cmp::Reverse(activity.unwrap_or(0)))
    };
    let mut rows: Vec<&SessionRow> = model.sessions.values().collect();
    let order = |a: &&SessionRow, b: &&SessionRow| key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id));
    if rows.len() > limit && limit > 0 {
        rows.select_nth_unstable_by(limit - 1, order);
    }
    rows.truncate(limit);
    rows.sort_unstable_by(order);
    rows.into_iter().map(|r| r.id.clone()).collect()
}

fn rfc3339(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// TTL in seconds as Redis counts it: -1 for no TTL, `null` when unknown.
fn ttl_json(ttl: Ttl, now: i64) -> J {
    match ttl {
        Ttl::Persistent => json!(-1),
        Ttl::Unknown => J::Null,
        Ttl::ExpiresAt(_) => json!(ttl.seconds_left(now)),
    }
}

fn row_json(model: &Model, row: &SessionRow) -> J {
    json!({
        "id": row.id,
        "stage": row.stage.as_deref(),
        "substate": row.substate.as_deref(),
        "status": row.status.as_deref(),
        "last_interaction": row.last_interaction.and_then(rfc3339),
        "idle_seconds": model.idle_seconds(row),
        "ttl_seconds": ttl_json(row.ttl, model.now),
        "history_len": row.history_len,
        "memory_bytes": row.memory_bytes,
        "stalled": model.is_stalled(row),
        "decode_error": row.decode_error,
    })
}

/// The snapshot as JSON (the README lists every field).
pub fn snapshot_json(data: &SnapshotData, setup: &Setup) -> J {
    let m = &data.model;
    let s = m.server.clone().unwrap_or_default();
    let totals = m.census.totals();
    let stalled = m.sessions.values().filter(|r| m.is_stalled(r)).count();
    let layout = data.layout.as_ref().map(|layout| {
        json!({
            "kind": layout.kind.name(),
            "name": layout.name,
            "prefix": layout.prefix,
            "index": layout.index.as_ref().map(|i| i.key.clone()),
            "detection": data.detection,
        })
    });
    let sessions = data.layout.as_ref().map(|_| {
        json!({
            "total": totals.total,
            "by_stage": totals.by_stage,
            "by_substate": totals.by_substate,
            "no_stage": totals.no_stage,
            "no_ttl": totals.no_ttl,
            "orphaned": totals.orphaned,
            "undecodable": totals.undecodable,
            "oversized": totals.oversized,
            "vanished": totals.vanished,
            "stalled": stalled,
            "stalled_after_seconds": m.settings.stalled_after_s,
            "lifetime_seconds": m.lifetime_s(),
            "orphan_ids": m.census.orphan_ids,
            "unavailable": m.session_unavailable,
            "items": data.items.iter().map(|r| row_json(m, r)).collect::<Vec<_>>(),
        })
    });
    let census = data.layout.as_ref().map(|_| {
        json!({
            "examined": totals.examined,
            "duration_ms": data.census_duration_ms,
            "scan_count": setup.collect.census.scan_count,
            "budget_per_sec": setup.collect.census.budget_per_sec,
        })
    });
    json!({
        "sessiontop_version": env!("CARGO_PKG_VERSION"),
        "taken_at": rfc3339_ms(m.now),
        "target": {
            "url": m.target.url,
            "name": m.target.name,
            "db": setup.target.db(),
            "read_only": m.target.read_only,
        },
        "layout": layout,
        "detection": data.detection,
        "server": {
            "redis_version": s.redis_version,
            "redis_mode": s.redis_mode,
            "role": s.role,
            "uptime_seconds": s.uptime_seconds,
            "used_memory_bytes": s.used_memory_bytes,
            "used_memory_peak_bytes": s.used_memory_peak_bytes,
            "used_memory_rss_bytes": s.used_memory_rss_bytes,
            "maxmemory_bytes": s.maxmemory_bytes,
            "maxmemory_policy": s.maxmemory_policy,
            "mem_fragmentation_ratio": s.mem_fragmentation_ratio,
            "connected_clients": s.connected_clients,
            "blocked_clients": s.blocked_clients,
            "ops_per_sec": s.ops_per_sec,
            "keyspace_hits": s.keyspace_hits,
            "keyspace_misses": s.keyspace_misses,
            "hit_rate": s.hit_rate(),
            "evicted_keys": s.evicted_keys,
            "expired_keys": s.expired_keys,
            "db_keys": s.db_keys,
            "run_id": s.run_id,
            "keyspace": s.keyspace.iter().map(|k| json!({
                "db": k.db, "keys": k.keys, "expires": k.expires, "avg_ttl_ms": k.avg_ttl_ms,
            })).collect::<Vec<_>>(),
            "unavailable": m.server_unavailable,
        },
        "sessions": sessions,
        "census": census,
        "own_load": { "commands_sent": setup.load.total() },
    })
}

/// The snapshot as text for a terminal.
pub fn snapshot_text(data: &SnapshotData) -> String {
    let m = &data.model;
    let mut out = String::new();
    let s = m.server.clone().unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), text::grouped);
    let _ = writeln!(out, "target    {}", text::escape_str(&m.target.url));
    match &data.layout {
        Some(layout) => {
            let _ = writeln!(
                out,
                "layout    {}, prefix '{}'{}",
                layout.kind.name(),
                text::escape_str(&layout.prefix),
                data.detection.as_ref().map(|n| format!(" ({})", text::escape_str(n))).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "layout    none yet: {}",
                data.detection.as_deref().map_or_else(|| "not detected".into(), text::escape_str)
            );
        }
    }
    let memory = match (s.used_memory_bytes, s.maxmemory_bytes) {
        (Some(used), Some(0)) => format!("{} (no limit)", text::human_bytes(used)),
        (Some(used), Some(max)) => format!("{} of {}", text::human_bytes(used), text::human_bytes(max)),
        (Some(used), None) => text::human_bytes(used),
        _ => "n/a".into(),
    };
    let _ = writeln!(
        out,
        "server    Redis {} {}, up {}, memory {memory}, peak {}, fragmentation {}, policy {}",
        s.redis_version.as_deref().map_or("n/a".into(), text::escape_str),
        s.role.as_deref().map_or("n/a".into(), text::escape_str),
        s.uptime_seconds.map_or("n/a".into(), |u| text::human_duration(u as i64)),
        s.used_memory_peak_bytes.map_or("n/a".into(), text::human_bytes),
        s.mem_fragmentation_ratio.map_or("n/a".into(), |f| format!("{f:.2}")),
        s.maxmemory_policy.as_deref().map_or("n/a".into(), text::escape_str),
    );
    let _ = writeln!(
        out,
        "          clients {} ({} blocked), {} ops/s, hit rate {}, evicted {}, expired {}, keys {}",
        opt(s.connected_clients),
        opt(s.blocked_clients),
        opt(s.ops_per_sec),
        s.hit_rate().map_or("n/a".into(), |h| format!("{:.1}%", h * 100.0)),
        opt(s.evicted_keys),
        opt(s.expired_keys),
        opt(s.db_keys),
    );
    for u in &m.server_unavailable {
        let _ = writeln!(out, "          unavailable: {}", text::escape_str(u));
    }
    if data.layout.is_none() {
        let _ = writeln!(out, "sessions  none counted: waiting for session keys to appear");
        return out;
    }
    let t = m.census.totals();
    let stalled = m.sessions.values().filter(|r| m.is_stalled(r)).count();
    let _ = writeln!(
        out,
        "sessions  {} live, {} orphaned index entries, {} without TTL, {} undecodable, {} oversized, {} stalled (idle > {})",
        text::grouped(t.total),
        text::grouped(t.orphaned),
        text::grouped(t.no_ttl),
        text::grouped(t.undecodable),
        text::grouped(t.oversized),
        text::grouped(stalled as u64),
        text::human_duration(m.settings.stalled_after_s),
    );
    let _ = writeln!(
        out,
        "census    {} entries examined in {:.2} s{}",
        text::grouped(t.examined),
        data.census_duration_ms.unwrap_or(0) as f64 / 1000.0,
        if t.vanished > 0 { format!(" ({} gone while counting)", text::grouped(t.vanished)) } else { String::new() }
    );
    for (title, counts, none) in [("by stage", &t.by_stage, Some(t.no_stage)), ("by substate", &t.by_substate, None)] {
        if counts.is_empty() && none.unwrap_or(0) == 0 {
            continue;
        }
        let _ = writeln!(out, "{title}");
        let labels: Vec<(String, u64)> = counts
            .iter()
            .map(|(k, n)| (text::clip_sized(&text::escape_str(k), TEXT_CELL_CHARS).into_owned(), *n))
            .collect();
        let width = labels.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(6).max(6);
        for (k, n) in &labels {
            let _ = writeln!(out, "  {}  {:>9}", text::pad(k, width), text::grouped(*n));
        }
        if let Some(n) = none.filter(|n| *n > 0) {
            let _ = writeln!(out, "  {}  {:>9}", text::pad("(none)", width), text::grouped(n));
        }
    }
    let _ = writeln!(out, "most recently active ({} of {})", data.items.len(), text::grouped(t.total));
    let rows: Vec<[String; 8]> = data
        .items
        .iter()
        .map(|r| {
            [
                r.id.escaped_short(44),
                text::clip_sized(&present::or_dash(r.stage.as_deref()), TEXT_CELL_CHARS).into_owned(),
                text::clip_sized(&present::or_dash(r.substate.as_deref()), TEXT_CELL_CHARS).into_owned(),
                present::idle_text(m.idle_seconds(r)),
                present::ttl_text(r.ttl, m.now),
                r.history_len.map_or("—".into(), |n| n.to_string()),
                r.memory_bytes.map_or("—".into(), text::human_bytes),
                match (m.is_stalled(r), r.ttl == Ttl::Persistent, &r.decode_error) {
                    (_, _, Some(e)) => format!("unreadable: {}", text::clip(&text::escape_str(e), 100)),
                    (true, _, _) => "stalled".into(),
                    (_, true, _) => "no TTL".into(),
                    _ => String::new(),
                },
            ]
        })
        .collect();
    out.push_str(&table(&["ID", "STAGE", "SUBSTATE", "IDLE", "TTL", "HISTORY", "MEMORY", "NOTE"], &rows));
    out
}

/// The most characters of one value in a text table; longer values are cut with their size.
/// Room for a row's labels, which are already cut with their size at [`LABEL_MAX_CHARS`].
const TEXT_CELL_CHARS: usize = LABEL_MAX_CHARS + 20;

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            l.push(' ');
            if i + 1 == N {
                l.push_str(cell);
            } else {
                l.push_str(&text::pad(cell, *w));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, headers.to_vec());
    for row in rows {
        line(&mut out, row.iter().map(String::as_str).collect());
    }
    out
}

/// Everything about one session.
pub async fn inspect(
    setup: &Setup,
    session: &mut Session,
    id: &SessionId,
) -> Result<(SessionReport, Model), HeadlessError> {
    let layout =
        session.layout.as_ref().ok_or_else(|| HeadlessError::NotDetected(session.note.clone().unwrap_or_default()))?;
    let mut budget = Budget::new(setup.collect.census.budget_per_sec);
    let (keys, score) =
        inspect::find_keys(&mut session.link, layout, id, &mut budget, setup.collect.census.scan_count, None).await?;
    if keys.is_empty() && score.is_none() {
        return Err(HeadlessError::NoSession { id: id.escaped(), layout: session.describe_layout() });
    }
    let now = now_millis();
    let report =
        inspect::inspect(&mut session.link, layout, id, &keys, score, setup.collect.census.max_value_bytes, now)
            .await?;
    let mut model = Model::new(setup.target_info.clone(), setup.model_settings(), now);
    model.apply(Update::Layout(Box::new(crate::domain::LayoutInfo::new(layout, session.note.clone()))));
    model.apply(Update::Inspect(Box::new(report.clone())));
    Ok((report, model))
}

fn content_json(content: &Option<Decodedish>) -> (J, J, J) {
    match content {
        Some(Decodedish::Value { format, value }) => (value.to_json(), json!(format.map(|f| f.name())), J::Null),
        Some(Decodedish::Undecodable { reason, raw, total_len }) => (
            json!({ "raw": text::escape_bytes(raw), "raw_bytes": raw.len(), "total_bytes": total_len }),
            J::Null,
            json!(reason),
        ),
        None => (J::Null, J::Null, J::Null),
    }
}

/// The inspect report as JSON.
pub fn inspect_json(report: &SessionReport, model: &Model, layout: &Layout) -> J {
    let primary = report.keys.iter().find(|k| k.role == "primary");
    let (state, format, decode_error) = content_json(&primary.and_then(|k| k.content.clone()));
    let parts: serde_json::Map<String, J> = report
        .keys
        .iter()
        .filter(|k| k.role != "primary" && k.content.is_some())
        .map(|k| (k.key.escaped(), content_json(&k.content).0))
        .collect();
    json!({
        "id": report.id,
        "layout": { "kind": layout.kind.name(), "prefix": layout.prefix },
        "orphaned": report.is_orphan(),
        "index_score": report.index_score,
        "session": row_json(model, &report.row),
        "keys": report.keys.iter().map(|k| json!({
            "key": k.key,
            "role": k.role,
            "type": k.redis_type,
            "ttl_seconds": ttl_json(k.ttl, report.observed_at),
            "memory_bytes": k.memory_bytes,
            "length": k.length,
            "truncated": k.truncated,
        })).collect::<Vec<_>>(),
        "state": state,
        "payload_format": format,
        "decode_error": decode_error,
        "parts": parts,
        "history_total": report.history_total,
        "history": report.history.iter().map(Value::to_json).collect::<Vec<_>>(),
        "unavailable": report.unavailable,
    })
}

/// The inspect report as text.
pub fn inspect_text(report: &SessionReport, model: &Model) -> String {
    let mut out = String::new();
    let r = &report.row;
    let now = report.observed_at;
    let _ = writeln!(out, "session   {}", report.id);
    if report.is_orphan() {
        let _ = writeln!(out, "          orphaned: the index lists it but its keys are gone");
    }
    let _ = writeln!(
        out,
        "stage     {} / {}    idle {}    ttl {}    history {}    memory {}",
        present::or_dash(r.stage.as_deref()),
        present::or_dash(r.substate.as_deref()),
        present::idle_text(model.idle_seconds(r)),
        present::ttl_text(r.ttl, now),
        r.history_len.map_or("—".into(), |n| n.to_string()),
        r.memory_bytes.map_or("—".into(), text::human_bytes),
    );
    if let Some(last) = r.last_interaction.and_then(rfc3339) {
        let _ = writeln!(out, "last      {last}");
    }
    for u in &report.unavailable {
        let _ = writeln!(out, "          unavailable: {}", text::escape_str(u));
    }
    let _ = writeln!(out, "keys");
    let rows: Vec<[String; 6]> = report
        .keys
        .iter()
        .map(|k| {
            [
                text::escape_str(&k.role),
                k.key.escaped_short(120),
                text::escape_str(&k.redis_type),
                present::ttl_text(k.ttl, now),
                k.length.map_or("—".into(), |n| format!("{n}{}", if k.truncated { " (cut)" } else { "" })),
                k.memory_bytes.map_or("—".into(), text::human_bytes),
            ]
        })
        .collect();
    out.push_str(&table(&["ROLE", "KEY", "TYPE", "TTL", "LENGTH", "MEMORY"], &rows));
    for k in &report.keys {
        let Some(content) = &k.content else { continue };
        let _ = writeln!(out, "{} ({})", text::escape_str(&k.role), k.key.escaped_short(120));
        match content {
            Decodedish::Value { format, value } => {
                if let Some(f) = format {
                    let _ = writeln!(out, "  format: {}", f.name());
                }
                for line in present::outline(value).iter().skip(usize::from(present::skips_root(value))) {
                    let indent = "  ".repeat(line.depth.max(1));
                    match &line.label {
                        Some(label) => {
                            let _ = writeln!(out, "{indent}{label}: {}", line.text);
                        }
                        None => {
                            let _ = writeln!(out, "{indent}{}", line.text);
                        }
                    }
                }
            }
            Decodedish::Undecodable { reason, raw, total_len } => {
                let _ = writeln!(out, "  undecodable: {}", text::escape_str(reason));
                let _ = writeln!(
                    out,
                    "  raw ({} bytes{}): {}",
                    total_len,
                    if (raw.len() as u64) < *total_len { ", cut" } else { "" },
                    text::clip(&text::escape_bytes(raw), 2000)
                );
            }
        }
    }
    if report.history_total > 0 {
        let _ = writeln!(
            out,
            "history ({} entries{}, newest first)",
            report.history_total,
            if (report.history.len() as u64) < report.history_total {
                format!(", first {} shown", report.history.len())
            } else {
                String::new()
            }
        );
        for entry in &report.history {
            let e = Exchange::from_value(entry);
            let _ = writeln!(
                out,
                "  [{}] {}{}",
                e.when.as_deref().unwrap_or("—"),
                e.decision.as_deref().unwrap_or(""),
                e.substate.as_deref().map(|s| format!(" ({s})")).unwrap_or_default()
            );
            if let Some(c) = &e.client {
                let _ = writeln!(out, "      client: {c}");
            }
            if let Some(r) = &e.reply {
                let _ = writeln!(out, "      reply:  {r}");
            }
            for (k, v) in &e.other {
                let _ = writeln!(out, "      {k}: {v}");
            }
        }
    }
    out
}

/// Plans a write, asks `confirm` (for delete), carries it out and reads it back.
pub async fn write(
    setup: &Setup,
    session: &mut Session,
    id: &SessionId,
    kind: WriteKind,
    confirm: impl FnOnce(&WritePlan) -> Result<(), HeadlessError>,
) -> Result<WriteOutcome, HeadlessError> {
    // Refuse before reading anything, so read-only is obviously safe.
    if setup.writer.is_read_only() {
        return Err(HeadlessError::Write(WriteError::ReadOnly));
    }
    let mut budget = Budget::new(setup.collect.census.budget_per_sec);
    let layout = session.layout()?.clone();
    let scan_count = setup.collect.census.scan_count;
    let (keys, score) = inspect::find_keys(&mut session.link, &layout, id, &mut budget, scan_count, None).await?;
    let plan = setup.writer.plan(&layout, id, kind, keys, score).map_err(|e| HeadlessError::from_write(e, session))?;
    if plan.keys.is_empty() && plan.index.is_none() {
        return Err(HeadlessError::Refused(format!(
            "nothing to {} for session '{}': it has no keys of its own{}",
            kind.verb(),
            id,
            if plan.untouched.is_empty() { "" } else { " (locks and counters are left to expire)" }
        )));
    }
    confirm(&plan)?;
    setup.writer.execute(&mut session.link, &plan).await.map_err(|e| HeadlessError::from_write(e, session))
}

/// The plan as lines for a confirmation prompt.
pub fn plan_text(plan: &WritePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} session '{}':", plan.kind.verb(), plan.id);
    for k in &plan.keys {
        let _ = writeln!(out, "  {}  ({})", k.key, text::escape_str(&k.role));
    }
    if let Some(index) = &plan.index {
        let _ = writeln!(out, "  index entry '{}' in {}", plan.id, text::escape_str(index));
    }
    for k in &plan.untouched {
        let _ = writeln!(out, "  left alone: {}  ({})", k.key, text::escape_str(&k.role));
    }
    out
}

/// The write's result as lines.
pub fn outcome_text(outcome: &WriteOutcome) -> String {
    let mut out = outcome.summary();
    out.push('\n');
    for (key, state) in &outcome.keys {
        let _ = writeln!(out, "  {key}  {state}");
    }
    out
}
