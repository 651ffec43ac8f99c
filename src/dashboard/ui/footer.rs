//! The footer: the filter being typed, a status message, or the keys that work here, taken from
//! the live keymap.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::fit;
use crate::dashboard::app::{App, Level, Screen};
use crate::dashboard::keymap::Action;
use crate::dashboard::theme::{Role, Theme};
use crate::util::text;

pub struct Footer<'a> {
    pub app: &'a App,
    pub theme: &'a Theme,
}

/// The actions the footer offers in each view, most useful first.
fn offered(screen: Screen) -> &'static [Action] {
    match screen {
        Screen::Overview => &[
            Action::Down,
            Action::Inspect,
            Action::Filter,
            Action::SortNext,
            Action::SortReverse,
            Action::Expire,
            Action::Persist,
            Action::Delete,
            Action::Refresh,
            Action::Freeze,
            Action::NextPanel,
            Action::Charts,
            Action::Nodes,
            Action::Help,
            Action::Quit,
        ],
        Screen::Charts => &[
            Action::Back,
            Action::Down,
            Action::ChartWindow,
            Action::CursorBack,
            Action::CursorForward,
            Action::Freeze,
            Action::Help,
            Action::Quit,
        ],
        Screen::Nodes | Screen::Clients | Screen::Events | Screen::Slowlog => {
            &[Action::Back, Action::Down, Action::Charts, Action::Freeze, Action::Help, Action::Quit]
        }
        Screen::Inspector => &[
            Action::Back,
            Action::Down,
            Action::NextPanel,
            Action::Fold,
            Action::Raw,
            Action::Expire,
            Action::Persist,
            Action::Delete,
            Action::Freeze,
            Action::Help,
            Action::Quit,
        ],
    }
}

impl Widget for Footer<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (app, t) = (self.app, self.theme);
        if app.table.editing_filter {
            Line::from(vec![
                Span::styled(" filter ▶ ", t.style(Role::Accent)),
                Span::styled(format!("{}▏", text::escape_str(&app.table.filter)), t.style(Role::Title)),
                Span::styled(
                    format!("  {} sessions match · ⏎ keep · Esc clear", text::grouped(app.table.view.len as u64)),
                    t.style(Role::Muted),
                ),
            ])
            .render(area, buf);
            return;
        }
        if let Some(status) = &app.status {
            let role = match status.level {
                Level::Info => Role::Accent,
                Level::Warn => Role::Warn,
                Level::Error => Role::Crit,
            };
            Line::from(Span::styled(format!(" {}", status.text), t.style(role))).render(area, buf);
            return;
        }
        let mut segments = Vec::new();
        for (i, action) in offered(app.screen).iter().enumerate() {
            let priority = 10u8.saturating_sub(i as u8).max(1);
            let label = match action {
                Action::Down => format!("{}/{}", app.keymap.label(Action::Up), app.keymap.label(Action::Down)),
                _ => app.keymap.label(*action),
            };
            if label.is_empty() {
                continue;
            }
            segments.push((
                priority,
                vec![
                    Span::styled(format!(" {label}"), t.style(Role::Accent)),
                    Span::styled(format!(" {} ", action.short()), t.style(Role::Muted)),
                ],
            ));
        }
        if app.model.target.read_only {
            segments.push((11, vec![Span::styled(" writes off (read-only) ", t.style(Role::Warn))]));
        }
        Line::from(fit(segments, usize::from(area.width))).render(area, buf);
    }
}
