//! The sessions table. A row that looks wrong carries a symbol as well as a colour: `✗` did not
//! decode, `↻` stuck, `⚠` stalled, `∞` a key without TTL, `!` another finding (see the alerts).

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget};

use crate::dashboard::app::{SortColumn, TableState, TableView};
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::{FindingKind, SessionRow, Ttl};
use crate::engine::model::Model;
use crate::engine::present;
use crate::util::text;

pub struct SessionsTable<'a> {
    pub model: &'a Model,
    pub table: &'a TableState,
    /// The rows as the table engine last sent them (or as frozen).
    pub view: &'a TableView,
    pub theme: &'a Theme,
    pub focused: bool,
}

/// What is wrong with a row, most serious first, as a symbol and a role.
pub fn row_mark(model: &Model, row: &SessionRow) -> Option<(&'static str, Role)> {
    let has = |kind: FindingKind| row.findings.iter().any(|f| f.kind == kind);
    if row.decode_error.is_some() {
        Some(("✗", Role::Crit))
    } else if has(FindingKind::Stuck) {
        Some(("↻", Role::Warn))
    } else if model.is_stalled(row) {
        Some(("⚠", Role::Warn))
    } else if row.ttl == Ttl::Persistent || has(FindingKind::NoTtl) {
        Some(("∞", Role::Warn))
    } else if row.findings.iter().any(|f| f.kind != FindingKind::RateLimited) {
        Some(("!", Role::Warn))
    } else {
        None
    }
}

impl SessionsTable<'_> {
    /// The title: how many rows of how many, the sort, the filter, and what is not shown.
    fn title(&self) -> Line<'static> {
        let (m, t, state, view) = (self.model, self.theme, self.table, self.view);
        let arrow = if state.reverse { "▼" } else { "▲" };
        let column = state.sort_column();
        let mut title = vec![
            Span::styled(" sessions ", t.style(Role::Title)),
            Span::styled(
                format!("{} of {} ", text::grouped(view.len as u64), text::grouped(view.stored as u64)),
                t.style(Role::Muted),
            ),
            Span::styled(format!("· sort {} {arrow} ", column.title()), t.style(Role::Muted)),
        ];
        if view.unlisted > 0 {
            // Past --max-rows the table keeps the most recently active; the census counts all.
            let all = m.census.totals().total.max(view.stored as u64);
            title.push(Span::styled(
                format!("· {} of {} shown (--max-rows) ", text::grouped(view.stored as u64), text::grouped(all)),
                t.style(Role::Warn),
            ));
        }
        if !state.filter.is_empty() || state.editing_filter {
            title.push(Span::styled(format!("· filter '{}' ", text::escape_str(&state.filter)), t.style(Role::Accent)));
        }
        if m.is_stale() {
            title.push(Span::styled("· stale ", t.style(Role::Warn)));
        }
        Line::from(title)
    }

    /// The rows on screen, with the header, in columns cut to fit `inner`.
    fn table(&self, inner: Rect) -> Table<'static> {
        let (m, t, state, view) = (self.model, self.theme, self.table, self.view);
        let column = state.sort_column();
        let arrow = if state.reverse { "▼" } else { "▲" };
        let header_cell = |c: SortColumn| {
            let label = if c == column { format!("{}{arrow}", c.title()) } else { c.title().to_string() };
            let style =
                if c == column { t.style(Role::Accent).add_modifier(Modifier::BOLD) } else { t.style(Role::Muted) };
            Cell::from(Span::styled(label, style))
        };
        let header = Row::new(vec![
            Cell::from(""),
            header_cell(SortColumn::Id),
            header_cell(SortColumn::Stage),
            header_cell(SortColumn::Substate),
            header_cell(SortColumn::Idle),
            header_cell(SortColumn::Ttl),
            header_cell(SortColumn::History),
            header_cell(SortColumn::Memory),
        ]);
        let widths = [
            Constraint::Length(1),
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(4),
            Constraint::Length(9),
        ];
        // The columns' widths, to cut long text with an ellipsis rather than mid-word.
        let columns: Vec<usize> =
            Layout::horizontal(widths).spacing(1).split(inner).iter().map(|r| usize::from(r.width)).collect();
        let cut = |i: usize, s: String| text::clip(&s, columns.get(i).copied().unwrap_or(usize::MAX));
        let rows_shown = usize::from(inner.height.saturating_sub(1));
        let selected = state.selected.as_ref();
        let first = state.offset.saturating_sub(view.window_start);
        let rows: Vec<Row> = view
            .window
            .iter()
            .skip(first)
            .take(if state.offset >= view.window_start { rows_shown } else { 0 })
            .map(|row| {
                let mark = row_mark(m, row);
                let base = match mark {
                    Some((_, role)) => t.style(role),
                    None => t.style(Role::Text),
                };
                let style = if Some(&row.id) == selected { t.style(Role::Selection) } else { base };
                let right = |s: String| Cell::from(Line::from(s).alignment(Alignment::Right));
                Row::new(vec![
                    Cell::from(mark.map_or(" ", |(symbol, _)| symbol)),
                    Cell::from(cut(1, row.id.escaped_short(120))),
                    Cell::from(cut(2, present::or_dash(row.stage.as_deref()))),
                    Cell::from(cut(3, present::or_dash(row.substate.as_deref()))),
                    right(present::idle_text(m.idle_seconds(row))),
                    right(present::ttl_text(row.ttl, m.now)),
                    right(row.history_len.map_or("—".into(), |n| n.to_string())),
                    right(row.memory_bytes.map_or("—".into(), text::human_bytes)),
                ])
                .style(style)
            })
            .collect();
        Table::new(rows, widths).header(header).column_spacing(1)
    }
}

impl Widget for SessionsTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t, state, view) = (self.model, self.theme, self.table, self.view);
        let border = if self.focused { t.style(Role::Accent) } else { t.style(Role::Border) };
        let block = Block::default().borders(Borders::ALL).border_style(border).title(self.title());
        let inner = block.inner(area);
        block.render(area, buf);
        if view.len == 0 {
            let message = if m.layout.is_none() {
                m.layout_note.clone().unwrap_or_else(|| "waiting for the session layout…".into())
            } else if !state.filter.is_empty() {
                format!("no session matches '{}'", state.filter)
            } else if m.census.complete.is_none() {
                "counting sessions…".into()
            } else {
                "no sessions".into()
            };
            Paragraph::new(Span::styled(text::escape_str(&message), t.style(Role::Muted)))
                .alignment(Alignment::Center)
                .render(Rect { y: inner.y + inner.height / 2, height: 1.min(inner.height), ..inner }, buf);
            return;
        }
        self.table(inner).render(inner, buf);
    }
}
