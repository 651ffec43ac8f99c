//! Dialogs over the screen (expire, confirm a write) and the help, built from the keymap.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use crate::dashboard::app::Dialog;
use crate::dashboard::keymap::{Action, Keymap};
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::FindingKind;
use crate::engine::msg::{WriteKind, WritePlan};
use crate::engine::names::SessionId;
use crate::util::text;

/// A box of at most `width` x `height` in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))]).flex(Flex::Center).areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))]).flex(Flex::Center).areas(row);
    cell
}

/// The No and Yes buttons under a confirmation, the chosen one highlighted, with the keys that
/// answer it.
fn answers(t: &Theme, keymap: &Keymap, yes: bool) -> Line<'static> {
    let button = |label: &str, on: bool| {
        let style = if on { t.style(Role::Selection).add_modifier(Modifier::BOLD) } else { t.style(Role::Muted) };
        Span::styled(format!("  {label}  "), style)
    };
    let hint = format!(
        "    {} choose · {} confirm · {}/{} · {}",
        keymap.label_first(Action::SwitchAnswer, 2),
        keymap.label_first(Action::Answer, 1),
        keymap.label_first(Action::Yes, 1),
        keymap.label_first(Action::No, 1),
        keymap.label_first(Action::Cancel, 1)
    );
    Line::from(vec![
        Span::raw("   "),
        button("No", !yes),
        Span::raw("   "),
        button("Yes", yes),
        Span::styled(hint, t.style(Role::Muted)),
    ])
}

/// Rows `lines` take once wrapped to `width`, as the dialog draws them.
fn wrapped_rows(lines: &[Line<'static>], width: u16) -> usize {
    Paragraph::new(lines.to_vec()).wrap(Wrap { trim: false }).line_count(width.max(1))
}

/// The dialog's lines cut to `max_rows` once wrapped: the first line and the last two (a blank
/// and the answers) always stay, so a long list never pushes the answers off the screen; the
/// lines between go first, counted.
fn fit_rows(mut lines: Vec<Line<'static>>, width: u16, max_rows: usize, t: &Theme) -> Vec<Line<'static>> {
    if wrapped_rows(&lines, width) <= max_rows || lines.len() <= 3 {
        return lines;
    }
    let mut dropped = 0;
    // One row for the line that says how many were left out.
    while lines.len() > 3 && wrapped_rows(&lines, width) + 1 > max_rows {
        lines.remove(lines.len() - 3);
        dropped += 1;
    }
    let more = Line::from(Span::styled(format!("    … {dropped} more lines"), t.style(Role::Muted)));
    let at = lines.len().saturating_sub(2);
    lines.insert(at, more);
    lines
}

pub struct DialogView<'a> {
    pub dialog: &'a Dialog,
    pub keymap: &'a Keymap,
    pub theme: &'a Theme,
}

/// What a dialog shows: its title, its lines, and the role of its border.
type Contents = (String, Vec<Line<'static>>, Role);

impl DialogView<'_> {
    fn expire(&self, id: &SessionId, input: &str, error: Option<&String>) -> Contents {
        let t = self.theme;
        let k = |a: Action| self.keymap.label_first(a, 1);
        let mut lines = vec![
            Line::from(vec![
                Span::styled("expire session ", t.style(Role::Text)),
                Span::styled(id.escaped_short(80), t.style(Role::Accent)),
                Span::styled(" in:", t.style(Role::Text)),
            ]),
            Line::from(vec![
                Span::styled("  ▶ ", t.style(Role::Accent)),
                Span::styled(format!("{input}▏"), t.style(Role::Title)),
            ]),
            Line::from(Span::styled(
                format!("seconds, or 90s, 15m, 2h, 1d · {} next · {} cancel", k(Action::Answer), k(Action::Cancel)),
                t.style(Role::Muted),
            )),
        ];
        if let Some(e) = error {
            lines.push(Line::from(Span::styled(text::escape_str(e), t.style(Role::Crit))));
        }
        (" expire ".into(), lines, Role::Accent)
    }

    /// A dialog waiting for the collectors, with how to stop waiting.
    fn waiting(&self, title: String, what: String) -> Contents {
        let cancel = self.keymap.label_first(Action::Cancel, 1);
        let line = Line::from(Span::styled(format!("{what}  ({cancel} cancels)"), self.theme.style(Role::Muted)));
        (title, vec![line], Role::Accent)
    }

    fn confirm(&self, plan: &WritePlan, yes: bool) -> Contents {
        let t = self.theme;
        let question = match plan.kind {
            WriteKind::Delete if plan.span.is_atomic() => "delete these keys, atomically?".to_string(),
            WriteKind::Delete => "delete these keys?".to_string(),
            WriteKind::Persist => "remove the TTL of these keys?".to_string(),
            WriteKind::Expire(s) => format!("expire these keys in {}?", text::human_duration(s)),
            WriteKind::Unindex => "remove this orphaned index entry?".to_string(),
            WriteKind::Release => "release (delete) these stale locks?".to_string(),
        };
        let mut lines = vec![Line::from(vec![
            Span::styled("session ", t.style(Role::Text)),
            Span::styled(plan.id.escaped_short(80), t.style(Role::Accent)),
            Span::styled(format!(": {question}"), t.style(Role::Text)),
        ])];
        let verb_role = if plan.kind == WriteKind::Delete { Role::Crit } else { Role::Warn };
        for k in &plan.keys {
            lines.push(Line::from(vec![
                Span::styled("  • ", t.style(verb_role)),
                Span::styled(k.key.escaped_short(100), t.style(Role::Text)),
                Span::styled(format!("  {}", text::escape_str(&k.role)), t.style(Role::Muted)),
            ]));
        }
        if let Some(index) = &plan.index {
            lines.push(Line::from(vec![
                Span::styled("  • ", t.style(verb_role)),
                Span::styled(format!("index entry in {}", text::escape_str(index)), t.style(Role::Text)),
            ]));
        }
        for k in &plan.untouched {
            lines.push(Line::from(Span::styled(
                format!("    left alone: {} ({})", k.key.escaped_short(100), text::escape_str(&k.role)),
                t.style(Role::Muted),
            )));
        }
        if let Some(warning) = plan.span.warning() {
            lines.push(Line::from(Span::styled(format!("  {warning}"), t.style(Role::Warn))));
        }
        lines.push(Line::from(""));
        lines.push(answers(t, self.keymap, yes));
        (format!(" {} ", plan.kind.verb()), lines, verb_role)
    }

    fn confirm_fix(
        &self,
        kind: FindingKind,
        of: u64,
        plans: &[WritePlan],
        skipped: usize,
        yes: bool,
        height: u16,
    ) -> Contents {
        let t = self.theme;
        let question = match plans.first().map(|p| p.kind) {
            Some(WriteKind::Unindex) => "remove these orphaned index entries?".to_string(),
            Some(WriteKind::Release) => "release (delete) these stale locks?".to_string(),
            Some(WriteKind::Expire(s)) => format!("give these keys without TTL a TTL of {}?", text::human_duration(s)),
            _ => "make these changes?".to_string(),
        };
        let left_out =
            if skipped > 0 { format!(" ({skipped} left out: the fix no longer fits them)") } else { String::new() };
        let mut lines = vec![Line::from(Span::styled(
            format!("{} sessions: {question}{left_out}", plans.len()),
            t.style(Role::Text),
        ))];
        let named = (plans.len() + skipped) as u64;
        if of > named {
            lines.push(Line::from(Span::styled(
                format!(
                    "the {named} the finding names, of {}; after the next census pass, x again fixes more \
                     (or: sessiontop fix {})",
                    text::grouped(of),
                    kind.name()
                ),
                t.style(Role::Muted),
            )));
        }
        // Every change, as many as fit; the rest counted.
        let max_lines = usize::from(height.saturating_sub(8)).max(3);
        let mut changes: Vec<Line> = Vec::new();
        for plan in plans {
            for k in &plan.keys {
                changes.push(Line::from(vec![
                    Span::styled("  • ", t.style(Role::Warn)),
                    Span::styled(k.key.escaped_short(100), t.style(Role::Text)),
                ]));
            }
            if let Some(index) = &plan.index {
                changes.push(Line::from(vec![
                    Span::styled("  • ", t.style(Role::Warn)),
                    Span::styled(
                        format!("'{}' in {}", plan.id.escaped_short(60), text::escape_str(index)),
                        t.style(Role::Text),
                    ),
                ]));
            }
        }
        let total = changes.len();
        lines.extend(changes.into_iter().take(max_lines));
        if total > max_lines {
            lines.push(Line::from(Span::styled(
                format!("    … {} more (all in the audit log once made)", total - max_lines),
                t.style(Role::Muted),
            )));
        }
        lines.push(Line::from(""));
        lines.push(answers(t, self.keymap, yes));
        (format!(" fix {} ", kind.name()), lines, Role::Warn)
    }
}

impl Widget for DialogView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (title, lines, role) = match self.dialog {
            Dialog::ExpireInput { id, input, error } => self.expire(id, input, error.as_ref()),
            Dialog::Planning { id, kind, progress } => self.waiting(
                format!(" {} ", kind.verb()),
                format!(
                    "finding every key of '{}'…{}",
                    id.escaped_short(80),
                    progress.map(|p| format!(" {:.0}% of the keyspace searched", p * 100.0)).unwrap_or_default()
                ),
            ),
            Dialog::Confirm { plan, yes } => self.confirm(plan, *yes),
            Dialog::PlanningFix { kind, .. } => self
                .waiting(format!(" fix {} ", kind.name()), "working out every change, session by session…".to_string()),
            Dialog::ConfirmFix { kind, of, plans, skipped, yes } => {
                self.confirm_fix(*kind, *of, plans, *skipped, *yes, area.height)
            }
        };
        let t = self.theme;
        let width = lines.iter().map(Line::width).max().unwrap_or(20).max(title.len()) as u16 + 4;
        let width = width.clamp(30, area.width.saturating_sub(4).max(30));
        let lines = fit_rows(lines, width.saturating_sub(2), usize::from(area.height.saturating_sub(2)), t);
        let height = wrapped_rows(&lines, width.saturating_sub(2)) as u16 + 2;
        let rect = centered(area, width, height);
        Clear.render(rect, buf);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.style(role))
            .title(Span::styled(title, t.style(role).add_modifier(Modifier::BOLD)));
        Paragraph::new(lines).block(block).wrap(Wrap { trim: false }).render(rect, buf);
    }
}

pub struct Help<'a> {
    pub keymap: &'a Keymap,
    /// The scopes whose keys are listed.
    pub scopes: &'a [crate::dashboard::keymap::Scope],
    pub theme: &'a Theme,
}

impl Widget for Help<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let help = self.keymap.help(self.scopes);
        let key_width = help.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(4);
        let notes = [
            " marks: ✗ did not decode · ⚠ stalled · ∞ no TTL · mouse: wheel scrolls, click selects",
            " keys can be changed in the config file's [bindings] table; any key closes this",
        ];
        // One column when it fits the height, else two, each as wide as the screen allows.
        let columns = if help.len() + notes.len() + 3 <= usize::from(area.height) { 1 } else { 2 };
        let per_column = help.len().div_ceil(columns);
        let what_width =
            (usize::from(area.width.saturating_sub(4)) / columns).saturating_sub(key_width + 4).clamp(8, 42);
        let entry = |(keys, what): &(String, &'static str)| {
            vec![
                Span::styled(format!(" {keys:>key_width$}  "), t.style(Role::Accent)),
                Span::styled(format!("{:<what_width$} ", text::clip(what, what_width)), t.style(Role::Text)),
            ]
        };
        let mut lines: Vec<Line> = (0..per_column)
            .map(|row| {
                let spans: Vec<Span> =
                    (0..columns).filter_map(|c| help.get(c * per_column + row)).flat_map(entry).collect();
                Line::from(spans)
            })
            .collect();
        lines.push(Line::from(""));
        let note_width = usize::from(area.width.saturating_sub(4));
        lines.extend(notes.iter().map(|n| Line::from(Span::styled(text::clip(n, note_width), t.style(Role::Muted)))));
        let width = lines.iter().map(Line::width).max().unwrap_or(40) as u16 + 2;
        let rect = centered(area, width, lines.len() as u16 + 2);
        Clear.render(rect, buf);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.style(Role::Accent))
            .title(Span::styled(" help ", t.style(Role::Title)));
        Paragraph::new(lines).block(block).wrap(Wrap { trim: false }).render(rect, buf);
    }
}
