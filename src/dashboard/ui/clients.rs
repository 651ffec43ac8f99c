//! The clients view (`C`): who is connected, by source host: connections, client names and
//! libraries, idle times and the last commands run, sessiontop's own counted apart; a host
//! that was not connected when the watch began (as the findings' watch tells) in the warning
//! colour.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Widget};

use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::HostClients;
use crate::engine::model::Model;
use crate::util::text;

pub struct ClientsPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    /// The first host shown.
    pub offset: usize,
}

fn counts(v: &[(String, u64)]) -> String {
    v.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")
}

impl ClientsPanel<'_> {
    fn row(&self, h: &HostClients, new: bool) -> Row<'static> {
        let t = self.theme;
        let role = if new { Role::Warn } else { Role::Text };
        let idle = format!("{}–{}", text::human_duration(h.idle_s.0 as i64), text::human_duration(h.idle_s.1 as i64));
        Row::new(vec![
            Cell::from(Span::styled(format!("{}{}", if new { "⚠ " } else { "" }, h.host), t.style(role))),
            Cell::from(Span::styled(text::grouped(h.connections), t.style(Role::Text))),
            Cell::from(Span::styled(counts(&h.names), t.style(Role::Text))),
            Cell::from(Span::styled(idle, t.style(Role::Muted))),
            Cell::from(Span::styled(counts(&h.commands), t.style(Role::Muted))),
        ])
    }
}

impl Widget for ClientsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t) = (self.model, self.theme);
        let inner = super::panel(t, "clients", area, buf);
        let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        let Some(view) = &m.clients else {
            Paragraph::new(Span::styled("not listed yet", t.style(Role::Muted))).render(head, buf);
            return;
        };
        if let Some(why) = &view.unavailable {
            Paragraph::new(Span::styled(format!("— {}", text::escape_str(why)), t.style(Role::Muted)))
                .render(head, buf);
            return;
        }
        let ago = text::human_duration((m.now - view.at).max(0) / 1000);
        let line = format!(
            "{} connections from {} hosts · {} of them sessiontop's own · listed {ago} ago",
            text::grouped(view.total - view.own),
            view.hosts.len(),
            view.own
        );
        Paragraph::new(Line::from(Span::styled(line, t.style(Role::Muted)))).render(head, buf);
        let new: Vec<&str> = m.tracker.new_client_hosts().collect();
        let rows: Vec<Row> =
            view.hosts.iter().skip(self.offset).map(|h| self.row(h, new.contains(&h.host.as_str()))).collect();
        let header = Row::new(["HOST", "CONN", "NAMES", "IDLE", "LAST COMMANDS"]).style(t.style(Role::Title));
        let widths = [
            Constraint::Length(24),
            Constraint::Length(6),
            Constraint::Fill(2),
            Constraint::Length(14),
            Constraint::Fill(1),
        ];
        Widget::render(Table::new(rows, widths).header(header), body, buf);
    }
}
