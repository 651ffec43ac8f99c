//! Plain-text output for a terminal: the snapshot, the inspect report, a write's plan and its
//! outcome. Everything from Redis is escaped and cut with its size.

use std::fmt::Write as _;

use crate::collect::read::LABEL_MAX_CHARS;
use crate::collect::write::WriteOutcome;
use crate::engine::domain::{Decodedish, SessionReport, Ttl};
use crate::engine::model::Model;
use crate::engine::msg::WritePlan;
use crate::engine::present::{self, Exchange};
use crate::headless::SnapshotData;
use crate::util::text;

/// The snapshot as text for a terminal.
pub fn snapshot(data: &SnapshotData) -> String {
    let m = &data.model;
    let mut out = String::new();
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
    server_lines(&mut out, m);
    if data.layout.is_none() {
        let _ = writeln!(out, "sessions  none counted: waiting for session keys to appear");
        return out;
    }
    let Some(stalled) = data.stalled else {
        let _ = writeln!(out, "sessions  not counted (--no-census): the first page only");
        out.push_str(&items_table(data));
        return out;
    };
    census_lines(&mut out, data, stalled);
    if !m.findings.is_empty() {
        let _ = writeln!(out, "findings");
        for f in &m.findings {
            let _ = writeln!(out, "  {}", finding_line(f));
        }
    }
    let _ = writeln!(out, "most recently active ({} of {})", data.items.len(), text::grouped(m.census.totals().total));
    out.push_str(&items_table(data));
    out
}

/// The server's figures, and those that could not be read.
fn server_lines(out: &mut String, m: &crate::engine::model::Model) {
    let s = m.server.clone().unwrap_or_default();
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".to_string(), text::grouped);
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
}

/// What the census counted: the totals, by stage and substate, the markers, the lifetime.
fn census_lines(out: &mut String, data: &SnapshotData, stalled: u64) {
    let m = &data.model;
    let t = m.census.totals();
    let _ = writeln!(
        out,
        "sessions  {} live, {} orphaned index entries, {} without TTL, {} undecodable, {} oversized, {} stalled (idle > {})",
        text::grouped(t.total),
        text::grouped(t.orphaned),
        text::grouped(t.no_ttl),
        text::grouped(t.undecodable),
        text::grouped(t.oversized),
        text::grouped(stalled),
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
    if !t.by_marker.is_empty() {
        let marks: Vec<String> =
            t.by_marker.iter().map(|(k, n)| format!("{} {}", text::escape_str(k), text::grouped(*n))).collect();
        let _ = writeln!(out, "markers   {}", marks.join(", "));
    }
    if let Some((lifetime, source)) = m.lifetime().filter(|_| m.settings.idle == crate::engine::layout::IdleSource::Ttl)
    {
        let _ = writeln!(out, "lifetime  {} ({})", text::human_duration(lifetime), source.describe());
    }
}

/// The sessions listed, as a table.
fn items_table(data: &SnapshotData) -> String {
    let m = &data.model;
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
    table(&["ID", "STAGE", "SUBSTATE", "IDLE", "TTL", "HISTORY", "MEMORY", "NOTE"], &rows)
}

/// The most characters of one value in a text table; longer values are cut with their size.
/// Room for a row's labels, which are already cut with their size at [`LABEL_MAX_CHARS`].
const TEXT_CELL_CHARS: usize = LABEL_MAX_CHARS + 20;

/// Left-aligned columns separated by two spaces.
fn table<R: AsRef<[String]>>(headers: &[&str], rows: &[R]) -> String {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            l.push(' ');
            if i + 1 == n {
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
        line(&mut out, row.as_ref().iter().map(String::as_str).collect());
    }
    out
}

/// The inspect report as text.
pub fn inspect(report: &SessionReport, model: &Model) -> String {
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
    if let Some(last) = r.last_interaction.and_then(super::json::rfc3339) {
        let _ = writeln!(out, "last      {last}");
    }
    for u in &report.unavailable {
        let _ = writeln!(out, "          unavailable: {}", text::escape_str(u));
    }
    let _ = writeln!(out, "keys");
    let on_nodes = report.keys.iter().any(|k| k.node.is_some());
    let rows: Vec<Vec<String>> = report
        .keys
        .iter()
        .map(|k| {
            let mut row = vec![
                text::escape_str(&k.role),
                k.key.escaped_short(120),
                text::escape_str(&k.redis_type),
                present::ttl_text(k.ttl, now),
                k.length.map_or("—".into(), |n| format!("{n}{}", if k.truncated { " (cut)" } else { "" })),
                k.memory_bytes.map_or("—".into(), text::human_bytes),
            ];
            if on_nodes {
                row.push(
                    k.node.as_ref().map_or("—".into(), |(a, slot)| format!("{} (slot {slot})", text::escape_str(a))),
                );
            }
            row
        })
        .collect();
    let mut titles = vec!["ROLE", "KEY", "TYPE", "TTL", "LENGTH", "MEMORY"];
    if on_nodes {
        titles.push("NODE");
    }
    out.push_str(&table(&titles, &rows));
    for k in &report.keys {
        if let Some(content) = &k.content {
            let _ = writeln!(out, "{} ({})", text::escape_str(&k.role), k.key.escaped_short(120));
            content_lines(&mut out, content);
        }
    }
    history_lines(&mut out, report);
    out
}

/// A key's contents: decoded, as an outline; or why not, with the raw bytes escaped.
fn content_lines(out: &mut String, content: &Decodedish) {
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

/// The history, newest first: each exchange with its decision and substate.
fn history_lines(out: &mut String, report: &SessionReport) {
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
}

/// The plan as lines for a confirmation prompt.
pub fn plan(plan: &WritePlan) -> String {
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
    if let Some(warning) = plan.span.warning() {
        let _ = writeln!(out, "  {warning}");
    }
    out
}

/// The write's result as lines.
pub fn outcome(outcome: &WriteOutcome) -> String {
    let mut out = outcome.summary();
    out.push('\n');
    for (key, state) in &outcome.keys {
        let _ = writeln!(out, "  {key}  {state}");
    }
    out
}

/// A finding as one line: `warning  no_ttl (3): 3 keys of sessions never expire (TTL -1)`.
pub fn finding_line(f: &crate::engine::domain::Finding) -> String {
    let mut line = format!("{:<8} {} ({}): {}", f.severity.word(), f.kind.name(), text::grouped(f.count), f.summary);
    if !f.by_stage.is_empty() {
        let stages: Vec<String> =
            f.by_stage.iter().map(|(s, n)| format!("{} {}", text::escape_str(s), text::grouped(*n))).collect();
        let _ = write!(line, " [{}]", stages.join(", "));
    }
    line
}

/// `check`: the verdict on the first line (Nagios style), then a line per finding with the
/// first few sessions or keys it is about.
pub fn check(verdict: &crate::headless::Verdict, data: &SnapshotData) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", verdict.summary(data));
    for f in &data.model.findings {
        let _ = writeln!(out, "{}", finding_line(f));
        for s in f.sample.iter().take(5) {
            let what = match (&s.id, &s.key) {
                (Some(id), Some(key)) => format!("session {id} (key {key})"),
                (Some(id), None) => format!("session {id}"),
                (None, Some(key)) => format!("key {key}"),
                (None, None) => continue,
            };
            let detail = s.detail.as_deref().map(|d| format!(": {}", text::escape_str(d))).unwrap_or_default();
            let _ = writeln!(out, "         {what}{detail}");
        }
        if f.sample.len() > 5 || f.count > f.sample.len() as u64 && !f.sample.is_empty() {
            let _ = writeln!(out, "         … {} in all", text::grouped(f.count));
        }
    }
    out
}

/// A fix's plans as lines: each session's exact changes, then what was left out.
pub fn fix_plans(fix: &crate::headless::FixPlans) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} found, {} to change{}",
        fix.kind.name(),
        text::grouped(fix.found),
        text::grouped(fix.plans.len() as u64),
        if fix.found > (fix.plans.len() + fix.skipped.len()) as u64 { " (the rest next run: --limit)" } else { "" }
    );
    for p in &fix.plans {
        out.push_str(&plan(p));
    }
    for (id, why) in &fix.skipped {
        let _ = writeln!(out, "skipped '{id}': {}", text::escape_str(why));
    }
    out
}
