//! The server panel: memory against `maxmemory`, clients, load, cache behaviour and keys, each
//! with its trend since start.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use super::{bar, fit, spark};
use crate::conn::info::ServerStats;
use crate::dashboard::theme::{Role, Theme};
use crate::engine::model::Model;
use crate::util::text;

pub struct ServerPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    pub focused: bool,
}

/// Used memory's share of `maxmemory` at which the gauge turns to warning and to critical.
const MEMORY_WARN: f64 = 0.75;
const MEMORY_CRIT: f64 = 0.90;

/// The panel's pieces, each a few spans, laid out on tall and short panels alike.
struct Parts {
    memory: Vec<Span<'static>>,
    memory_details: Vec<Span<'static>>,
    clients: Vec<Span<'static>>,
    ops: Vec<Span<'static>>,
    hit: Vec<Span<'static>>,
    keys: Vec<Span<'static>>,
    evicted: Vec<Span<'static>>,
    expired: Vec<Span<'static>>,
    keyspace: Span<'static>,
    replication: String,
    own: String,
    unavailable: Vec<Span<'static>>,
}

impl ServerPanel<'_> {
    /// Every figure of `s` as spans, with its trend where it has one.
    fn parts(&self, s: &ServerStats, width: usize) -> Parts {
        let (m, t) = (self.model, self.theme);
        let trend = (width / 10).clamp(6, 24);
        let h = |name: &str| m.history.get(name).map_or_else(Vec::new, |h| h.recent(trend));
        let rises = |name: &str| m.history.get(name).map_or_else(Vec::new, |h| h.recent_increases(trend));
        let n = |v: Option<u64>| v.map_or("n/a".to_string(), text::grouped);
        let item = |name: &str, value: String, role: Role, points: Vec<f64>| -> Vec<Span<'static>> {
            vec![
                Span::styled(format!("{name} "), t.style(Role::Muted)),
                Span::styled(value, t.style(role)),
                Span::styled(format!(" {}   ", spark(&points, trend)), t.style(Role::Bar)),
            ]
        };
        let (memory, memory_details) = memory_segments(s, m, t, width, trend);
        let clients = item(
            "clients",
            format!("{} ({} blocked)", n(s.connected_clients), n(s.blocked_clients)),
            Role::Text,
            h("clients"),
        );
        let ops = item("ops/s", n(s.ops_per_sec), Role::Text, h("ops_per_sec"));
        let hit = item(
            "hit rate",
            s.hit_rate().map_or("n/a".into(), |h| format!("{:.1}%", h * 100.0)),
            Role::Text,
            h("hit_rate"),
        );
        let keys = item("in db", n(s.db_keys), Role::Text, h("db_keys"));
        let evicted_trend = rises(crate::engine::history::EVICTED_KEYS);
        let evicting = evicted_trend.last().copied().unwrap_or(0.0) > 0.0;
        let since = |name: &str, unit| {
            m.since_baseline(name).map_or(String::new(), |d| format!(" ({} since baseline)", super::signed(unit, d)))
        };
        let evicted = item(
            "evicted",
            format!(
                "{}{}",
                n(s.evicted_keys),
                since(crate::engine::history::EVICTED_KEYS, crate::engine::history::Unit::Count)
            ),
            if evicting { Role::Crit } else { Role::Text },
            evicted_trend,
        );
        let expired = item("expired", n(s.expired_keys), Role::Text, rises(crate::engine::history::EXPIRED_KEYS));
        let keyspace: Vec<String> = s
            .keyspace
            .iter()
            .map(|k| {
                format!(
                    "db{} {} keys, {} with TTL, avg {}",
                    k.db,
                    text::grouped(k.keys),
                    text::grouped(k.expires),
                    text::human_duration((k.avg_ttl_ms / 1000) as i64)
                )
            })
            .collect();
        let keyspace = Span::styled(
            if keyspace.is_empty() { "empty".to_string() } else { keyspace.join(" · ") },
            t.style(Role::Muted),
        );
        let replication = replication(m, s);
        let own = match (m.own.commands_per_sec, m.own.process) {
            (Some(rate), Some((cpu, rss))) => {
                format!(
                    "{rate:.0} cmd/s {} · {cpu:.1}% cpu · {} rss",
                    spark(&h("own_commands_per_sec"), trend),
                    text::human_bytes(rss)
                )
            }
            (Some(rate), None) => format!("{rate:.0} cmd/s"),
            _ => "—".into(),
        };
        let unavailable: Vec<Span> = m
            .server_unavailable
            .iter()
            .map(|u| Span::styled(format!("{}   ", text::escape_str(u)), t.style(Role::Warn)))
            .collect();

        Parts {
            memory,
            memory_details,
            clients,
            ops,
            hit,
            keys,
            evicted,
            expired,
            keyspace,
            replication,
            own,
            unavailable,
        }
    }
}

/// The role row: a cluster's or a sentinel's nodes, else the server's role and replicas.
fn replication(m: &Model, s: &ServerStats) -> String {
    if let Some(view) = &m.nodes {
        let reads = view.reads.as_ref().map(|r| format!(" · {}", text::escape_str(r))).unwrap_or_default();
        return super::nodes::summary(view) + &reads;
    }
    match (s.role.as_deref(), s.connected_slaves, s.master_link_status.as_deref()) {
        (Some("slave"), _, link) => format!("replica, link to primary {}", link.unwrap_or("unknown")),
        (Some(role), Some(replicas), _) => format!("{role}, {replicas} replicas"),
        (Some(role), None, _) => role.to_string(),
        _ => "n/a".to_string(),
    }
}

/// A row's name, as the panel's first column shows it.
fn label(t: &Theme, s: &str) -> Span<'static> {
    Span::styled(format!("{s:<9}"), t.style(Role::Muted))
}

/// A panel of seven rows or more: a row for each kind of figure.
fn tall_lines(p: Parts, host: Vec<(u8, Vec<Span<'static>>)>, t: &Theme, width: usize) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from([vec![label(t, "memory")], p.memory].concat()),
        Line::from([vec![label(t, "")], p.memory_details].concat()),
        Line::from([vec![label(t, "load")], p.clients, p.ops, p.hit].concat()),
        Line::from([vec![label(t, "keys")], p.keys, p.evicted, p.expired].concat()),
        Line::from(vec![label(t, "keyspace"), p.keyspace]),
        Line::from(vec![label(t, "role"), Span::styled(text::escape_str(&p.replication), t.style(Role::Text))]),
        Line::from(vec![label(t, "own load"), Span::styled(p.own, t.style(Role::Text))]),
    ];
    if !host.is_empty() {
        let mut segments = vec![(10, vec![label(t, "host")])];
        segments.extend(host);
        lines.push(Line::from(fit(segments, width)));
    }
    if !p.unavailable.is_empty() {
        lines.push(Line::from([vec![label(t, "n/a")], p.unavailable].concat()));
    }
    lines
}

/// A short panel: the figures that matter most, fitted to the width by priority.
fn short_lines(
    p: Parts,
    host: Vec<(u8, Vec<Span<'static>>)>,
    t: &Theme,
    width: usize,
    height: u16,
) -> Vec<Line<'static>> {
    let line = |segments: Vec<(u8, Vec<Span<'static>>)>| Line::from(fit(segments, width));
    let mut lines = vec![
        line(vec![(9, vec![label(t, "memory")]), (9, p.memory), (3, p.memory_details)]),
        line(vec![(9, p.clients), (8, p.ops), (7, p.hit), (1, p.unavailable)]),
        line(vec![(9, p.keys), (8, p.evicted), (7, p.expired), (2, vec![p.keyspace])]),
    ];
    if height >= 4 && !host.is_empty() {
        let mut segments = vec![(10, vec![label(t, "host")])];
        segments.extend(host);
        lines.push(line(segments));
    }
    lines
}

impl Widget for ServerPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (m, t) = (self.model, self.theme);
        let border = if self.focused { t.style(Role::Accent) } else { t.style(Role::Border) };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(border)
            .title(Span::styled(" server ", t.style(Role::Title)));
        let inner = block.inner(area);
        block.render(area, buf);
        let Some(s) = &m.server else {
            let text = if m.server_unavailable.is_empty() {
                "waiting for the first poll…".to_string()
            } else {
                m.server_unavailable.join("; ")
            };
            Paragraph::new(Span::styled(text::escape_str(&text), t.style(Role::Muted))).render(inner, buf);
            return;
        };
        let width = usize::from(inner.width);
        let parts = self.parts(s, width);
        let host = host_segments(m, t);
        let lines = if inner.height >= 7 {
            tall_lines(parts, host, t, width)
        } else {
            short_lines(parts, host, t, width, inner.height)
        };
        Paragraph::new(lines).render(inner, buf);
    }
}

/// The memory gauge (or plain figure when there is no limit) with its trend, and the details.
/// The host sessiontop runs on: CPU, memory, load, then each watched pattern's processes
/// (a pattern that matches none is shown as a warning: a service that should run does not).
fn host_segments(m: &Model, t: &Theme) -> Vec<(u8, Vec<Span<'static>>)> {
    let Some(h) = &m.host else { return Vec::new() };
    let mut out = vec![
        (9, vec![Span::styled(format!("cpu {:.0}%  ", h.cpu_percent), t.style(Role::Text))]),
        (
            8,
            vec![Span::styled(
                format!(
                    "mem {} of {}  ",
                    text::human_bytes(h.memory_used_bytes),
                    text::human_bytes(h.memory_total_bytes)
                ),
                t.style(Role::Text),
            )],
        ),
    ];
    if let Some([one, five, fifteen]) = h.load {
        out.push((4, vec![Span::styled(format!("load {one:.2} {five:.2} {fifteen:.2}  "), t.style(Role::Muted))]));
    }
    for p in &h.processes {
        let role = if p.count == 0 { Role::Warn } else { Role::Accent };
        let text = format!(
            "{} ×{} {} {:.0}%  ",
            text::clip(&text::escape_str(&p.pattern), 20),
            p.count,
            text::human_bytes(p.rss_bytes),
            p.cpu_percent
        );
        out.push((7, vec![Span::styled(text, t.style(role))]));
    }
    out
}

fn memory_segments(
    s: &ServerStats,
    m: &Model,
    t: &Theme,
    width: usize,
    trend: usize,
) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
    let used = s.used_memory_bytes.map_or("n/a".to_string(), text::human_bytes);
    let used = match m.since_baseline(crate::engine::history::USED_MEMORY) {
        Some(d) => format!("{used} ({} since baseline)", super::signed(crate::engine::history::Unit::Bytes, d)),
        None => used,
    };
    let details = vec![Span::styled(
        format!(
            "peak {} · rss {} · frag {} · policy {}",
            s.used_memory_peak_bytes.map_or("n/a".into(), text::human_bytes),
            s.used_memory_rss_bytes.map_or("n/a".into(), text::human_bytes),
            s.mem_fragmentation_ratio.map_or("n/a".into(), |f| format!("{f:.2}")),
            s.maxmemory_policy.as_deref().map_or("n/a".into(), text::escape_str),
        ),
        t.style(Role::Muted),
    )];
    let points = m.history.get(crate::engine::history::USED_MEMORY).map_or_else(Vec::new, |h| h.recent(trend));
    let trend_span = Span::styled(format!(" {}  ", spark(&points, trend)), t.style(Role::Bar));
    let main = match (s.memory_fraction(), s.maxmemory_bytes) {
        (Some(fraction), Some(max)) => {
            let role = if fraction >= MEMORY_CRIT {
                Role::Crit
            } else if fraction >= MEMORY_WARN {
                Role::Warn
            } else {
                Role::Ok
            };
            let gauge_width = (width / 6).clamp(6, 30);
            vec![
                Span::styled(format!("▕{}▏", bar(fraction, gauge_width)), t.style(role)),
                Span::styled(
                    format!(" {used} of {} ({:.0}%)", text::human_bytes(max), fraction * 100.0),
                    t.style(role),
                ),
                trend_span,
            ]
        }
        (_, Some(0)) => vec![
            Span::styled(used, t.style(Role::Text)),
            Span::styled(" · no limit (maxmemory 0)", t.style(Role::Warn)),
            trend_span,
        ],
        _ => vec![Span::styled(used, t.style(Role::Text)), trend_span],
    };
    (main, details)
}
