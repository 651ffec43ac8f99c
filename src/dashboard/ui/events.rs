//! The events view (`E`): what happens to sessions as it happens (created, saved, expired,
//! evicted, deleted), newest first, from keyspace notifications; where the server does not
//! send them, how to turn them on (sessiontop never does it itself).

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Widget, Wrap};

use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::{EventKind, EventsState};
use crate::engine::model::Model;
use crate::util::text;

pub struct EventsPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    /// Events skipped from the newest.
    pub offset: usize,
}

/// What the view says of the subscription, in a line.
pub fn state_line(m: &Model) -> (String, Role) {
    match &m.events_state {
        EventsState::Unknown => ("not subscribed yet (after the first census pass)".into(), Role::Muted),
        EventsState::On { flags } => {
            let (created, ended) = m.since_pass;
            let flags = flags.as_deref().map(|f| format!(" (notify-keyspace-events {f})")).unwrap_or_default();
            let live = m
                .live_now()
                .map(|n| format!(" · {} live now: +{created} −{ended} since the last pass", text::grouped(n)));
            (format!("subscribed{flags}{}", live.unwrap_or_default()), Role::Muted)
        }
        EventsState::Off { how, .. } => (format!("off: {}", text::escape_str(how)), Role::Warn),
        EventsState::Unavailable(why) => (format!("unavailable: {}", text::escape_str(why)), Role::Warn),
    }
}

impl Widget for EventsPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t) = (self.model, self.theme);
        let inner = super::panel(t, "session events", area, buf);
        let [head, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(inner);
        let (line, role) = state_line(m);
        Paragraph::new(Line::from(Span::styled(line, t.style(role)))).wrap(Wrap { trim: true }).render(head, buf);
        let rows: Vec<Row> = m
            .events
            .iter()
            .rev()
            .skip(self.offset)
            .take(body.height as usize)
            .map(|e| {
                let role = match e.kind {
                    EventKind::Evicted => Role::Warn,
                    EventKind::Expired | EventKind::Deleted => Role::Muted,
                    EventKind::Created | EventKind::Saved => Role::Text,
                };
                Row::new(vec![
                    Cell::from(Span::styled(text::clock(e.at, m.utc_offset_s), t.style(Role::Muted))),
                    Cell::from(Span::styled(e.kind.word(), t.style(role))),
                    Cell::from(Span::styled(e.id.escaped(), t.style(Role::Text))),
                    Cell::from(Span::styled(text::escape_str(&e.part), t.style(Role::Muted))),
                ])
            })
            .collect();
        let header = Row::new(["TIME", "EVENT", "SESSION", "PARTS"]).style(t.style(Role::Title));
        let widths = [Constraint::Length(9), Constraint::Length(8), Constraint::Fill(2), Constraint::Fill(1)];
        Widget::render(Table::new(rows, widths).header(header), body, buf);
    }
}
