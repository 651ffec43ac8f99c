//! The screen's geometry: where each panel of the overview and the inspector goes at a
//! terminal size. A pure function of the size, shared by the drawing and by the update logic
//! (page sizes, mouse clicks), so that neither needs the other.

use ratatui::layout::{Constraint, Layout, Rect};

/// Width from which the server and census panels sit side by side.
pub const WIDE: u16 = 140;
/// Height from which the census panel has room for one bar per stage.
pub const TALL: u16 = 32;

/// Where the overview's panels go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverviewAreas {
    pub header: Rect,
    pub server: Rect,
    pub census: Rect,
    /// The alerts panel; empty (height 0) when there is no finding.
    pub alerts: Rect,
    pub table: Rect,
    pub footer: Rect,
}

/// The findings the alerts panel is about at a terminal size: all of them when the screen is
/// tall, else only warnings and worse (findings come most severe first), so that information
/// never takes a small screen's rows.
pub fn listed_findings(area: Rect, findings: &[crate::engine::domain::Finding]) -> &[crate::engine::domain::Finding] {
    if area.height >= TALL {
        return findings;
    }
    let loud = findings.iter().take_while(|f| f.severity > crate::engine::domain::Severity::Info).count();
    &findings[..loud]
}

/// Findings the alerts panel has lines for at a terminal size (the rest are counted in its
/// title).
pub fn alert_lines(area: Rect, findings: usize) -> u16 {
    let cap = if area.height >= TALL {
        6
    } else if area.height >= 24 {
        1
    } else {
        0
    };
    findings.min(cap) as u16
}

/// Height of the census panel: a totals line and, when tall enough, a bar per stage.
fn census_height(area: Rect) -> u16 {
    if area.height >= TALL { 11 } else { 4 }
}

/// The overview's panels at a terminal size, with `findings` findings to list.
pub fn overview_areas(area: Rect, findings: usize) -> OverviewAreas {
    let [header, body, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    let alert_height = match alert_lines(area, findings) {
        0 => 0,
        lines => lines + 2,
    };

    let server_height = if area.height >= TALL { 6 } else { 5 };
    let (server, census, alerts, table) = if area.width >= WIDE {
        let top = server_height.max(census_height(area));
        let [top, alerts, table] =
            Layout::vertical([Constraint::Length(top), Constraint::Length(alert_height), Constraint::Fill(1)])
                .areas(body);
        let [server, census] = Layout::horizontal([Constraint::Percentage(56), Constraint::Fill(1)]).areas(top);
        (server, census, alerts, table)
    } else {
        let [server, census, alerts, table] = Layout::vertical([
            Constraint::Length(server_height),
            Constraint::Length(census_height(area)),
            Constraint::Length(alert_height),
            Constraint::Fill(1),
        ])
        .areas(body);
        (server, census, alerts, table)
    };
    OverviewAreas { header, server, census, alerts, table, footer }
}

/// Rows of sessions the table shows (inside its border, below its header).
pub fn table_rows(area: Rect, findings: usize) -> usize {
    usize::from(overview_areas(area, findings).table.height.saturating_sub(3))
}

/// Where the inspector's parts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectorAreas {
    pub header: Rect,
    pub summary: Rect,
    pub keys: Rect,
    pub tree: Rect,
    pub history: Rect,
    pub footer: Rect,
}

pub fn inspector_areas(area: Rect, key_count: usize) -> InspectorAreas {
    let keys_height = (key_count as u16 + 3).clamp(4, if area.height >= TALL { 9 } else { 5 });
    let [header, summary, keys, panes, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(keys_height),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let [tree, history] = if area.width >= WIDE {
        Layout::horizontal([Constraint::Percentage(45), Constraint::Fill(1)]).areas(panes)
    } else {
        Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(panes)
    };
    InspectorAreas { header, summary, keys, tree, history, footer }
}

/// Lines a scrolling inspector pane shows at a terminal size, for paging.
pub fn inspector_pane_rows(size: (u16, u16)) -> usize {
    let areas = inspector_areas(Rect::new(0, 0, size.0, size.1), 4);
    usize::from(areas.tree.height.saturating_sub(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fit_small_and_large_terminals() {
        for (w, h) in [(80, 24), (160, 48), (200, 60), (60, 15)] {
            for findings in [0, 1, 20] {
                let a = overview_areas(Rect::new(0, 0, w, h), findings);
                assert_eq!(a.header.height, 1);
                assert_eq!(a.footer.y, h - 1);
                assert!(a.table.height >= 3, "{w}x{h}: {a:?}");
                assert_eq!(a.alerts.height > 0, findings > 0 && h >= 24, "{w}x{h}: {a:?}");
            }
            let i = inspector_areas(Rect::new(0, 0, w, h), 4);
            assert!(i.tree.height >= 2 && i.history.height >= 2, "{w}x{h}: {i:?}");
        }
        assert_eq!(table_rows(Rect::new(0, 0, 80, 24), 0), 10);
        assert_eq!(table_rows(Rect::new(0, 0, 80, 24), 3), 7);
    }
}
