//! The line above the screen when several targets are watched: each target's number, name,
//! connection, live sessions and worst finding, the one shown highlighted, and `SAME SERVER`
//! where two targets are one store.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::dashboard::tabs::TabSummary;
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::Severity;
use crate::util::text;

pub struct TabLine<'a> {
    pub tabs: &'a [TabSummary],
    pub active: usize,
    pub theme: &'a Theme,
    /// The keys that switch targets, as the keymap shows them (`1-9/t`).
    pub keys: &'a str,
}

/// The longest a target's name is shown, and the shortest it is cut to before the hint goes.
const NAME_MAX: usize = 24;
const NAME_MIN: usize = 3;

impl TabLine<'_> {
    /// Each target's spans, its name cut to `name_width`.
    fn tab(&self, i: usize, tab: &TabSummary, name_width: usize) -> Vec<Span<'static>> {
        let t = self.theme;
        let dot = if tab.stale { "◌" } else { "●" };
        let sessions = tab.sessions.map_or("…".to_string(), text::grouped);
        let (worst, role) = match tab.worst {
            Some(Severity::Critical) => ("✗", Role::Crit),
            Some(Severity::Warning) => ("⚠", Role::Warn),
            _ => ("✓", Role::Ok),
        };
        let same = if tab.same_store { " SAME SERVER" } else { "" };
        let label = format!(" {} {} {dot} {sessions} ", i + 1, text::clip(&text::escape_str(&tab.name), name_width));
        let style = if i == self.active { t.style(Role::Selection) } else { t.style(Role::Text) };
        vec![
            Span::styled(label, style),
            Span::styled(format!("{worst}{same} "), t.style(role)),
            Span::styled("│", t.style(Role::Border)),
        ]
    }
}

impl Widget for TabLine<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = usize::from(area.width);
        let hint = Span::styled(format!(" {} switch", self.keys), self.theme.style(Role::Muted));
        // Names as long as the line allows: every target's number, state and worst finding
        // matter more than the names and the hint.
        let line_at = |name_width: usize| -> Vec<Span<'static>> {
            self.tabs.iter().enumerate().flat_map(|(i, tab)| self.tab(i, tab, name_width)).collect()
        };
        let spans_width = |spans: &[Span<'static>]| spans.iter().map(Span::width).sum::<usize>();
        // The longest names that leave room for the hint; else for the targets alone.
        let fits = |room: usize| (NAME_MIN..=NAME_MAX).rev().find(|w| spans_width(&line_at(*w)) <= room);
        let spans = match fits(width.saturating_sub(hint.width())) {
            Some(name_width) => {
                let mut spans = line_at(name_width);
                spans.push(hint);
                spans
            }
            None => line_at(fits(width).unwrap_or(NAME_MIN)),
        };
        Paragraph::new(Line::from(spans)).render(area, buf);
    }
}
