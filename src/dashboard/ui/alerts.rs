//! The alerts panel: the findings, most severe first, each with its count and its sentence.
//! With the focus, up and down choose one and Enter shows its sessions in the table.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::{Finding, Severity};
use crate::util::text;

pub struct AlertsPanel<'a> {
    pub findings: &'a [Finding],
    pub theme: &'a Theme,
    pub focused: bool,
    /// The chosen finding (shown only with the focus).
    pub selected: usize,
}

/// A severity as a symbol and a role, so meaning survives without colour.
pub fn severity_mark(severity: Severity) -> (&'static str, Role) {
    match severity {
        Severity::Critical => ("✗", Role::Crit),
        Severity::Warning => ("⚠", Role::Warn),
        Severity::Info => ("·", Role::Muted),
    }
}

impl Widget for AlertsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let lines = usize::from(area.height.saturating_sub(2));
        if lines == 0 || self.findings.is_empty() {
            return;
        }
        let selected = self.selected.min(self.findings.len() - 1);
        // Keep the chosen finding in view.
        let first = selected.saturating_sub(lines.saturating_sub(1));
        let hidden = self.findings.len().saturating_sub(lines);
        let mut title = vec![Span::styled(" alerts ", t.style(Role::Title))];
        if hidden > 0 {
            title.push(Span::styled(format!("· {} more (Tab, ↓) ", self.findings.len() - lines), t.style(Role::Muted)));
        }
        if self.focused {
            title.push(Span::styled("· ⏎ shows the sessions ", t.style(Role::Muted)));
        }
        let border = if self.focused { Role::Accent } else { Role::Border };
        let block = Block::default().borders(Borders::ALL).border_style(t.style(border)).title(Line::from(title));
        let inner = block.inner(area);
        block.render(area, buf);
        let rows: Vec<Line> = self
            .findings
            .iter()
            .enumerate()
            .skip(first)
            .take(lines)
            .map(|(i, f)| {
                let (mark, role) = severity_mark(f.severity);
                let mut spans = vec![
                    Span::styled(format!("{mark} {:<8} ", f.severity.word()), t.style(role)),
                    Span::styled(format!("{} ({}) ", f.kind.name(), text::grouped(f.count)), t.style(Role::Title)),
                    Span::styled(text::escape_str(&f.summary), t.style(Role::Text)),
                ];
                if self.focused && i == selected {
                    for s in &mut spans {
                        s.style = s.style.add_modifier(Modifier::REVERSED);
                    }
                }
                Line::from(spans)
            })
            .collect();
        Paragraph::new(rows).render(inner, buf);
    }
}
