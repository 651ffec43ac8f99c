//! The targets the dashboard watches side by side: a tab each (its [`App`], its theme), the one
//! shown, and what is true across them (which are the same Redis server). Pure state, like
//! [`App`]: keys, mouse, resizes, collector updates, table views and the clock go in, requests
//! for each tab's collectors come out; the event loop only carries them. Tested without a
//! terminal.

use crossterm::event::{Event, KeyEvent, KeyEventKind, MouseEvent};

use crate::dashboard::app::{App, TableView};
use crate::dashboard::keymap::{Action, Keymap};
use crate::dashboard::theme::Theme;
use crate::engine::diagnose::{self, Peer};
use crate::engine::domain::{Millis, Severity};
use crate::engine::msg::{Request, Update};

/// Requests for the collectors of a tab: the tab's index, and what to send it.
pub type Outbox = Vec<(usize, Vec<Request>)>;

/// One target on screen.
#[derive(Debug)]
pub struct Tab {
    /// The name the tab line and the metrics give the target: its config or `--url` name, else
    /// its URL (redacted).
    pub name: String,
    pub app: App,
    pub theme: Theme,
    /// Where the target's server is (`host:port` or a socket path) and the database watched:
    /// two targets at one address are one server.
    pub address: String,
    pub db: i64,
}

/// Every tab, and the one shown.
#[derive(Debug)]
pub struct Tabs {
    pub tabs: Vec<Tab>,
    pub active: usize,
    keymap: Keymap,
}

/// What one tab shows on the line of targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TabSummary {
    pub name: String,
    /// Whether what it shows may be out of date (its connection is not up).
    pub stale: bool,
    /// Live sessions by the last complete census.
    pub sessions: Option<u64>,
    pub worst: Option<Severity>,
    /// Whether another tab is the same store (the same server, database, layout and prefix).
    pub same_store: bool,
}

impl Tabs {
    /// The tabs, the first one shown. `keymap` gives the keys that switch between them.
    pub fn new(tabs: Vec<Tab>, keymap: Keymap) -> Tabs {
        Tabs { tabs, active: 0, keymap }
    }

    /// Whether several targets are watched (and the line of targets is drawn).
    pub fn several(&self) -> bool {
        self.tabs.len() > 1
    }

    /// The tab shown.
    pub fn shown(&self) -> &Tab {
        // `active` is always an index of `tabs`, which is never empty while the loop runs.
        &self.tabs[self.active.min(self.tabs.len().saturating_sub(1))]
    }

    /// The size each app draws in: the terminal's, less the line of targets.
    pub fn app_size(&self, width: u16, height: u16) -> (u16, u16) {
        (width, if self.several() { height.saturating_sub(1) } else { height })
    }

    /// Whether the user asked to quit, in any tab.
    pub fn quit(&self) -> bool {
        self.tabs.iter().any(|t| t.app.quit)
    }

    /// A terminal event: a key that switches targets, or whatever the shown tab makes of it.
    pub fn on_event(&mut self, event: Event) -> Outbox {
        match event {
            Event::Key(key) => self.on_key(key),
            Event::Mouse(mouse) => self.on_mouse(mouse),
            Event::Resize(w, h) => self.on_resize(w, h),
            _ => Vec::new(),
        }
    }

    /// A key: `1`–`9` and `t` choose the target while no dialog, help or filter takes every key;
    /// anything else goes to the shown tab.
    pub fn on_key(&mut self, key: KeyEvent) -> Outbox {
        let active = self.active;
        let count = self.tabs.len();
        let Some(tab) = self.tabs.get(active) else { return Vec::new() };
        if count > 1 && key.kind != KeyEventKind::Release && tab.app.takes_global_keys() {
            let to = match self.keymap.action(&key) {
                Some(Action::NextTarget) => Some((active + 1) % count),
                Some(action) => action.target().map(|n| n.min(count - 1)),
                None => None,
            };
            if let Some(to) = to {
                self.active = to;
                return Vec::new();
            }
        }
        let Some(tab) = self.tabs.get_mut(active) else { return Vec::new() };
        vec![(active, tab.app.on_key(key))]
    }

    /// A mouse event, for the shown tab: rows are counted from below the line of targets.
    pub fn on_mouse(&mut self, mut mouse: MouseEvent) -> Outbox {
        if self.several() {
            if mouse.row == 0 {
                return Vec::new();
            }
            mouse.row -= 1;
        }
        let active = self.active;
        let Some(tab) = self.tabs.get_mut(active) else { return Vec::new() };
        vec![(active, tab.app.on_mouse(mouse))]
    }

    /// The terminal's new size, for every tab.
    pub fn on_resize(&mut self, width: u16, height: u16) -> Outbox {
        let (w, h) = self.app_size(width, height);
        self.tabs.iter_mut().enumerate().map(|(i, t)| (i, t.app.on_resize(w, h))).collect()
    }

    /// An update from tab `i`'s collectors. A server poll may make two targets the same server.
    pub fn on_update(&mut self, i: usize, update: Update) -> Vec<Request> {
        let server = matches!(update, Update::Server { .. });
        let Some(tab) = self.tabs.get_mut(i) else { return Vec::new() };
        let requests = tab.app.on_update(update);
        if server && self.several() {
            self.mark_same_servers();
        }
        requests
    }

    /// What the host room saw: the machine is the same for every tab.
    pub fn on_host(&mut self, update: Update) -> Outbox {
        self.tabs.iter_mut().enumerate().map(|(i, t)| (i, t.app.on_update(update.clone()))).collect()
    }

    /// A view from tab `i`'s table engine; also whether it answers a key on the shown tab (then
    /// it is drawn at once: the frame cap is for data, which never holds a key back).
    pub fn on_view(&mut self, i: usize, view: TableView) -> (Vec<Request>, bool) {
        let Some(tab) = self.tabs.get_mut(i) else { return (Vec::new(), false) };
        let answers_key = i == self.active && tab.app.table.awaits(view.serial);
        (tab.app.on_view(view), answers_key)
    }

    /// The clock, for every tab: the time, the local zone's offset, and each tab's commands sent
    /// so far (by index; a tab without a figure counts none).
    pub fn on_tick(&mut self, now: Millis, utc_offset_s: i32, commands_sent: &[u64]) -> Outbox {
        self.tabs
            .iter_mut()
            .enumerate()
            .map(|(i, t)| {
                t.app.model.utc_offset_s = utc_offset_s;
                (i, t.app.on_tick(now, commands_sent.get(i).copied().unwrap_or(0)))
            })
            .collect()
    }

    /// Tells each tab which other targets are the same Redis server (and which the same store).
    pub fn mark_same_servers(&mut self) {
        let same = {
            let peers: Vec<Peer<'_>> = self.tabs.iter().map(|t| t.app.model.peer(&t.name, &t.address, t.db)).collect();
            diagnose::same_servers(&peers)
        };
        for (tab, same) in self.tabs.iter_mut().zip(same) {
            tab.app.model.set_same_server(same);
        }
    }

    /// What the line of targets shows of each tab.
    pub fn summaries(&self) -> Vec<TabSummary> {
        self.tabs
            .iter()
            .map(|t| {
                let m = &t.app.model;
                TabSummary {
                    name: t.name.clone(),
                    stale: m.is_stale(),
                    sessions: m.census.complete.as_ref().map(|c| c.total),
                    worst: diagnose::worst(&m.findings),
                    same_store: m.same_server.iter().any(|(_, store)| *store),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEventKind};

    use super::*;
    use crate::conn::info::ServerStats;
    use crate::engine::domain::{LinkState, TargetInfo};
    use crate::engine::model::{Model, ModelSettings};

    fn tab(name: &str, address: &str, db: i64) -> Tab {
        let target = TargetInfo { url: format!("redis://{address}/{db}"), name: Some(name.into()), read_only: false };
        let model = Model::new(target, ModelSettings::default(), 0);
        Tab {
            name: name.into(),
            app: App::new(model, Keymap::default(), (120, 39)),
            theme: Theme::load("default").unwrap(),
            address: address.into(),
            db,
        }
    }

    fn three() -> Tabs {
        Tabs::new(vec![tab("trt", "h:1", 0), tab("chatmrpt", "h:1", 1), tab("staging", "h:2", 0)], Keymap::default())
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn number_keys_and_t_choose_the_target() {
        let mut tabs = three();
        assert_eq!(tabs.active, 0);
        assert!(tabs.on_key(key('3')).is_empty(), "a switch asks the collectors for nothing");
        assert_eq!(tabs.active, 2);
        tabs.on_key(key('9'));
        assert_eq!(tabs.active, 2, "past the last target: the last");
        tabs.on_key(key('t'));
        assert_eq!(tabs.active, 0, "t wraps round");
        tabs.on_key(key('t'));
        assert_eq!(tabs.shown().name, "chatmrpt");
    }

    #[test]
    fn a_dialog_or_the_filter_keeps_the_keys() {
        let mut tabs = three();
        tabs.on_key(key('/'));
        assert!(tabs.shown().app.table.editing_filter);
        let out = tabs.on_key(key('2'));
        assert_eq!(tabs.active, 0, "typed into the filter, not a switch");
        assert_eq!(out.len(), 1);
        assert_eq!(tabs.shown().app.table.filter, "2");
    }

    #[test]
    fn one_target_has_no_line_and_keeps_its_number_keys() {
        let mut tabs = Tabs::new(vec![tab("only", "h:1", 0)], Keymap::default());
        assert!(!tabs.several());
        assert_eq!(tabs.app_size(80, 24), (80, 24));
        tabs.on_key(key('2'));
        assert_eq!(tabs.active, 0);
        assert_eq!(three().app_size(80, 24), (80, 23), "the line of targets takes a row");
    }

    #[test]
    fn the_mouse_counts_rows_from_below_the_line_of_targets() {
        let mut tabs = three();
        let click = |row| MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: 3,
            row,
            modifiers: KeyModifiers::NONE,
        };
        assert!(tabs.on_mouse(click(0)).is_empty(), "the line of targets itself");
        assert_eq!(tabs.on_mouse(click(5))[0].0, 0, "the shown tab's");
    }

    #[test]
    fn host_samples_and_resizes_reach_every_tab() {
        let mut tabs = three();
        let host = crate::engine::domain::HostStats { cpu_percent: 12.5, ..Default::default() };
        assert_eq!(tabs.on_host(Update::Host(Box::new(host))).len(), 3);
        assert!(tabs.tabs.iter().all(|t| t.app.model.host.as_ref().is_some_and(|h| h.cpu_percent == 12.5)));
        tabs.on_resize(100, 30);
        assert!(tabs.tabs.iter().all(|t| t.app.size == (100, 29)));
    }

    #[test]
    fn targets_at_one_address_are_one_server_and_the_same_store_is_said_loudly() {
        let mut tabs = three();
        let stats = |run_id: &str| ServerStats { run_id: Some(run_id.into()), ..Default::default() };
        let server = |s| Update::Server { stats: Box::new(s), unavailable: Vec::new() };
        tabs.on_update(0, server(stats("a")));
        tabs.on_update(1, server(stats("a")));
        tabs.on_update(2, server(stats("b")));
        assert_eq!(tabs.tabs[0].app.model.same_server, vec![("chatmrpt".to_string(), false)]);
        assert!(tabs.tabs[2].app.model.same_server.is_empty());
        // The staging target turns out to be the same server and the same store as trt.
        tabs.tabs[2].db = 0;
        tabs.tabs[2].address = "h:1".into();
        tabs.on_update(2, server(stats("a")));
        let line = tabs.summaries();
        assert!(!line[0].same_store, "no layout known yet: the same server, not provably the same store");
        let layout = crate::engine::domain::LayoutInfo::new(
            &crate::engine::layout::Layout::builtin(crate::engine::layout::LayoutKind::Trt, &Default::default())
                .unwrap(),
            None,
        );
        for i in [0, 2] {
            tabs.on_update(i, Update::Layout(Box::new(layout.clone())));
        }
        tabs.on_update(0, server(stats("a")));
        let line = tabs.summaries();
        assert!(line[0].same_store && line[2].same_store && !line[1].same_store, "{line:?}");
        assert_eq!(line[0].worst, Some(Severity::Critical), "the same store twice is critical");
    }

    #[test]
    fn the_clock_moves_every_tab_with_its_own_command_count() {
        let mut tabs = three();
        tabs.on_update(1, Update::Link(LinkState::Connected { since: 0 }));
        tabs.on_tick(1000, 3600, &[10, 20]);
        tabs.on_tick(3000, 3600, &[30, 60]);
        let rates: Vec<Option<f64>> = tabs.tabs.iter().map(|t| t.app.model.own.commands_per_sec).collect();
        assert_eq!(rates, vec![Some(10.0), Some(20.0), Some(0.0)]);
        assert!(tabs.tabs.iter().all(|t| t.app.model.utc_offset_s == 3600));
        let line = tabs.summaries();
        assert!(line[0].stale && !line[1].stale, "only the second is connected");
    }
}
