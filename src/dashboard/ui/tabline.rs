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

impl Widget for TabLine<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let mut spans = Vec::new();
        for (i, tab) in self.tabs.iter().enumerate() {
            let dot = if tab.stale { "◌" } else { "●" };
            let sessions = tab.sessions.map_or("…".to_string(), text::grouped);
            let (worst, role) = match tab.worst {
                Some(Severity::Critical) => ("✗", Role::Crit),
                Some(Severity::Warning) => ("⚠", Role::Warn),
                _ => ("✓", Role::Ok),
            };
            let same = if tab.same_store { " SAME SERVER" } else { "" };
            let label = format!(" {} {} {dot} {sessions} ", i + 1, text::clip(&text::escape_str(&tab.name), 24));
            let style = if i == self.active { t.style(Role::Selection) } else { t.style(Role::Text) };
            spans.push(Span::styled(label, style));
            spans.push(Span::styled(format!("{worst}{same} "), t.style(role)));
            spans.push(Span::styled("│", t.style(Role::Border)));
        }
        spans.push(Span::styled(format!(" {} switch", self.keys), t.style(Role::Muted)));
        Paragraph::new(Line::from(spans)).render(area, buf);
    }
}
