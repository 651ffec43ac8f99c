//! Drawing: a pure function of the [`App`] and the [`Theme`]. No I/O, no clock, no Redis: the
//! time shown is the model's. One widget per panel, each given exactly what it draws.
//!
//! Where each panel goes is [`crate::dashboard::geometry`]'s, so that the app pages and maps mouse clicks
//! with the same geometry the screen uses.

pub mod alerts;
pub mod census;
pub mod charts;
pub mod clients;
pub mod dialog;
pub mod events;
pub mod footer;
pub mod header;
pub mod inspector;
pub mod nodes;
pub mod server;
pub mod sessions;
pub mod slowlog;
pub mod tabline;

use ratatui::Frame;
use ratatui::text::Span;

use crate::dashboard::app::{App, Screen};
use crate::dashboard::geometry::{TALL, inspector_areas, overview_areas};
use crate::dashboard::theme::Theme;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App, theme: &Theme) {
    draw_in(frame, frame.area(), app, theme);
}

/// Draws the tab shown, below the line of targets when several are watched.
pub fn draw_tabs(
    frame: &mut Frame<'_>,
    tabs: &crate::dashboard::tabs::Tabs,
    keymap: &crate::dashboard::keymap::Keymap,
) {
    let mut area = frame.area();
    let shown = tabs.shown();
    if tabs.several() {
        let top = ratatui::layout::Rect { height: 1.min(area.height), ..area };
        let keys = target_keys(keymap);
        let summaries = tabs.summaries();
        frame.render_widget(
            tabline::TabLine { tabs: &summaries, active: tabs.active, theme: &shown.theme, keys: &keys },
            top,
        );
        area.y += top.height;
        area.height -= top.height;
    }
    draw_in(frame, area, &shown.app, &shown.theme);
}

/// The keys that choose a target, as the line of targets names them (`1-9/t`).
pub fn target_keys(keymap: &crate::dashboard::keymap::Keymap) -> String {
    use crate::dashboard::keymap::Action;
    format!(
        "{}-{}/{}",
        keymap.label_first(Action::Target1, 1),
        keymap.label_first(Action::Target9, 1),
        keymap.label_first(Action::NextTarget, 1)
    )
}

/// Draws the app in `area` (the screen below the line of targets when several are watched).
pub fn draw_in(frame: &mut Frame<'_>, area: ratatui::layout::Rect, app: &App, theme: &Theme) {
    let model = app.shown();
    match app.screen {
        Screen::Overview => {
            let a = overview_areas(area, app.listed_findings().len());
            frame.render_widget(header::Header { model, theme, frozen: app.frozen.is_some() }, a.header);
            frame.render_widget(
                server::ServerPanel { model, theme, focused: app.focus == crate::dashboard::app::Focus::Server },
                a.server,
            );
            frame.render_widget(
                census::CensusPanel {
                    model,
                    theme,
                    stalled: app.shown_table().stalled,
                    stalled_by: &app.shown_table().stalled_by,
                    tall: area.height >= TALL,
                },
                a.census,
            );
            frame.render_widget(
                alerts::AlertsPanel {
                    findings: app.listed_findings(),
                    theme,
                    focused: app.focus == crate::dashboard::app::Focus::Alerts,
                    selected: app.alert_selected,
                },
                a.alerts,
            );
            frame.render_widget(
                sessions::SessionsTable {
                    model,
                    table: &app.table,
                    view: app.shown_table(),
                    theme,
                    focused: app.focus == crate::dashboard::app::Focus::Sessions,
                },
                a.table,
            );
            frame.render_widget(footer::Footer { app, theme }, a.footer);
        }
        Screen::Charts => full_screen(frame, area, app, theme, charts::ChartsView { model, state: &app.charts, theme }),
        Screen::Nodes => {
            full_screen(frame, area, app, theme, nodes::NodesPanel { model, theme, offset: app.nodes_offset })
        }
        Screen::Clients => {
            full_screen(frame, area, app, theme, clients::ClientsPanel { model, theme, offset: app.clients_offset });
        }
        Screen::Slowlog => {
            full_screen(frame, area, app, theme, slowlog::SlowlogPanel { model, theme, offset: app.slowlog_offset });
        }
        Screen::Events => {
            full_screen(frame, area, app, theme, events::EventsPanel { model, theme, offset: app.events_offset });
        }
        Screen::Inspector => {
            let keys = model.inspect.as_ref().map_or(0, |r| r.keys.len());
            let a = inspector_areas(area, keys);
            frame.render_widget(header::Header { model, theme, frozen: app.frozen.is_some() }, a.header);
            if let Some(state) = &app.inspector {
                inspector::render(frame, &a, model, state, app.tree_lines(), theme);
            }
            frame.render_widget(footer::Footer { app, theme }, a.footer);
        }
    }
    if app.help {
        frame.render_widget(dialog::Help { keymap: &app.keymap, scopes: app.scopes, theme }, area);
    }
    if let Some(d) = &app.dialog {
        frame.render_widget(dialog::DialogView { dialog: d, keymap: &app.keymap, theme }, area);
    }
}

/// A change since the baseline as it reads on a panel: `+312`, `-48.0 MiB`, `±0`.
pub fn signed(unit: crate::engine::history::Unit, v: f64) -> String {
    if v.abs() < 0.5 && unit != crate::engine::history::Unit::Ratio {
        return "±0".into();
    }
    let sign = if v < 0.0 { "-" } else { "+" };
    format!("{sign}{}", charts::format_value(unit, v.abs()))
}

/// A trend as block characters, the last `width` points scaled between their min and max.
pub fn spark(points: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let shown = &points[points.len().saturating_sub(width)..];
    if shown.is_empty() {
        return String::new();
    }
    let (min, max) = shown.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    shown
        .iter()
        .map(|v| {
            if (max - min).abs() < f64::EPSILON {
                return if max > 0.0 { BARS[3] } else { BARS[0] };
            }
            let i = ((v - min) / (max - min) * 7.0).round() as usize;
            BARS[i.min(7)]
        })
        .collect()
}

/// A horizontal bar of `fraction` over `width` cells, in eighths.
pub fn bar(fraction: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) && out.chars().count() < width {
        out.push(PARTS[eighths % 8]);
    }
    let len = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
    out
}

/// Spans that fit `width` cells: whole segments (a value with its separator) are dropped,
/// lowest priority first, so what remains still reads as sentences.
pub fn fit(segments: Vec<(u8, Vec<Span<'static>>)>, width: usize) -> Vec<Span<'static>> {
    let seg_width = |spans: &[Span<'static>]| spans.iter().map(Span::width).sum::<usize>();
    let mut kept: Vec<(usize, u8, Vec<Span<'static>>)> =
        segments.into_iter().enumerate().map(|(i, (p, s))| (i, p, s)).collect();
    while kept.len() > 1 && kept.iter().map(|(_, _, s)| seg_width(s)).sum::<usize>() > width {
        let Some(lowest) =
            kept.iter().enumerate().min_by_key(|(_, (i, p, _))| (*p, std::cmp::Reverse(*i))).map(|(j, _)| j)
        else {
            break;
        };
        kept.remove(lowest);
    }
    kept.into_iter().flat_map(|(_, _, s)| s).collect()
}

/// A panel's bordered block titled `title`, drawn in `area`; returns what is inside it.
pub(crate) fn panel(
    t: &Theme,
    title: &str,
    area: ratatui::layout::Rect,
    buf: &mut ratatui::buffer::Buffer,
) -> ratatui::layout::Rect {
    use ratatui::widgets::{Block, Borders, Widget};
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.style(crate::dashboard::theme::Role::Border))
        .title(ratatui::text::Span::styled(format!(" {title} "), t.style(crate::dashboard::theme::Role::Title)));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// A view that takes the screen between the header and the footer.
fn full_screen(
    frame: &mut Frame<'_>,
    area: ratatui::layout::Rect,
    app: &App,
    theme: &Theme,
    body: impl ratatui::widgets::Widget,
) {
    let model = app.shown();
    let [header, middle, footer] = header_body_footer(area);
    frame.render_widget(header::Header { model, theme, frozen: app.frozen.is_some() }, header);
    frame.render_widget(body, middle);
    frame.render_widget(footer::Footer { app, theme }, footer);
}

/// A screen of one panel: the header line, the panel, the footer line.
fn header_body_footer(area: ratatui::layout::Rect) -> [ratatui::layout::Rect; 3] {
    use ratatui::layout::{Constraint, Layout};
    Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)]).areas(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparks_and_bars() {
        assert_eq!(spark(&[0.0, 1.0, 2.0, 3.0], 10), "▁▃▆█");
        assert_eq!(spark(&[5.0, 5.0], 10), "▄▄");
        assert_eq!(spark(&[1.0, 2.0, 3.0], 2), "▁█");
        assert_eq!(bar(0.5, 4), "██  ");
        assert_eq!(bar(1.0, 3), "███");
        assert_eq!(bar(0.0, 3), "   ");
        assert_eq!(bar(0.1, 5).chars().count(), 5);
    }

    #[test]
    fn fit_drops_low_priority_segments_first() {
        let segs = vec![
            (3, vec![Span::raw("aaaa")]),
            (1, vec![Span::raw(" | "), Span::raw("bbbb")]),
            (2, vec![Span::raw(" | "), Span::raw("cc")]),
        ];
        let kept: Vec<String> = fit(segs, 9).into_iter().map(|s| s.content.to_string()).collect();
        assert_eq!(kept, ["aaaa", " | ", "cc"]);
    }
}
