//! The nodes view (`n`): a cluster's primaries and replicas, or a sentinel's primary and
//! replicas, each with its slots, keys, memory, traffic, replication lag and what sessiontop's
//! commands cost it; the slots no primary serves, and where sessions are read from.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Widget};

use crate::dashboard::theme::{Role, Theme};
use crate::engine::domain::{NodeStatus, NodesView};
use crate::engine::model::Model;
use crate::util::text;

/// How much the panel shows of each node, by its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// Slot counts, used memory, the state.
    Narrow,
    /// Slot ranges, memory against maxmemory, commands a second.
    Medium,
    /// Clients, and what sessiontop costs each node.
    Wide,
}

pub struct NodesPanel<'a> {
    pub model: &'a Model,
    pub theme: &'a Theme,
    /// The first node shown.
    pub offset: usize,
}

/// One line on what the target is made of: kind, nodes, slots served.
pub fn summary(view: &NodesView) -> String {
    let primaries = view.primaries().count();
    let replicas = view.nodes.len() - primaries;
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{} · {}, {}",
        view.kind,
        count(primaries, "primary", "primaries"),
        count(replicas, "replica", "replicas")
    );
    if view.kind == "cluster" {
        let uncovered: u32 = view.uncovered.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum();
        line.push_str(&format!(
            " · {} of 16,384 slots served · epoch {}",
            text::grouped(u64::from(16_384 - uncovered)),
            view.epoch
        ));
    }
    line
}

impl NodesPanel<'_> {
    fn row(&self, n: &NodeStatus, width: Width) -> Row<'static> {
        let wide = width == Width::Wide;
        let t = self.theme;
        let s = n.stats.as_deref();
        let bad = n.error.is_some() || n.health == "failed";
        let role = if n.primary { "primary" } else { "replica" };
        let slots = if n.primary && !n.slots.is_empty() && width == Width::Narrow {
            text::grouped(u64::from(n.slot_count()))
        } else if n.primary && !n.slots.is_empty() {
            format!("{} ({})", text::grouped(u64::from(n.slot_count())), crate::conn::slot::ranges_text(&n.slots))
        } else {
            n.replica_of.as_deref().map_or_else(String::new, |p| format!("of {}", text::escape_str(p)))
        };
        let memory = match s.and_then(|s| s.used_memory_bytes) {
            Some(used) if width == Width::Narrow => text::human_bytes(used),
            Some(used) => match s.and_then(|s| s.maxmemory_bytes).filter(|m| *m > 0) {
                Some(max) => format!("{} / {}", text::human_bytes(used), text::human_bytes(max)),
                None => text::human_bytes(used),
            },
            None => "—".into(),
        };
        let n_or = |v: Option<u64>| v.map_or("—".into(), text::grouped);
        let state = match (&n.error, n.health.as_str()) {
            (Some(e), _) => text::clip(&text::escape_str(e), 40),
            (None, health) => match n.lag_bytes {
                Some(lag) if health == "online" => format!("lag {}", text::human_bytes(lag)),
                Some(lag) => format!("{health}, lag {}", text::human_bytes(lag)),
                None => health.to_string(),
            },
        };
        let mut cells = vec![
            Cell::from(Span::styled(role, t.style(if n.primary { Role::Accent } else { Role::Muted }))),
            Cell::from(text::escape_str(&n.address)),
            Cell::from(text::clip(&slots, 28)),
            Cell::from(n_or(s.and_then(|s| s.db_keys))),
            Cell::from(memory),
        ];
        if width != Width::Narrow {
            cells.push(Cell::from(n_or(s.and_then(|s| s.ops_per_sec))));
        }
        if wide {
            cells.push(Cell::from(n_or(s.and_then(|s| s.connected_clients))));
            cells.push(Cell::from(n.own_share.map_or("—".into(), |v| format!("{:.1}%", v * 100.0))));
        }
        cells.push(Cell::from(Span::styled(state, t.style(if bad { Role::Crit } else { Role::Text }))));
        Row::new(cells)
    }
}

impl Widget for NodesPanel<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let inner = super::panel(t, "nodes", area, buf);
        let Some(view) = &self.model.nodes else {
            let address = self.model.target.url.clone();
            let line = format!(
                "one server ({}): nothing more to list. A Redis Cluster's primaries and replicas, or a sentinel's, \
                 show here.",
                text::escape_str(&address)
            );
            Paragraph::new(line)
                .style(t.style(Role::Muted))
                .wrap(ratatui::widgets::Wrap { trim: true })
                .render(inner, buf);
            return;
        };
        let mut head = vec![Line::from(Span::styled(summary(view), t.style(Role::Text)))];
        if !view.uncovered.is_empty() {
            head.push(Line::from(Span::styled(
                format!("no primary serves slots {}", crate::conn::slot::ranges_text(&view.uncovered)),
                t.style(Role::Crit),
            )));
        }
        if let Some(reads) = &view.reads {
            head.push(Line::from(Span::styled(text::escape_str(reads), t.style(Role::Muted))));
        }
        let [top, table] =
            Layout::vertical([Constraint::Length(head.len() as u16 + 1), Constraint::Fill(1)]).areas(inner);
        Paragraph::new(head).render(top, buf);
        let width = match inner.width {
            w if w >= 110 => Width::Wide,
            w if w >= 95 => Width::Medium,
            _ => Width::Narrow,
        };
        let narrow = width == Width::Narrow;
        let mut titles = vec!["ROLE", "ADDRESS", "SLOTS", "KEYS", "MEMORY"];
        let mut widths = vec![
            Constraint::Length(8),
            Constraint::Length(if narrow { 18 } else { 22 }),
            Constraint::Length(match width {
                Width::Wide => 28,
                Width::Medium => 18,
                Width::Narrow => 16,
            }),
            Constraint::Length(8),
            Constraint::Length(if narrow { 9 } else { 20 }),
        ];
        if !narrow {
            titles.push("OPS/S");
            widths.push(Constraint::Length(7));
        }
        if width == Width::Wide {
            titles.extend(["CLIENTS", "OWN CPU"]);
            widths.extend([Constraint::Length(8), Constraint::Length(8)]);
        }
        titles.push("STATE");
        widths.push(Constraint::Fill(1));
        let rows: Vec<Row> = view.nodes.iter().skip(self.offset).map(|n| self.row(n, width)).collect();
        Table::new(rows, widths)
            .header(Row::new(titles).style(t.style(Role::Muted)))
            .column_spacing(1)
            .render(table, buf);
    }
}
