//! The header line: what is being watched, its health, and what watching costs.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::fit;
use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::{LinkState, Severity, Ttl};
use crate::engine::model::Model;
use crate::util::text;

pub struct Header<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    pub frozen: bool,
}

/// The connection's health as shown: the state, why (when it is down), and its role.
pub fn link_text(model: &Model) -> (String, Option<String>, Role) {
    match &model.link {
        LinkState::Connecting => ("… connecting".into(), None, Role::Warn),
        LinkState::Connected { .. } if model.silent_ms().is_some() => {
            ("◌ no answer from Redis".into(), Some("connected, but it answers nothing".into()), Role::Crit)
        }
        LinkState::Connected { .. } => ("● connected".into(), None, Role::Ok),
        LinkState::Reconnecting { attempt, retry_at, error } => {
            let wait = Ttl::ExpiresAt(*retry_at).seconds_left(model.now).unwrap_or(0);
            (
                format!("◌ reconnecting: attempt {attempt}, next in {wait}s"),
                Some(text::clip(&text::escape_str(error), 40)),
                Role::Crit,
            )
        }
        LinkState::AuthFailed { error, retry_at } => {
            let wait = Ttl::ExpiresAt(*retry_at).seconds_left(model.now).unwrap_or(0);
            (format!("✗ auth failed, retry in {wait}s"), Some(text::clip(&text::escape_str(error), 40)), Role::Crit)
        }
    }
}

/// The worst finding in words, its role and its priority for the space: a problem outranks
/// the target's name; "no warnings" does not, and is not claimed while the data is stale.
fn worst(m: &Model) -> Option<(String, Role, u8)> {
    if m.server.is_none() && m.findings.is_empty() {
        return None;
    }
    let count = |s: Severity| m.findings.iter().filter(|f| f.severity == s).count();
    match crate::engine::diagnose::worst(&m.findings) {
        Some(Severity::Critical) => Some((format!("✗ {} critical", count(Severity::Critical)), Role::Crit, 11)),
        Some(Severity::Warning) => {
            let n = count(Severity::Warning);
            Some((format!("⚠ {n} warning{}", if n == 1 { "" } else { "s" }), Role::Warn, 11))
        }
        _ if !m.is_stale() => Some(("✓ no warnings".to_string(), Role::Ok, 4)),
        _ => None,
    }
}

/// What watching costs: the share of a Redis core (with the budget), and sessiontop's own
/// commands, CPU and memory.
fn own_load(m: &Model) -> (Option<String>, Option<String>) {
    let redis = match (m.own.redis_share, &m.own.budget) {
        (Some(share), Some(budget)) => Some(format!("own {:.1}% redis (budget {budget})", share * 100.0)),
        (Some(share), None) => Some(format!("own {:.1}% redis", share * 100.0)),
        (None, _) => None,
    };
    let mut parts = Vec::new();
    if let Some(rate) = m.own.commands_per_sec {
        parts.push(format!("{rate:.0} cmd/s"));
    }
    if let Some((cpu, rss)) = m.own.process {
        parts.push(format!("{cpu:.1}% cpu · {}", text::human_bytes(rss)));
    }
    let own = match (&redis, parts.is_empty()) {
        (_, true) => None,
        (Some(_), false) => Some(parts.join(" · ")),
        (None, false) => Some(format!("own {}", parts.join(" · "))),
    };
    (redis, own)
}

impl Widget for Header<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, theme) = (self.model, self.theme);
        let base = theme.style(Role::Header);
        buf.set_style(area, base);
        let on = |role: Role| -> Style {
            // Problem colours keep the header's background so they read as part of it.
            let s = theme.style(role);
            if theme.has_colors() { base.fg(s.fg.unwrap_or_default()).add_modifier(Modifier::BOLD) } else { s }
        };
        let badge =
            |text: String| Span::styled(format!(" {text} "), base.add_modifier(Modifier::BOLD | Modifier::REVERSED));
        let part = |text: String| vec![Span::styled(" │ ", base), Span::styled(text, base)];
        let mut segments: Vec<(u8, Vec<Span<'static>>)> = Vec::new();
        segments.push((10, vec![Span::styled(" sessiontop ", base.add_modifier(Modifier::BOLD))]));
        if let Some(banner) = &theme.banner {
            segments.push((10, vec![badge(banner.clone())]));
        }
        let target = match &m.target.name {
            Some(name) => text::escape_str(name),
            None => text::clip(&text::escape_str(&m.target.url), usize::from(area.width / 3).clamp(20, 60)),
        };
        segments.push((7, vec![Span::styled(format!(" {target}"), base)]));
        if let Some(s) = &m.server {
            let version = format!(
                "Redis {} {}",
                s.redis_version.as_deref().map_or("?".into(), text::escape_str),
                s.role.as_deref().map_or(String::new(), text::escape_str)
            );
            segments.push((5, part(version)));
            if let Some(view) = &m.nodes {
                let primaries = view.primaries().count();
                let replicas = view.nodes.len() - primaries;
                segments.push((3, vec![Span::styled(format!(" {primaries}P/{replicas}R"), base)]));
                if let Some(reads) = &view.reads {
                    segments.push((5, part(text::clip(&text::escape_str(reads), 60))));
                }
            }
            if let Some(up) = s.uptime_seconds {
                segments.push((2, vec![Span::styled(format!(" up {}", text::human_duration(up as i64)), base)]));
            }
        }
        // The connection's state is what matters most when something is wrong: it is the last
        // thing to go when the line is short.
        let (link, why, role) = link_text(m);
        segments.push((12, vec![Span::styled(" │ ", base), Span::styled(link, on(role))]));
        if let Some(why) = why {
            segments.push((6, vec![Span::styled(format!(" ({why})"), on(role))]));
        }
        if m.is_stale()
            && let Some(at) = m.server_at
        {
            let stale = format!(" stale {}", text::human_duration(m.now.saturating_sub(at) / 1000));
            segments.push((11, vec![Span::styled(stale, on(Role::Warn))]));
        }
        // The worst finding, in words and colour, at all times.
        if let Some((words, role, priority)) = worst(m) {
            segments.push((priority, vec![Span::styled(" │ ", base), Span::styled(words, on(role))]));
        }
        let layout = match &m.layout {
            Some(s) => format!("{} '{}'", s.kind.name(), text::escape_str(&s.prefix)),
            None => "layout: detecting".into(),
        };
        segments.push((6, part(layout)));
        if m.target.read_only {
            segments.push((10, vec![Span::raw(" "), badge("READ-ONLY".into())]));
        }
        if self.frozen {
            segments.push((10, vec![Span::raw(" "), badge("FROZEN".into())]));
        }
        // What watching costs: Redis's time first (the budget's unit, kept when space is short),
        // then sessiontop's own.
        let (redis, own) = own_load(m);
        if m.own.backing_off {
            segments.push((9, vec![Span::raw(" "), badge("BACKING OFF: Redis is slow".into())]));
        }
        if let Some(redis) = redis {
            segments.push((7, part(redis)));
        }
        segments.push((4, part(own.unwrap_or_else(|| "own —".into()))));
        segments.push((1, part(text::clock(m.now, m.utc_offset_s))));
        Line::from(fit(segments, usize::from(area.width))).render(area, buf);
    }
}
