//! The slowlog view (`L`): the commands the servers logged as slow, newest first, with how
//! long each took, who sent it and the session it touched; sessiontop's own marked apart;
//! `LATENCY LATEST`'s events above them where allowed.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Widget, Wrap};

use crate::dashboard::theme::{Role, Theme};
use crate::engine::model::Model;
use crate::util::text;

pub struct SlowlogPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    /// Entries skipped from the newest.
    pub offset: usize,
}

impl Widget for SlowlogPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t) = (self.model, self.theme);
        let inner = super::panel(t, "slowlog", area, buf);
        let [head, body] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
        let Some(view) = &m.slowlog else {
            Paragraph::new(Span::styled("not read yet", t.style(Role::Muted))).render(head, buf);
            return;
        };
        let latency = match &view.latency {
            None => "latency: — (LATENCY not allowed)".to_string(),
            Some(events) if events.is_empty() => {
                "latency: no events (latency-monitor-threshold 0, or none past it)".into()
            }
            Some(events) => format!(
                "latency: {}",
                events
                    .iter()
                    .map(|(e, latest, max)| format!("{e} {latest} ms (max {max})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let first = match &view.unavailable {
            Some(why) => format!("— {}", text::escape_str(why)),
            None => format!(
                "{} entries, newest first · read {} ago · ◆ sessiontop's own",
                view.entries.len(),
                text::human_duration((m.now - view.at).max(0) / 1000)
            ),
        };
        let lines = vec![
            Line::from(Span::styled(first, t.style(Role::Muted))),
            Line::from(Span::styled(latency, t.style(Role::Muted))),
        ];
        Paragraph::new(lines).wrap(Wrap { trim: true }).render(head, buf);
        let rows: Vec<Row> = view
            .entries
            .iter()
            .skip(self.offset)
            .take(body.height as usize)
            .map(|e| {
                let role = if e.own {
                    Role::Muted
                } else if e.session.is_some() {
                    Role::Warn
                } else {
                    Role::Text
                };
                let who =
                    if e.client_name.is_empty() { e.client.clone() } else { format!("{} {}", e.client, e.client_name) };
                Row::new(vec![
                    Cell::from(Span::styled(text::clock(e.at, m.utc_offset_s), t.style(Role::Muted))),
                    Cell::from(Span::styled(format!("{:.1} ms", e.micros as f64 / 1000.0), t.style(role))),
                    Cell::from(Span::styled(format!("{}{who}", if e.own { "◆ " } else { "" }), t.style(Role::Text))),
                    Cell::from(Span::styled(e.session.as_ref().map_or("—".into(), |s| s.escaped()), t.style(role))),
                    Cell::from(Span::styled(e.command.clone(), t.style(Role::Text))),
                ])
            })
            .collect();
        let header = Row::new(["TIME", "TOOK", "CLIENT", "SESSION", "COMMAND"]).style(t.style(Role::Title));
        let widths = [
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(24),
            Constraint::Length(20),
            Constraint::Fill(1),
        ];
        Widget::render(Table::new(rows, widths).header(header), body, buf);
    }
}
