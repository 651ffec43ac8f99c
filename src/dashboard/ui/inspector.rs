//! The inspector: one session's keys, its decoded contents as a folding tree (or raw), and its
//! history as a transcript, newest first. It refreshes while open.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use crate::dashboard::app::{InspectorState, Pane};
use crate::dashboard::geometry::InspectorAreas;
use crate::dashboard::theme::{Role, Theme};
use crate::dashboard::tree::{TreeLine, raw_text};
use crate::engine::domain::SessionReport;
use crate::engine::model::Model;
use crate::engine::present::{self, Exchange};
use crate::util::text;

/// Draws the inspector into its areas.
pub fn render(
    frame: &mut Frame<'_>,
    areas: &InspectorAreas,
    model: &Model,
    state: &InspectorState,
    lines: &[TreeLine],
    t: &Theme,
) {
    let report = model.inspect.as_ref().filter(|r| r.id == state.id);
    let title = Line::from(vec![
        Span::styled(" session ", t.style(Role::Title)),
        Span::styled(format!("{} ", state.id.escaped_short(100)), t.style(Role::Accent)),
    ]);
    let summary_block = Block::default().borders(Borders::TOP).border_style(t.style(Role::Border)).title(title);
    let Some(report) = report else {
        let message = if model.is_stale() { "not connected: waiting for Redis…" } else { "loading…" };
        frame.render_widget(
            Paragraph::new(Span::styled(message, t.style(Role::Muted))).block(summary_block),
            areas.summary,
        );
        return;
    };
    frame.render_widget(Paragraph::new(summary(report, model, t)).block(summary_block), areas.summary);
    frame.render_widget(keys_table(report, state, t), areas.keys);

    let focus = |pane: Pane| if state.pane == pane { t.style(Role::Accent) } else { t.style(Role::Border) };
    let tree_title = if state.raw { " raw " } else { " contents " };
    let tree_block = Block::default()
        .borders(Borders::ALL)
        .border_style(focus(Pane::Tree))
        .title(Span::styled(tree_title, t.style(Role::Title)));
    let rows = usize::from(areas.tree.height.saturating_sub(2));
    let tree: Vec<Line> = lines
        .iter()
        .enumerate()
        .skip(state.tree_offset)
        .take(rows)
        .map(|(i, l)| {
            let marker = match (l.foldable, l.folded) {
                (true, true) => "▸ ",
                (true, false) => "▾ ",
                _ => "  ",
            };
            let mut spans = vec![Span::raw("  ".repeat(l.depth)), Span::styled(marker, t.style(Role::Muted))];
            if let Some(label) = &l.label {
                spans.push(Span::styled(
                    format!("{label}: "),
                    t.style(if l.depth == 0 { Role::Accent } else { Role::Muted }),
                ));
            }
            spans.push(Span::styled(l.text.clone(), t.style(l.role)));
            let line = Line::from(spans);
            if state.pane == Pane::Tree && i == state.tree_cursor { line.style(t.style(Role::Selection)) } else { line }
        })
        .collect();
    let tree = if tree.is_empty() { vec![Line::from(Span::styled("no contents", t.style(Role::Muted)))] } else { tree };
    frame.render_widget(Paragraph::new(tree).block(tree_block), areas.tree);

    let history_title = Line::from(vec![
        Span::styled(" history ", t.style(Role::Title)),
        Span::styled(
            format!(
                "{}{} newest first ",
                report.history_total,
                if (report.history.len() as u64) < report.history_total {
                    format!(" (first {} read)", report.history.len())
                } else {
                    String::new()
                }
            ),
            t.style(Role::Muted),
        ),
    ]);
    let history_block = Block::default().borders(Borders::ALL).border_style(focus(Pane::History)).title(history_title);
    frame.render_widget(
        Paragraph::new(transcript(report, state, t)).block(history_block).wrap(Wrap { trim: false }),
        areas.history,
    );
}

fn summary<'a>(report: &SessionReport, model: &Model, t: &Theme) -> Vec<Line<'a>> {
    let r = &report.row;
    let muted = |s: &str| Span::styled(s.to_string(), t.style(Role::Muted));
    let value = |s: String| Span::styled(s, t.style(Role::Text));
    let mut first = vec![
        muted("stage "),
        value(format!("{} / {}", present::or_dash(r.stage.as_deref()), present::or_dash(r.substate.as_deref()))),
        muted("   idle "),
        value(present::idle_text(model.idle_seconds(r))),
        muted("   ttl "),
        value(present::ttl_text(r.ttl, model.now)),
        muted("   history "),
        value(r.history_len.map_or("—".into(), |n| n.to_string())),
        muted("   memory "),
        value(r.memory_bytes.map_or("—".into(), text::human_bytes)),
    ];
    if let Some(status) = &r.status {
        first.extend([muted("   status "), value(text::escape_str(status))]);
    }
    let mut second = Vec::new();
    if !report.exists() {
        second.push(Span::styled("✗ gone: no keys and no index entry (expired or deleted)", t.style(Role::Crit)));
    } else if report.is_orphan() {
        second.push(Span::styled("⚠ orphaned: the index lists it but its keys are gone", t.style(Role::Warn)));
    } else if model.is_stalled(r) {
        second.push(Span::styled(
            format!(
                "⚠ stalled: idle longer than {} mid-workflow",
                text::human_duration(model.settings.stalled_after(r))
            ),
            t.style(Role::Warn),
        ));
    }
    if let Some(e) = &r.decode_error {
        second.push(Span::styled(format!("✗ {}", text::clip(&text::escape_str(e), 120)), t.style(Role::Crit)));
    }
    for u in &report.unavailable {
        second.push(Span::styled(format!("  {}", text::escape_str(u)), t.style(Role::Warn)));
    }
    // What the session's events said lately (when the server sends them), newest first.
    let events: Vec<String> = model
        .events
        .iter()
        .rev()
        .filter(|e| e.id == r.id)
        .take(4)
        .map(|e| format!("{} {}", e.kind.word(), text::clock(e.at, model.utc_offset_s)))
        .collect();
    if !events.is_empty() {
        second.push(Span::styled(format!("  events: {}", events.join(", ")), t.style(Role::Muted)));
    }
    if let Some(p) = report.related_search {
        second.push(Span::styled(
            format!("  searching the keyspace for its related keys… {:.0}%", p * 100.0),
            t.style(Role::Muted),
        ));
    }
    vec![Line::from(first), Line::from(second)]
}

fn keys_table<'a>(report: &'a SessionReport, state: &InspectorState, t: &Theme) -> Table<'a> {
    let border = if state.pane == Pane::Keys { t.style(Role::Accent) } else { t.style(Role::Border) };
    // On a cluster, which primary holds each key (a session's keys are on several).
    let on_nodes = report.keys.iter().any(|k| k.node.is_some());
    let mut titles = vec!["ROLE", "KEY", "TYPE", "TTL", "LENGTH", "MEMORY"];
    if on_nodes {
        titles.push("NODE");
    }
    let header = Row::new(titles.into_iter().map(|h| Cell::from(Span::styled(h, t.style(Role::Muted)))));
    let rows: Vec<Row> = report
        .keys
        .iter()
        .skip(state.keys_offset.min(report.keys.len().saturating_sub(1)))
        .map(|k| {
            let right = |s: String| Cell::from(Line::from(s).alignment(Alignment::Right));
            let mut cells = vec![
                Cell::from(text::escape_str(&k.role)),
                Cell::from(k.key.escaped_short(200)),
                Cell::from(k.redis_type.clone()),
                right(present::ttl_text(k.ttl, report.observed_at)),
                right(k.length.map_or("—".into(), |n| format!("{n}{}", if k.truncated { "+" } else { "" }))),
                right(k.memory_bytes.map_or("—".into(), text::human_bytes)),
            ];
            if on_nodes {
                cells.push(Cell::from(k.node.as_ref().map_or("—".into(), |(a, _)| text::escape_str(a))));
            }
            Row::new(cells).style(t.style(Role::Text))
        })
        .collect();
    let title = Span::styled(format!(" keys {} ", report.keys.len()), t.style(Role::Title));
    let mut widths = vec![
        Constraint::Length(14),
        Constraint::Fill(1),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
    ];
    if on_nodes {
        widths.push(Constraint::Length(21));
    }
    Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).border_style(border).title(title))
}

fn transcript<'a>(report: &SessionReport, state: &InspectorState, t: &Theme) -> Vec<Line<'a>> {
    if report.history.is_empty() {
        return vec![Line::from(Span::styled("no history", t.style(Role::Muted)))];
    }
    let mut lines = Vec::new();
    if state.raw {
        for (i, raw) in report.history_raw.iter().enumerate().skip(state.history_offset) {
            lines.push(Line::from(vec![
                Span::styled(format!("{i:>3} "), t.style(Role::Muted)),
                Span::raw(raw_text(raw)),
            ]));
        }
        return lines;
    }
    for (i, entry) in report.history.iter().enumerate().skip(state.history_offset) {
        let e = Exchange::from_value(entry);
        let mut head = vec![
            Span::styled(format!("{:>3} ", i), t.style(Role::Muted)),
            Span::styled(format!("[{}]", e.when.as_deref().unwrap_or("—")), t.style(Role::Muted)),
        ];
        if let Some(d) = &e.decision {
            head.push(Span::styled(format!(" {d}"), t.style(Role::Accent).add_modifier(Modifier::BOLD)));
        }
        if let Some(s) = &e.substate {
            head.push(Span::styled(format!(" ({s})"), t.style(Role::Muted)));
        }
        lines.push(Line::from(head));
        if let Some(c) = &e.client {
            lines.push(Line::from(vec![
                Span::styled("    client ", t.style(Role::Muted)),
                Span::styled(c.clone(), t.style(Role::Text)),
            ]));
        }
        if let Some(r) = &e.reply {
            lines.push(Line::from(vec![
                Span::styled("    reply  ", t.style(Role::Muted)),
                Span::styled(r.clone(), t.style(Role::Ok)),
            ]));
        }
        for (k, v) in &e.other {
            lines.push(Line::from(vec![
                Span::styled(format!("    {k}: "), t.style(Role::Muted)),
                Span::styled(v.clone(), t.style(Role::Text)),
            ]));
        }
    }
    lines
}
