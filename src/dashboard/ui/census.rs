//! The census panel: how many sessions there are and where in the workflow they are, with a bar
//! per stage (or substate) so the shape of the workflow shows at a glance.

use std::collections::BTreeMap;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{bar, fit, spark};
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::CensusTally;
use crate::engine::model::Model;
use crate::util::text;

pub struct CensusPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    /// Stalled sessions in all and by stage, as the app counted them.
    pub stalled: usize,
    pub stalled_by: &'a BTreeMap<String, usize>,
    /// Room for one bar per stage.
    pub tall: bool,
}

/// Counts in workflow order: the layout's own order first, then any other values, then the
/// sessions without one.
pub fn ordered_counts(model: &Model) -> (&'static str, Vec<(String, u64)>) {
    let totals = model.census.totals();
    let (title, counts, order, none) = if totals.by_substate.is_empty() {
        ("by stage", &totals.by_stage, &model.settings.stages, totals.no_stage)
    } else {
        ("by substate", &totals.by_substate, &model.settings.substates, 0)
    };
    let mut out: Vec<(String, u64)> = order.iter().filter_map(|k| counts.get(k).map(|n| (k.clone(), *n))).collect();
    out.extend(counts.iter().filter(|(k, _)| !order.contains(k)).map(|(k, n)| (k.clone(), *n)));
    if none > 0 {
        out.push(("(none)".into(), none));
    }
    (title, out)
}

impl CensusPanel<'_> {
    /// The head line's pieces, by priority: the totals, why the census is blocked, its progress.
    fn head(&self) -> Vec<(u8, Vec<Span<'static>>)> {
        let (m, t) = (self.model, self.theme);
        let totals = m.census.totals();
        let mut head: Vec<(u8, Vec<Span<'static>>)> = Vec::new();
        if m.layout.is_some() {
            let count = |n: u64, what: &str, role: Role, priority: u8| {
                let role = if n > 0 { role } else { Role::Muted };
                let priority = if n > 0 { priority } else { 2 };
                (priority, vec![Span::styled(format!("{} {what}", text::grouped(n)), t.style(role)), Span::raw("  ")])
            };
            head.push((
                10,
                vec![Span::styled(format!("{} live  ", text::grouped(totals.total)), t.style(Role::Title))],
            ));
            // Session events keep the count current between passes.
            if m.since_pass != (0, 0)
                && let Some(now) = m.live_now()
            {
                let (created, ended) = m.since_pass;
                let said = format!("{} now (+{created} −{ended} by events)  ", text::grouped(now));
                head.push((9, vec![Span::styled(said, t.style(Role::Accent))]));
            }
            if let Some(d) = m.since_baseline(crate::engine::history::SESSIONS) {
                let change = format!("{} since baseline  ", super::signed(crate::engine::history::Unit::Count, d));
                head.push((9, vec![Span::styled(change, t.style(Role::Accent))]));
            }
            head.push(count(self.stalled as u64, "stalled", Role::Warn, 9));
            head.push(count(totals.no_ttl, "no TTL", Role::Warn, 8));
            head.push(count(totals.orphaned, "orphaned", Role::Warn, 7));
            head.push(count(totals.undecodable, "undecodable", Role::Crit, 8));
            if totals.oversized > 0 {
                head.push(count(totals.oversized, "oversized", Role::Warn, 6));
            }
            // The layout's markers (ChatMRPT's TPR), counted like stages.
            for (name, n) in &totals.by_marker {
                head.push(count(*n, &format!("in {}", text::escape_str(name)), Role::Accent, 7));
            }
        }
        if let Some(blocked) = &m.census.blocked {
            // Why the counts are not moving comes first: a stall must never look like progress.
            let why = format!("✗ census: {}  ", text::clip(&text::escape_str(blocked), 100));
            head.insert(0, (11, vec![Span::styled(why, t.style(Role::Crit))]));
        }
        match (&m.census.complete, m.census.progress) {
            (Some(_), _) => {
                let ago = m
                    .census
                    .completed_at
                    .map(|at| text::human_duration(m.now.saturating_sub(at) / 1000))
                    .unwrap_or_default();
                let took =
                    m.census.last_duration_ms.map(|ms| format!("{:.1}s", ms as f64 / 1000.0)).unwrap_or_default();
                let how = m.census.complete.as_ref().map(read_how).unwrap_or_default();
                // Before the counts that are zero: how fresh the counts are, and what the pass cost.
                head.push((3, vec![Span::styled(format!("· pass {took}{how}, {ago} ago"), t.style(Role::Muted))]));
            }
            (None, Some(p)) => {
                head.insert(
                    0,
                    (10, vec![Span::styled(format!("{:>3.0}% ▕{}▏ ", p * 100.0, bar(p, 8)), t.style(Role::Accent))]),
                );
            }
            (None, None) if m.layout.is_some() => head.push((1, vec![Span::styled("starting…", t.style(Role::Muted))])),
            (None, None) => {
                let note = m.layout_note.as_deref().unwrap_or("detecting the session layout…");
                head.push((10, vec![Span::styled(text::escape_str(note), t.style(Role::Muted))]));
            }
        }
        head
    }

    /// A tall panel: a bar for each stage, with its change since the baseline, the sessions
    /// that entered and left it within the flow window (the stage a flow stopped at in the
    /// warning colour) and its stalled.
    fn stage_bars(&self, counts: &[(String, u64)], inner: Rect, lines: &mut Vec<Line<'static>>) {
        let (m, t) = (self.model, self.theme);
        let flow = m.census.totals().flow.as_ref();
        let stopped: Vec<&str> = m
            .findings
            .iter()
            .filter(|f| f.kind == crate::engine::domain::FindingKind::FlowStopped)
            .flat_map(|f| f.by_stage.iter().map(|(s, _)| s.as_str()))
            .collect();
        let counts = &with_flow(m, counts.to_vec());
        let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        let label_width =
            counts.iter().map(|(k, _)| text::escape_str(k).chars().count()).max().unwrap_or(0).clamp(6, 28);
        let flow_width = if flow.is_some() { FLOW_WIDTH } else { 0 };
        let bar_width = usize::from(inner.width).saturating_sub(label_width + 22 + flow_width).max(4);
        let rows = usize::from(inner.height.saturating_sub(1));
        if let Some(f) = flow {
            let head = format!(
                "{:>w$}",
                format!("in/out {}", text::window(f.stages_window_ms / 1000)),
                w = label_width + bar_width + 9 + FLOW_WIDTH
            );
            lines.push(Line::from(Span::styled(head, t.style(Role::Muted))));
        }
        for (k, n) in counts.iter().take(rows.saturating_sub(usize::from(flow.is_some()))) {
            let stalled = self.stalled_by.get(k).copied().unwrap_or(0);
            let mut spans = vec![
                Span::styled(
                    format!("{:<label_width$} ", text::clip(&text::escape_str(k), label_width)),
                    t.style(Role::Text),
                ),
                Span::styled(bar(*n as f64 / max as f64, bar_width), t.style(Role::Bar)),
                Span::styled(format!(" {:>7}", text::grouped(*n)), t.style(Role::Text)),
            ];
            if let Some(f) = flow {
                let (entered, left) = f.stages.iter().find(|s| s.stage == *k).map_or((0, 0), |s| (s.entered, s.left));
                let role = if stopped.contains(&k.as_str()) { Role::Warn } else { Role::Muted };
                spans.push(Span::styled(
                    format!(" {:>6}/{:<6}", text::grouped(entered), text::grouped(left)),
                    t.style(role),
                ));
            }
            if let Some(d) = m.since_baseline(&crate::engine::history::stage_series(k)) {
                let change = format!(" {:>6}", super::signed(crate::engine::history::Unit::Count, d));
                spans.push(Span::styled(change, t.style(Role::Accent)));
            }
            if stalled > 0 {
                spans.push(Span::styled(format!("  ⚠ {stalled}"), t.style(Role::Warn)));
            }
            lines.push(Line::from(spans));
        }
        if counts.len() > rows {
            lines.push(Line::from(Span::styled(format!("… {} more", counts.len() - rows), t.style(Role::Muted))));
        }
    }
}

impl Widget for CensusPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t) = (self.model, self.theme);
        let inner = super::panel(t, "census", area, buf);
        let mut lines = vec![Line::from(fit(self.head(), usize::from(inner.width)))];
        let (title, counts) = ordered_counts(m);
        if self.tall {
            self.stage_bars(&counts, inner, &mut lines);
        } else if !counts.is_empty() {
            // One line: the workflow's shape as a bar per stage, then the first and last.
            let heights: Vec<f64> = counts.iter().map(|(_, n)| *n as f64).collect();
            let first =
                counts.first().map(|(k, n)| format!("{} {}", text::clip(&text::escape_str(k), 18), text::grouped(*n)));
            let last =
                counts.last().map(|(k, n)| format!("{} {}", text::clip(&text::escape_str(k), 18), text::grouped(*n)));
            let mut line = vec![
                Span::styled(format!("{title} "), t.style(Role::Muted)),
                Span::styled(spark_from_zero(&heights), t.style(Role::Bar)),
            ];
            line.push(Span::styled(
                format!("  {} → {}", first.unwrap_or_default(), last.unwrap_or_default()),
                t.style(Role::Muted),
            ));
            lines.push(Line::from(line));
        }
        Paragraph::new(lines).render(inner, buf);
    }
}

/// How a pass read its sessions, where events let it read some of them settled or light:
/// ` (97% settled)`, ` (70% settled, 27% light)`; nothing where it read all whole.
fn read_how(t: &CensusTally) -> String {
    let share = |n: u64| match (n as f64 * 100.0 / t.examined.max(1) as f64).floor() {
        0.0 => "<1%".to_string(),
        p => format!("{p:.0}%"),
    };
    let mut parts = Vec::new();
    for (n, how) in [(t.read_settled, "settled"), (t.read_light, "light")] {
        if n > 0 {
            parts.push(format!("{} {how}", share(n)));
        }
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

/// `counts` with the stages that sessions entered within the flow window but none is in now
/// (a step everyone passes through), each at its place in the workflow.
fn with_flow(m: &Model, mut counts: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let Some(flow) = &m.census.totals().flow else { return counts };
    let passed = flow.stages.iter().filter(|s| s.entered > 0 && !counts.iter().any(|(k, _)| *k == s.stage));
    counts.extend(passed.map(|s| (s.stage.clone(), 0)).collect::<Vec<_>>());
    let order = if m.census.totals().by_substate.is_empty() { &m.settings.stages } else { &m.settings.substates };
    // Stable: the values the layout does not name, and the sessions without one, keep their place after.
    counts.sort_by_key(|(k, _)| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
    counts
}

/// The width of a stage's entries and exits in the flow window (` 14/0     `).
const FLOW_WIDTH: usize = 14;

/// Like [`spark`], but scaled from zero, so a small stage looks small.
fn spark_from_zero(values: &[f64]) -> String {
    let mut with_zero = vec![0.0];
    with_zero.extend_from_slice(values);
    spark(&with_zero, with_zero.len()).chars().skip(1).collect()
}
