//! The charts view: every figure the dashboard keeps a history of, over a window of 5 minutes
//! to a day. A list of the figures on the left reads each at the cursor's instant; the chart on
//! the right draws the chosen one (used memory with `maxmemory` as a line, the sessions per
//! stage as one line each), broken where nothing was heard.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Widget};

use crate::dashboard::app::ChartsState;
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::Millis;
use crate::engine::history::{FIGURES, GROUPS, History, MAXMEMORY, USED_MEMORY, Unit, Window};
use crate::engine::model::Model;
use crate::util::text;

/// Points a chart line has at most (a braille cell is two wide, so a wide terminal is covered).
const MAX_POINTS: usize = 400;
/// Stage lines drawn at most in the sessions-per-stage chart.
const MAX_STAGE_LINES: usize = 8;

pub struct ChartsView<'a> {
    pub model: &'a Model,
    pub state: &'a ChartsState,
    pub theme: &'a Theme,
}

/// A figure's value as it reads on screen.
pub fn format_value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Bytes => text::human_bytes(v.max(0.0) as u64),
        Unit::Count => text::grouped(v.max(0.0).round() as u64),
        Unit::PerSecond if v < 10.0 => format!("{v:.1}/s"),
        Unit::PerSecond => format!("{}/s", text::grouped(v.round() as u64)),
        Unit::Share => format!("{:.1}%", v * 100.0),
        Unit::Ratio => format!("{v:.2}"),
    }
}

/// Samples further apart than this break a line: three of the series' usual steps.
fn max_step(h: &History) -> Millis {
    (h.typical_step() * 3).max(1000)
}

/// A run of a line, as the chart takes it: (seconds from now, value).
type Line2 = Vec<(f64, f64)>;

/// Colours that tell stage lines apart, in turn.
const STAGE_ROLES: [Role; 5] = [Role::Accent, Role::Ok, Role::Warn, Role::Title, Role::Crit];

/// The lines a chart draws: each with its label, its window of points and its colour.
type Series = Vec<(String, Window, Role)>;

impl ChartsView<'_> {
    /// The list: each figure read at the cursor.
    fn list(&self, list_width: u16, cursor: Millis) -> Paragraph<'static> {
        let (m, c, t) = (self.model, self.state, self.theme);
        let mut lines = Vec::with_capacity(FIGURES.len() + 2);
        let name_width = usize::from(list_width.saturating_sub(4)).saturating_sub(12);
        for (i, f) in FIGURES.iter().enumerate() {
            let value = m
                .history
                .get(f.name)
                .and_then(|h| h.at(cursor, max_step(h)))
                .map_or("–".to_string(), |p| format_value(f.unit, p.mean));
            lines.push(list_line(i == c.selected, f.label, &value, name_width, t));
        }
        for (g, (label, prefix, unit)) in GROUPS.iter().enumerate() {
            let members = m.history.with_prefix(prefix).count();
            let total: Option<f64> = m
                .history
                .with_prefix(prefix)
                .filter_map(|(_, h)| h.at(cursor, max_step(h)).map(|p| p.mean))
                .reduce(|a, b| a + b);
            let label = format!("{label} ({members})");
            let value = total.map_or("–".to_string(), |v| format_value(*unit, v));
            lines.push(list_line(c.selected == FIGURES.len() + g, &label, &value, name_width, t));
        }
        let at = if c.cursor_back_ms == 0 {
            "now".to_string()
        } else {
            format!("{} ago", text::human_duration(c.cursor_back_ms / 1000))
        };
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.style(Role::Border))
                .title(Span::styled(format!(" at {at} "), t.style(Role::Title))),
        )
    }

    /// The chosen figure: its title, its unit, and its lines over the window ending now.
    fn chosen(&self, from: Millis, now: Millis) -> (String, Unit, Series) {
        let (m, c) = (self.model, self.state);
        if c.selected < FIGURES.len() {
            let f = FIGURES[c.selected];
            let mut series = Vec::new();
            if let Some(h) = m.history.get(f.name) {
                series.push((f.label.to_string(), h.window(from, now, max_step(h), MAX_POINTS), Role::Accent));
            }
            if f.name == USED_MEMORY
                && let Some(h) = m.history.get(MAXMEMORY)
                && h.last().is_some_and(|(_, v)| v > 0.0)
            {
                series.push(("maxmemory".into(), h.window(from, now, max_step(h), MAX_POINTS), Role::Crit));
            }
            return (f.label.to_string(), f.unit, series);
        }
        let (label, prefix, unit) = GROUPS[(c.selected - FIGURES.len()).min(GROUPS.len() - 1)];
        // Stages in workflow order (the layout's), then the others by name.
        let order = if m.settings.substates.is_empty() { &m.settings.stages } else { &m.settings.substates };
        let mut members: Vec<(&str, &History)> = m.history.with_prefix(prefix).collect();
        members.sort_by_key(|(name, _)| {
            let member = &name[prefix.len()..];
            (order.iter().position(|o| o == member).unwrap_or(usize::MAX), member.to_string())
        });
        let series = members
            .into_iter()
            .take(MAX_STAGE_LINES)
            .enumerate()
            .map(|(i, (name, h))| {
                let member = text::clip_sized(&text::escape_str(&name[prefix.len()..]), 24).into_owned();
                (member, h.window(from, now, max_step(h), MAX_POINTS), STAGE_ROLES[i % STAGE_ROLES.len()])
            })
            .collect();
        (label.to_string(), unit, series)
    }

    /// The chart of `series` over the window, with the cursor and the baseline as lines.
    fn chart(&self, unit: Unit, series: &Series, block: Block<'static>, area: Rect, buf: &mut Buffer) {
        let (m, c, t) = (self.model, self.state, self.theme);
        let (now, window) = (m.now, c.window_ms());
        let (lo, hi) = series
            .iter()
            .filter_map(|(_, w, _)| w.bounds())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
        let (lo, hi) = if unit == Unit::Ratio { (lo, hi) } else { (lo.min(0.0), hi) };
        let hi = if (hi - lo).abs() < f64::EPSILON { lo + 1.0 } else { hi };
        // Seconds relative to now: the window runs from -window to 0.
        let x = |at: Millis| (at - now) as f64 / 1000.0;
        let data: Vec<(String, Vec<Line2>, Role)> = series
            .iter()
            .map(|(label, w, role)| {
                let runs = w.runs.iter().map(|run| run.iter().map(|p| (x(p.at), p.mean)).collect()).collect();
                (label.clone(), runs, *role)
            })
            .collect();
        let cursor = now - c.cursor_back_ms;
        let cursor_line = [(x(cursor), lo), (x(cursor), hi)];
        let baseline = m.baseline.filter(|b| *b >= now - window && *b <= now);
        let baseline_line = baseline.map(|b| [(x(b), lo), (x(b), hi)]);
        let line =
            |role: Role| Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(t.style(role));
        let mut datasets = Vec::new();
        for (label, runs, role) in &data {
            for (i, run) in runs.iter().enumerate() {
                let d = line(*role).data(run);
                datasets.push(if i == 0 && data.len() > 1 { d.name(label.clone()) } else { d });
            }
        }
        datasets.push(line(Role::Muted).data(&cursor_line));
        if let Some(points) = &baseline_line {
            datasets.push(line(Role::Warn).name("baseline").data(points));
        }
        let window_s = window as f64 / 1000.0;
        let muted = |text: String| Span::styled(text, t.style(Role::Muted));
        let x_labels = vec![
            muted(format!("-{}", text::human_duration(window / 1000))),
            muted(format!("-{}", text::human_duration(window / 2000))),
            muted("now".into()),
        ];
        let y_labels = vec![
            muted(format_value(unit, lo)),
            muted(format_value(unit, (lo + hi) / 2.0)),
            muted(format_value(unit, hi)),
        ];
        Chart::new(datasets)
            .block(block)
            .x_axis(Axis::default().bounds([-window_s, 0.0]).labels(x_labels).style(t.style(Role::Border)))
            .y_axis(Axis::default().bounds([lo, hi]).labels(y_labels).style(t.style(Role::Border)))
            .legend_position(Some(ratatui::widgets::LegendPosition::TopLeft))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .render(area, buf);
    }
}

impl Widget for ChartsView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, c, t) = (self.model, self.state, self.theme);
        let list_width = if area.width >= 120 { 36 } else { 30 };
        let [list, chart] = Layout::horizontal([Constraint::Length(list_width), Constraint::Fill(1)]).areas(area);
        let (now, window) = (m.now, c.window_ms());
        self.list(list_width, now - c.cursor_back_ms).render(list, buf);
        let (title, unit, series) = self.chosen(now - window, now);
        let resolution = series.iter().map(|(_, w, _)| w.resolution_ms).max().unwrap_or(0);
        let marked = m.baseline.map_or(String::new(), |b| format!(" · baseline {}", text::clock(b, m.utc_offset_s)));
        let heading = format!(
            " {title} · last {} · {} a point{marked} ",
            text::human_duration(window / 1000),
            if resolution > 0 { text::human_duration((resolution / 1000).max(1)) } else { "–".into() }
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.style(Role::Border))
            .title(Span::styled(heading, t.style(Role::Title)));
        if series.iter().all(|(_, w, _)| w.is_empty()) {
            Paragraph::new(Line::from(Span::styled("nothing recorded in this window yet", t.style(Role::Muted))))
                .block(block)
                .render(chart, buf);
            return;
        }
        self.chart(unit, &series, block, chart, buf);
    }
}

/// One figure in the list: its name, and its value at the cursor on the right.
fn list_line(selected: bool, label: &str, value: &str, name_width: usize, t: &Theme) -> Line<'static> {
    // The chosen line in the selection's own colours, so it reads on every theme.
    let (name, figure) = if selected {
        (t.style(Role::Selection), t.style(Role::Selection))
    } else {
        (t.style(Role::Text), t.style(Role::Title))
    };
    let marker = if selected { "▶ " } else { "  " };
    Line::from(vec![
        Span::styled(marker.to_string(), t.style(Role::Accent)),
        Span::styled(format!("{:<name_width$}", text::clip(label, name_width)), name),
        Span::styled(format!("{value:>12}"), figure),
    ])
}
