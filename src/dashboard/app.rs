//! The dashboard's state and how it changes: keys, mouse, collector updates and the clock go in,
//! requests for the collectors come out. No I/O and no drawing happen here, so every key and
//! dialog can be tested without a terminal.

use std::collections::HashSet;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::dashboard::geometry;
use crate::dashboard::keymap::{Action, Keymap, Scope};
use crate::dashboard::tree::{self, TreeLine};
use crate::engine::domain::{FindingKind, Millis, SessionRow};
use crate::engine::model::Model;
use crate::engine::msg::{PlanReply, Request, Update, WriteKind, WritePlan};
use crate::engine::names::SessionId;
use crate::engine::table::{self, Engine, Message, Rules, TableRequest};
pub use crate::engine::table::{SortColumn, TableView};

/// The keys the dashboard answers: its screens', switching targets, and its dialogs'.
pub const DASHBOARD_SCOPES: &[Scope] = &[Scope::Screen, Scope::Targets, Scope::Dialog];
/// The keys a replay answers: its own first, then the charts'.
pub const REPLAY_SCOPES: &[Scope] = &[Scope::Replay, Scope::Screen];

/// How long a status message stays.
pub const STATUS_TTL_MS: i64 = 6000;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Inspector,
    /// Every figure over time (`c`).
    Charts,
    /// The nodes of a target made of several (`n`).
    Nodes,
    Clients,
    /// What happens to sessions, live, from keyspace notifications (`E`).
    Events,
    /// The slow commands the servers logged (`L`).
    Slowlog,
}

/// The windows the charts show, in turn (`w`).
pub const CHART_WINDOWS: [Millis; 5] = [60_000, 5 * 60_000, 60 * 60_000, 6 * 60 * 60_000, 24 * 60 * 60_000];
/// The window the charts open with: 5 minutes.
const CHART_WINDOW_DEFAULT: usize = 1;

/// What the charts view shows: which figure, over which window, and where the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartsState {
    /// The figure charted: an index into [`crate::engine::history::FIGURES`], then into
    /// [`crate::engine::history::GROUPS`].
    pub selected: usize,
    /// An index into [`CHART_WINDOWS`].
    pub window: usize,
    /// How far before the newest time the cursor is.
    pub cursor_back_ms: Millis,
}

impl Default for ChartsState {
    fn default() -> Self {
        ChartsState { selected: 0, window: CHART_WINDOW_DEFAULT, cursor_back_ms: 0 }
    }
}

impl ChartsState {
    pub fn window_ms(&self) -> Millis {
        CHART_WINDOWS[self.window.min(CHART_WINDOWS.len() - 1)]
    }

    /// One move of the cursor: a sixtieth of the window.
    pub fn cursor_step_ms(&self) -> Millis {
        self.window_ms() / 60
    }
}

/// Which overview panel has the focus (Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Sessions,
    /// The alerts panel: up and down choose a finding, Enter shows its sessions.
    Alerts,
    Server,
}

/// Which inspector pane has the focus (Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Keys,
    Tree,
    History,
}

/// The session table's state: what the user asked for (sort, filter, selection, scroll),
/// shown at once, and the last view the table engine sent for it. Rows are identified by
/// session id, so updates never move the selection to another session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableState {
    pub sort: SortColumn,
    pub reverse: bool,
    pub filter: String,
    pub editing_filter: bool,
    pub selected: Option<SessionId>,
    /// Index of the first visible row.
    pub offset: usize,
    /// What the engine last sent: the order's length, a window of rows, stalled counts.
    pub view: TableView,
    /// A position to select as soon as a view holds it (a move past the rows at hand).
    pending: Option<usize>,
    serial: u64,
    /// Whether the user moved the selection off the first row. Until then the selection is the
    /// head of the list, whatever session comes first there (a list watched from its head shows
    /// the freshest sessions as they come); once moved, it follows its session.
    moved: bool,
}

impl TableState {
    /// Whether a view with this serial answers the newest request and has not arrived yet.
    pub fn awaits(&self, serial: u64) -> bool {
        serial == self.serial && self.view.serial != serial
    }

    pub fn sort_column(&self) -> SortColumn {
        self.sort
    }

    /// Rows in the order (after the filter).
    pub fn len(&self) -> usize {
        self.view.len
    }

    pub fn is_empty(&self) -> bool {
        self.view.len == 0
    }

    /// The selected row's index in the order.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_ref()?;
        self.view.index_of(id).or(self.view.selected_index.filter(|_| self.pending.is_none()))
    }

    /// The ids of the rows the last view holds, in order (the whole order of a small table).
    pub fn ids(&self) -> Vec<SessionId> {
        self.view.window.iter().map(|r| r.id.clone()).collect()
    }

    /// The rows from the first visible one on, as far as the view holds them.
    pub fn visible(&self) -> impl Iterator<Item = &SessionRow> {
        let skip = self.offset.saturating_sub(self.view.window_start);
        self.view.window.iter().skip(skip).filter(move |_| self.offset >= self.view.window_start)
    }
}

/// Where the table's rows live: on the engine's own thread (the dashboard), or inline (tests,
/// screenshots: every view is worked out at once).
pub enum TableEngine {
    Inline(Box<Engine>),
    Thread(table::Worker),
}

impl std::fmt::Debug for TableEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableEngine::Inline(_) => "TableEngine::Inline",
            TableEngine::Thread(_) => "TableEngine::Thread",
        })
    }
}

/// The inspector's state.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectorState {
    pub id: SessionId,
    pub pane: Pane,
    pub keys_offset: usize,
    pub tree_cursor: usize,
    pub tree_offset: usize,
    pub history_offset: usize,
    /// Paths of folded tree nodes.
    pub folded: HashSet<String>,
    pub raw: bool,
    /// The tree as folded, built when the report, the folds or the raw view change (never per
    /// frame or per key).
    pub lines: Vec<TreeLine>,
}

/// A dialog over the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    /// `e`: how many seconds.
    ExpireInput { id: SessionId, input: String, error: Option<String> },
    /// Waiting for the collector to list what a write would change; `progress` is how far its
    /// search of the keyspace for the session's wildcard keys has come.
    Planning { id: SessionId, kind: WriteKind, progress: Option<f64> },
    /// The exact keys a write will change; `yes` is the highlighted answer (default No).
    Confirm { plan: WritePlan, yes: bool },
    /// Waiting for the collector to plan the writes that fix a finding.
    /// `of`: how many sessions the finding counts in all (the fix covers those it names).
    PlanningFix { kind: FindingKind, of: u64 },
    /// Every write a fix will make, session by session, and how many sessions it leaves out.
    ConfirmFix { kind: FindingKind, of: u64, plans: Vec<WritePlan>, skipped: usize, yes: bool },
}

/// How a status message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A transient message in the footer.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub at: Millis,
    pub text: String,
    pub level: Level,
}

/// The whole dashboard state.
#[derive(Debug)]
pub struct App {
    pub model: Model,
    /// What the screen shows while frozen (`f`): the model and the table as they were; the
    /// live ones keep updating underneath.
    pub frozen: Option<Box<(Model, TableView)>>,
    pub screen: Screen,
    pub focus: Focus,
    pub table: TableState,
    pub inspector: Option<InspectorState>,
    pub charts: ChartsState,
    /// The first node the nodes view shows.
    pub nodes_offset: usize,
    /// The first host the clients view shows.
    pub clients_offset: usize,
    /// The first event shown in the events view (0: the newest).
    pub events_offset: usize,
    /// The first slow command shown in the slowlog view.
    pub slowlog_offset: usize,
    pub dialog: Option<Dialog>,
    pub help: bool,
    /// The keymap's scopes this app answers, and its help lists: the dashboard's, or a
    /// replay's.
    pub scopes: &'static [Scope],
    pub status: Option<Status>,
    pub keymap: Keymap,
    /// The finding chosen in the alerts panel.
    pub alert_selected: usize,
    /// The terminal's size, for layout and mouse clicks.
    pub size: (u16, u16),
    pub quit: bool,
    last_viewport: Vec<SessionId>,
    table_engine: TableEngine,
    rules_sent: Option<Rules>,
    clock_sent: Option<Millis>,
}

impl App {
    /// An app whose table is worked out inline, at once (tests and screenshots).
    pub fn new(model: Model, keymap: Keymap, size: (u16, u16)) -> App {
        let mut engine = Engine::new(table::DEFAULT_MAX_ROWS);
        engine.set_immediate();
        App::with_table(model, keymap, size, TableEngine::Inline(Box::new(engine)))
    }

    /// An app whose table lives on `table` (the dashboard's engine thread, sending views back
    /// to [`App::on_view`]).
    pub fn with_table(model: Model, keymap: Keymap, size: (u16, u16), table: TableEngine) -> App {
        let mut app = App {
            model,
            frozen: None,
            screen: Screen::Overview,
            focus: Focus::Sessions,
            table: TableState::default(),
            inspector: None,
            charts: ChartsState::default(),
            nodes_offset: 0,
            clients_offset: 0,
            events_offset: 0,
            slowlog_offset: 0,
            dialog: None,
            help: false,
            scopes: DASHBOARD_SCOPES,
            status: None,
            keymap,
            alert_selected: 0,
            size,
            quit: false,
            last_viewport: Vec::new(),
            table_engine: table,
            rules_sent: None,
            clock_sent: None,
        };
        app.feed_table();
        app.request_view(true);
        // Nothing has asked the collectors for the rows on screen yet.
        app.last_viewport.clear();
        app
    }

    /// The model the screen shows: the frozen copy, or the live one.
    pub fn shown(&self) -> &Model {
        self.frozen.as_deref().map_or(&self.model, |(m, _)| m)
    }

    /// The table the screen shows: the frozen copy, or the live one.
    pub fn shown_table(&self) -> &TableView {
        self.frozen.as_deref().map_or(&self.table.view, |(_, v)| v)
    }

    /// Sends a message to the table engine.
    fn send_table(&mut self, message: Message) {
        match &mut self.table_engine {
            TableEngine::Inline(engine) => engine.apply(message),
            TableEngine::Thread(worker) => {
                // The engine ends only with the program.
                let _ = worker.messages.send(message);
            }
        }
    }

    /// Rows an update carries go to the table engine at once; the model keeps the rest.
    fn send_rows(&mut self, update: &mut Update) {
        let message = match update {
            Update::Page { rows, .. } => Message::Rows { rows: std::mem::take(rows), generation: None },
            Update::CensusBatch { generation, rows, .. } => {
                Message::Rows { rows: std::mem::take(rows), generation: Some(*generation) }
            }
            Update::Gone { ids } => Message::Gone(std::mem::take(ids)),
            // Sessions not seen by this pass have expired or been deleted.
            Update::CensusDone { generation, .. } => Message::PassDone { generation: *generation },
            _ => return,
        };
        self.send_table(message);
    }

    /// Gives the table the clock and the rules its rows are judged by, when they changed.
    fn feed_table(&mut self) {
        if self.clock_sent != Some(self.model.now) {
            self.clock_sent = Some(self.model.now);
            self.send_table(Message::Clock(self.model.now));
        }
        let totals = self.model.census.totals();
        let rules = Rules {
            idle: self.model.settings.idle,
            lifetime_s: self.model.lifetime_s(),
            stalled_after_s: self.model.settings.stalled_after_s,
            stage_limits: self.model.settings.stage_limits.clone(),
            finals: self.model.settings.finals.clone(),
            by_substate: !totals.by_substate.is_empty(),
            markers: self.model.layout.as_ref().map(|l| l.markers.clone()).unwrap_or_default(),
            id_fields: self.model.layout.as_ref().map(|l| l.id_fields.clone()).unwrap_or_default(),
        };
        if self.rules_sent.as_ref() != Some(&rules) {
            self.rules_sent = Some(rules.clone());
            self.send_table(Message::Rules(rules));
        }
        self.pump_inline();
    }

    /// Asks the table engine for the view the table state calls for; `follow` keeps the
    /// selected row on screen.
    fn request_view(&mut self, follow: bool) {
        self.table.serial += 1;
        let request = TableRequest {
            sort: self.table.sort,
            reverse: self.table.reverse,
            filter: self.table.filter.clone(),
            offset: self.table.offset,
            rows: self.table_rows().max(1),
            selected: self.table.selected.clone(),
            follow,
            serial: self.table.serial,
        };
        self.send_table(Message::Request(request));
        self.pump_inline();
    }

    /// An inline engine answers at once.
    fn pump_inline(&mut self) {
        let view = match &mut self.table_engine {
            TableEngine::Inline(engine) => engine.view(std::time::Instant::now()),
            TableEngine::Thread(_) => None,
        };
        if let Some(view) = view {
            self.apply_view(view);
        }
    }

    /// A view from the table engine. Returns requests for the collectors (the rows on screen).
    pub fn on_view(&mut self, view: TableView) -> Vec<Request> {
        self.apply_view(view);
        self.viewport_request().into_iter().collect()
    }

    fn apply_view(&mut self, view: TableView) {
        let order = if self.model.settings.substates.is_empty() {
            &self.model.settings.stages
        } else {
            &self.model.settings.substates
        };
        let mut by_stage: Vec<(String, u64)> = view.stalled_by.iter().map(|(k, n)| (k.clone(), *n as u64)).collect();
        by_stage.sort_by_key(|(label, _)| (order.iter().position(|o| o == label).unwrap_or(usize::MAX), label.clone()));
        self.model.set_stalled(view.stalled as u64, by_stage, view.stalled_pass);
        let t = &mut self.table;
        // Only the answer to the newest request moves the scroll; any answer brings rows.
        let current = view.serial == t.serial;
        if current {
            t.offset = view.offset;
        }
        t.view = view;
        let len = t.view.len;
        if let Some(target) = t.pending {
            let target = target.min(len.saturating_sub(1));
            if let Some(row) = t.view.row_at(target) {
                t.selected = Some(row.id.clone());
                t.pending = None;
            }
        }
        if !t.moved && t.pending.is_none() && t.view.selected_index != Some(0) {
            // At the head: the first row, whichever session it now is.
            t.offset = 0;
            t.selected = t.view.row_at(0).map(|r| r.id.clone());
        }
        if t.pending.is_none() && (t.selected.is_none() || t.view.selected_index.is_none() && current) {
            // The selected session is gone or filtered out: select what is on screen.
            t.selected = t.view.row_at(t.offset).or_else(|| t.view.window.first()).map(|r| r.id.clone());
        }
        self.keep_selection_visible();
    }

    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some(Status { at: self.model.now, text: text.into(), level });
    }

    /// A collector update. Returns requests to send back.
    pub fn on_update(&mut self, update: Update) -> Vec<Request> {
        match &update {
            Update::Plan(reply) => {
                let reply = reply.clone();
                self.model.apply(update);
                return self.on_plan(reply);
            }
            Update::WriteDone { message, ok } => {
                let level = if *ok { Level::Info } else { Level::Error };
                self.say(level, crate::util::text::escape_str(message));
            }
            Update::Notice(message) => self.say(Level::Warn, crate::util::text::escape_str(message)),
            Update::FixPlans { kind, plans, skipped } => {
                if let Some(Dialog::PlanningFix { kind: planning, of }) = self.dialog
                    && planning == *kind
                {
                    if plans.is_empty() {
                        self.dialog = None;
                        let why = skipped.first().map(|(id, why)| format!(" ('{id}': {why})")).unwrap_or_default();
                        self.say(
                            Level::Warn,
                            format!("nothing to fix for {}{}", kind.name(), crate::util::text::escape_str(&why)),
                        );
                    } else {
                        self.dialog = Some(Dialog::ConfirmFix {
                            kind: *kind,
                            of,
                            plans: plans.clone(),
                            skipped: skipped.len(),
                            yes: false,
                        });
                    }
                }
            }
            Update::Searching { id, progress } => {
                if let Some(Dialog::Planning { id: planned, progress: shown, .. }) = self.dialog.as_mut()
                    && planned == id
                {
                    *shown = *progress;
                }
            }
            _ => {}
        }
        let report = matches!(update, Update::Inspect(_));
        let rows = self.table_rows();
        let mut update = update;
        self.send_rows(&mut update);
        self.model.apply(update);
        if report && self.frozen.is_none() {
            self.rebuild_tree();
        }
        self.feed_table();
        // The alerts panel grew or shrank: the table has room for more or fewer rows.
        if self.table_rows() != rows {
            self.keep_selection_visible();
            self.request_view(false);
        }
        self.alert_selected = self.alert_selected.min(self.listed_findings().len().saturating_sub(1));
        self.viewport_request().into_iter().collect()
    }

    fn on_plan(&mut self, reply: PlanReply) -> Vec<Request> {
        let Some(Dialog::Planning { id, kind, .. }) = self.dialog.clone() else { return Vec::new() };
        match reply {
            PlanReply::Ready(plan) if plan.id == id && plan.kind == kind => {
                self.dialog = Some(Dialog::Confirm { plan, yes: false });
            }
            PlanReply::Failed { id: failed, kind: failed_kind, error } if failed == id && failed_kind == kind => {
                self.dialog = None;
                self.say(
                    Level::Error,
                    format!("{} not possible: {}", kind.verb(), crate::util::text::escape_str(&error)),
                );
            }
            _ => {}
        }
        Vec::new()
    }

    /// The clock: the model's time and sessiontop's own command count.
    pub fn on_tick(&mut self, now: Millis, own_commands_total: u64) -> Vec<Request> {
        self.model.tick(now, own_commands_total);
        if self.status.as_ref().is_some_and(|s| now - s.at > STATUS_TTL_MS) {
            self.status = None;
        }
        self.feed_table();
        self.viewport_request().into_iter().collect()
    }

    pub fn on_resize(&mut self, width: u16, height: u16) -> Vec<Request> {
        self.size = (width, height);
        self.keep_selection_visible();
        self.request_view(true);
        self.viewport_request().into_iter().collect()
    }

    /// Whether a key may mean something beyond this app (switching targets): not while a
    /// dialog, the help or the filter takes every key.
    pub fn takes_global_keys(&self) -> bool {
        self.dialog.is_none() && !self.help && !self.table.editing_filter
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        // A quit key with Ctrl or Alt (Ctrl-C) quits whatever is open; a plain one (q) is text
        // in a dialog or the filter.
        let chorded = key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if chorded && self.keymap.action_in(&[Scope::Screen], &key) == Some(Action::Quit) {
            self.quit = true;
            return Vec::new();
        }
        let mut requests = if self.dialog.is_some() {
            self.on_dialog_key(key)
        } else if self.table.editing_filter {
            self.on_filter_key(key);
            Vec::new()
        } else if self.help {
            self.help = false;
            Vec::new()
        } else {
            match self.keymap.action(&key) {
                Some(action) => self.on_action(action),
                None => Vec::new(),
            }
        };
        requests.extend(self.viewport_request());
        requests
    }

    fn on_action(&mut self, action: Action) -> Vec<Request> {
        match action {
            Action::Quit => {
                self.quit = true;
                Vec::new()
            }
            Action::Help => {
                self.help = true;
                Vec::new()
            }
            Action::Refresh => {
                self.say(Level::Info, "refreshing");
                vec![Request::Refresh]
            }
            Action::Freeze => {
                if self.frozen.take().is_none() {
                    self.frozen = Some(Box::new((self.model.clone(), self.table.view.clone())));
                    self.say(
                        Level::Info,
                        format!("frozen: updates continue underneath; {} to resume", self.keymap.label(Action::Freeze)),
                    );
                } else {
                    self.say(Level::Info, "resumed");
                }
                self.rebuild_tree();
                Vec::new()
            }
            Action::Expire | Action::Persist | Action::Delete
                if !matches!(
                    self.screen,
                    Screen::Charts | Screen::Nodes | Screen::Clients | Screen::Events | Screen::Slowlog
                ) =>
            {
                self.start_write(action)
            }
            Action::Baseline => {
                if self.model.baseline.take().is_some() {
                    self.say(Level::Info, "baseline cleared");
                } else {
                    self.model.baseline = Some(self.model.now);
                    let at = crate::util::text::clock(self.model.now, self.model.utc_offset_s);
                    self.say(Level::Info, format!("baseline at {at}: the panels show changes since then"));
                }
                // The watch of sessions judges its windows against the hour before it.
                vec![Request::Baseline(self.model.baseline)]
            }
            Action::Charts | Action::Nodes | Action::Clients | Action::Events | Action::Slowlog => {
                let view = match action {
                    Action::Charts => Screen::Charts,
                    Action::Nodes => Screen::Nodes,
                    Action::Clients => Screen::Clients,
                    Action::Events => Screen::Events,
                    _ => Screen::Slowlog,
                };
                // Its key again goes back.
                self.screen = if self.screen == view { Screen::Overview } else { view };
                Vec::new()
            }
            _ => match self.screen {
                Screen::Overview => self.on_overview_action(action),
                Screen::Inspector => self.on_inspector_action(action),
                Screen::Charts => {
                    self.on_charts_action(action);
                    Vec::new()
                }
                Screen::Nodes | Screen::Clients | Screen::Events | Screen::Slowlog => {
                    self.on_list_action(action);
                    Vec::new()
                }
            },
        }
    }

    fn on_overview_action(&mut self, action: Action) -> Vec<Request> {
        let page = self.table_rows().max(1);
        if self.focus == Focus::Alerts
            && let Some(done) = self.on_alerts_action(action)
        {
            return done;
        }
        match action {
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-(page as i64)),
            Action::PageDown => self.move_selection(page as i64),
            Action::Top => self.move_selection(i64::MIN / 2),
            Action::Bottom => self.move_selection(i64::MAX / 2),
            Action::Inspect => {
                if let Some(id) = self.table.selected.clone() {
                    return self.open_inspector(id);
                }
            }
            Action::Back if !self.table.filter.is_empty() => {
                self.table.filter.clear();
                self.request_view(true);
            }
            Action::Filter => self.table.editing_filter = true,
            Action::Fix => self.say(Level::Info, "choose a finding to fix: Tab to the alerts, then x"),
            // The header shows the new sort at once; the rows follow when the engine answers.
            Action::SortNext => {
                self.table.sort = self.table.sort.next();
                self.table.reverse = false;
                self.request_view(true);
            }
            Action::SortReverse => {
                self.table.reverse = !self.table.reverse;
                self.request_view(true);
            }
            Action::NextPanel => {
                let alerts = !self.listed_findings().is_empty();
                self.focus = match self.focus {
                    Focus::Sessions if alerts => Focus::Alerts,
                    Focus::Sessions | Focus::Alerts => Focus::Server,
                    Focus::Server => Focus::Sessions,
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// Keys while the alerts panel has the focus: moving chooses a finding, Enter shows the
    /// sessions it is about in the table (the filter `is:KIND`). Other keys act as elsewhere.
    fn on_alerts_action(&mut self, action: Action) -> Option<Vec<Request>> {
        let findings = self.listed_findings();
        if findings.is_empty() {
            self.focus = Focus::Sessions;
            return None;
        }
        let last = findings.len() - 1;
        match action {
            Action::Up => self.alert_selected = self.alert_selected.saturating_sub(1),
            Action::Down => self.alert_selected = (self.alert_selected + 1).min(last),
            Action::Top => self.alert_selected = 0,
            Action::Bottom => self.alert_selected = last,
            Action::Fix => return Some(self.start_fix()),
            Action::Inspect => {
                let f = &findings[self.alert_selected.min(last)];
                if f.kind.is_server() {
                    let text = format!("{}: about the server, not sessions", f.kind.name());
                    self.say(Level::Info, text);
                } else if f.kind == crate::engine::domain::FindingKind::Orphaned
                    || f.kind == crate::engine::domain::FindingKind::SessionsDropped
                {
                    let text = format!("{}: the sessions are gone, so the table has no rows for them", f.kind.name());
                    self.say(Level::Info, text);
                } else {
                    self.table.filter = format!("{}{}", table::KIND_FILTER, f.kind.name());
                    self.table.offset = 0;
                    self.focus = Focus::Sessions;
                    self.request_view(true);
                }
            }
            _ => return None,
        }
        Some(Vec::new())
    }

    /// `x` on a finding: plans its fix for the sessions the finding names, for confirmation.
    /// Stuck sessions are expired or deleted from the table (`is:stuck`, then `e` or `d`).
    fn start_fix(&mut self) -> Vec<Request> {
        let findings = self.listed_findings();
        let Some(f) = findings.get(self.alert_selected.min(findings.len().saturating_sub(1))) else {
            return Vec::new();
        };
        let (kind, of, ids): (FindingKind, u64, Vec<SessionId>) =
            (f.kind, f.count, f.sample.iter().filter_map(|s| s.id.clone()).collect());
        if !matches!(kind, FindingKind::Orphaned | FindingKind::NoTtl | FindingKind::StaleLock) {
            let hint = match kind {
                FindingKind::Stuck => "show them with Enter, then expire (e) or delete (d) each".to_string(),
                _ => "nothing sessiontop can change fixes it".to_string(),
            };
            self.say(Level::Info, format!("{}: {hint}", kind.name()));
            return Vec::new();
        }
        if self.model.target.read_only {
            self.say(Level::Warn, "read-only: fixes are off for this target");
            return Vec::new();
        }
        if ids.is_empty() {
            self.say(Level::Info, format!("{}: no session named to fix", kind.name()));
            return Vec::new();
        }
        self.dialog = Some(Dialog::PlanningFix { kind, of });
        vec![Request::PlanFix { kind, ids, ttl_s: self.model.lifetime_s() }]
    }

    fn open_inspector(&mut self, id: SessionId) -> Vec<Request> {
        self.screen = Screen::Inspector;
        self.inspector = Some(InspectorState {
            id: id.clone(),
            pane: Pane::Tree,
            keys_offset: 0,
            tree_cursor: 0,
            tree_offset: 0,
            history_offset: 0,
            folded: HashSet::new(),
            raw: false,
            lines: Vec::new(),
        });
        // Forget a report about another session.
        if self.model.inspect.as_ref().is_some_and(|r| r.id != id) {
            self.model.inspect = None;
        }
        self.rebuild_tree();
        vec![Request::Inspect(Some(id))]
    }

    fn on_inspector_action(&mut self, action: Action) -> Vec<Request> {
        let rows = geometry::inspector_pane_rows(self.size);
        let history = self.shown().inspect.as_ref().map_or(0, |r| r.history.len());
        let keys = self.shown().inspect.as_ref().map_or(0, |r| r.keys.len());
        let Some(state) = self.inspector.as_mut() else { return Vec::new() };
        let step = |action: Action| -> i64 {
            match action {
                Action::Up => -1,
                Action::Down => 1,
                Action::PageUp => -(rows.max(1) as i64),
                Action::PageDown => rows.max(1) as i64,
                Action::Top => i64::MIN / 2,
                Action::Bottom => i64::MAX / 2,
                _ => 0,
            }
        };
        match action {
            Action::Back => {
                self.screen = Screen::Overview;
                self.inspector = None;
                return vec![Request::Inspect(None)];
            }
            Action::NextPanel => {
                state.pane = match state.pane {
                    Pane::Keys => Pane::Tree,
                    Pane::Tree => Pane::History,
                    Pane::History => Pane::Keys,
                }
            }
            Action::Raw => {
                state.raw = !state.raw;
                self.rebuild_tree();
            }
            Action::Fold | Action::Inspect if state.pane == Pane::Tree => {
                if let Some(line) = state.lines.get(state.tree_cursor).filter(|l| l.foldable) {
                    let path = line.path.clone();
                    if !state.folded.remove(&path) {
                        state.folded.insert(path);
                    }
                    self.rebuild_tree();
                }
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown | Action::Top | Action::Bottom => {
                let delta = step(action);
                match state.pane {
                    Pane::Tree => {
                        state.tree_cursor = clamp_add(state.tree_cursor, delta, state.lines.len());
                        if state.tree_cursor < state.tree_offset {
                            state.tree_offset = state.tree_cursor;
                        } else if state.tree_cursor >= state.tree_offset + rows.max(1) {
                            state.tree_offset = state.tree_cursor + 1 - rows.max(1);
                        }
                    }
                    Pane::History => state.history_offset = clamp_add(state.history_offset, delta, history),
                    Pane::Keys => state.keys_offset = clamp_add(state.keys_offset, delta, keys),
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// The inspector's tree as currently folded.
    pub fn tree_lines(&self) -> &[TreeLine] {
        self.inspector.as_ref().map_or(&[], |state| state.lines.as_slice())
    }

    /// Builds the inspector's tree from the report shown, as folded; keeps the cursor on a line.
    fn rebuild_tree(&mut self) {
        let lines = match (&self.inspector, &self.shown().inspect) {
            (Some(state), Some(report)) if report.id == state.id => tree::tree_lines(report, state.raw, &state.folded),
            _ => Vec::new(),
        };
        if let Some(state) = self.inspector.as_mut() {
            state.tree_cursor = state.tree_cursor.min(lines.len().saturating_sub(1));
            state.tree_offset = state.tree_offset.min(state.tree_cursor);
            state.lines = lines;
        }
    }

    /// The session a write key acts on: the inspected one, else the selected row.
    fn write_target(&self) -> Option<SessionId> {
        match self.screen {
            Screen::Inspector => self.inspector.as_ref().map(|i| i.id.clone()),
            Screen::Overview => self.table.selected.clone(),
            Screen::Charts | Screen::Nodes | Screen::Clients | Screen::Events | Screen::Slowlog => None,
        }
    }

    /// Keys of the views that are a list (nodes, clients, events, the slowlog): scroll it, go
    /// back.
    fn on_list_action(&mut self, action: Action) {
        let m = self.shown();
        let count = match self.screen {
            Screen::Nodes => m.nodes.as_ref().map_or(0, |v| v.nodes.len()),
            Screen::Clients => m.clients.as_ref().map_or(0, |v| v.hosts.len()),
            Screen::Events => m.events.len(),
            Screen::Slowlog => m.slowlog.as_ref().map_or(0, |v| v.entries.len()),
            _ => return,
        };
        let offset = match self.screen {
            Screen::Nodes => &mut self.nodes_offset,
            Screen::Clients => &mut self.clients_offset,
            Screen::Events => &mut self.events_offset,
            _ => &mut self.slowlog_offset,
        };
        if !scroll(offset, count, action) && action == Action::Back {
            self.screen = Screen::Overview;
        }
    }

    /// Keys of the charts view: choose the figure, the window, move the cursor, go back.
    fn on_charts_action(&mut self, action: Action) {
        let figures = crate::engine::history::FIGURES.len() + crate::engine::history::GROUPS.len();
        let c = &mut self.charts;
        match action {
            Action::Up => c.selected = c.selected.saturating_sub(1),
            Action::Down => c.selected = (c.selected + 1).min(figures - 1),
            Action::Top => c.selected = 0,
            Action::Bottom => c.selected = figures - 1,
            Action::ChartWindow => {
                c.window = (c.window + 1) % CHART_WINDOWS.len();
                c.cursor_back_ms = c.cursor_back_ms.min(c.window_ms());
            }
            Action::CursorBack => c.cursor_back_ms = (c.cursor_back_ms + c.cursor_step_ms()).min(c.window_ms()),
            Action::CursorForward => c.cursor_back_ms = c.cursor_back_ms.saturating_sub(c.cursor_step_ms()),
            Action::Back => self.screen = Screen::Overview,
            _ => {}
        }
    }

    fn start_write(&mut self, action: Action) -> Vec<Request> {
        if self.model.target.read_only {
            self.say(Level::Warn, format!("read-only: {} is off for this target", action.short()));
            return Vec::new();
        }
        let Some(id) = self.write_target() else {
            self.say(Level::Warn, "no session selected");
            return Vec::new();
        };
        match action {
            Action::Expire => {
                self.dialog = Some(Dialog::ExpireInput { id, input: String::new(), error: None });
                Vec::new()
            }
            Action::Persist => self.request_plan(id, WriteKind::Persist),
            _ => self.request_plan(id, WriteKind::Delete),
        }
    }

    fn request_plan(&mut self, id: SessionId, kind: WriteKind) -> Vec<Request> {
        self.dialog = Some(Dialog::Planning { id: id.clone(), kind, progress: None });
        vec![Request::PlanWrite { id, kind }]
    }

    fn on_dialog_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let action = self.keymap.action_in(&[Scope::Dialog], &key);
        let Some(dialog) = self.dialog.as_mut() else { return Vec::new() };
        match dialog {
            Dialog::ExpireInput { id, input, error } => match (action, key.code) {
                (Some(Action::Cancel), _) => self.dialog = None,
                (Some(Action::Answer), _) => match crate::util::text::parse_duration(input) {
                    Ok(d) if d.as_secs() >= 1 => {
                        let id = id.clone();
                        return self.request_plan(id, WriteKind::Expire(d.as_secs() as i64));
                    }
                    Ok(_) => *error = Some("at least 1 second".into()),
                    Err(e) => *error = Some(e.to_string()),
                },
                // Typing: the dialog's other keys are text.
                (_, KeyCode::Backspace) => {
                    input.pop();
                }
                (_, KeyCode::Char(c)) if (c.is_ascii_alphanumeric() || c == '.') && input.len() < 16 => {
                    input.push(c);
                    *error = None;
                }
                _ => {}
            },
            Dialog::Planning { .. } => {
                if action == Some(Action::Cancel) {
                    self.dialog = None;
                    return vec![Request::CancelPlan];
                }
            }
            Dialog::PlanningFix { .. } => {
                if action == Some(Action::Cancel) {
                    self.dialog = None;
                }
            }
            Dialog::ConfirmFix { plans, yes, .. } => match action {
                Some(Action::Cancel | Action::No) => self.dialog = None,
                Some(Action::SwitchAnswer) => *yes = !*yes,
                Some(Action::Yes | Action::Answer) => {
                    let confirmed = *yes || action == Some(Action::Yes);
                    let plans = std::mem::take(plans);
                    self.dialog = None;
                    if confirmed {
                        self.say(Level::Info, format!("fixing {} sessions…", plans.len()));
                        return vec![Request::ExecuteFix(plans)];
                    }
                    self.say(Level::Info, "cancelled");
                }
                _ => {}
            },
            Dialog::Confirm { plan, yes } => match action {
                Some(Action::Cancel | Action::No) => self.dialog = None,
                Some(Action::SwitchAnswer) => *yes = !*yes,
                Some(Action::Yes | Action::Answer) => {
                    let (plan, confirmed) = (plan.clone(), *yes || action == Some(Action::Yes));
                    self.dialog = None;
                    if confirmed {
                        self.say(Level::Info, format!("{}…", plan.kind.verb()));
                        return vec![Request::Execute(plan)];
                    }
                    self.say(Level::Info, "cancelled");
                }
                _ => {}
            },
        }
        Vec::new()
    }

    /// A key while the filter is typed: the dialog keys cancel (and clear it) or end typing;
    /// every other key is text.
    fn on_filter_key(&mut self, key: KeyEvent) {
        match (self.keymap.action_in(&[Scope::Dialog], &key), key.code) {
            (Some(Action::Cancel), _) => {
                self.table.filter.clear();
                self.table.editing_filter = false;
            }
            (Some(Action::Answer), _) => self.table.editing_filter = false,
            (_, KeyCode::Backspace) => {
                self.table.filter.pop();
            }
            (_, KeyCode::Char(c))
                if !key.modifiers.contains(KeyModifiers::CONTROL) && self.table.filter.len() < 128 =>
            {
                self.table.filter.push(c)
            }
            _ => {}
        }
        // The text is echoed at once; the rows follow when the engine answers.
        self.table.offset = 0;
        self.request_view(false);
    }

    /// A mouse event: the wheel scrolls, a click selects a row.
    pub fn on_mouse(&mut self, event: MouseEvent) -> Vec<Request> {
        if self.dialog.is_some() || self.help {
            return Vec::new();
        }
        let mut requests = match event.kind {
            MouseEventKind::ScrollDown => self.on_action(Action::Down),
            MouseEventKind::ScrollUp => self.on_action(Action::Up),
            MouseEventKind::Down(MouseButton::Left) if self.screen == Screen::Overview => {
                let table = geometry::overview_areas(self.area(), self.listed_findings().len()).table;
                let first_row = table.y + 2; // border and header
                let position = Position::new(event.column, event.row);
                if table.contains(position) && event.row >= first_row {
                    let index = self.table.offset + usize::from(event.row - first_row);
                    if let Some(row) = self.shown_table().row_at(index) {
                        self.table.selected = Some(row.id.clone());
                        self.table.pending = None;
                        self.focus = Focus::Sessions;
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        requests.extend(self.viewport_request());
        requests
    }

    fn area(&self) -> Rect {
        Rect::new(0, 0, self.size.0, self.size.1)
    }

    /// Rows the session table shows at the current size.
    pub fn table_rows(&self) -> usize {
        geometry::table_rows(self.area(), self.listed_findings().len())
    }

    /// The findings the alerts panel lists at the current size.
    pub fn listed_findings(&self) -> &[crate::engine::domain::Finding] {
        geometry::listed_findings(self.area(), &self.shown().findings)
    }

    /// Moves the selection: at once when the rows at hand hold the target, else as soon as
    /// the engine sends them.
    fn move_selection(&mut self, delta: i64) {
        let len = self.shown_table().len;
        if len == 0 {
            return;
        }
        let current = self.table.pending.or_else(|| self.table.selected_index()).unwrap_or(self.table.offset);
        let next = clamp_add(current, delta, len);
        self.table.moved = next != 0;
        match self.shown_table().row_at(next).map(|r| r.id.clone()) {
            Some(id) => {
                self.table.selected = Some(id);
                self.table.pending = None;
            }
            None => self.table.pending = Some(next),
        }
        let rows = self.table_rows().max(1);
        if next < self.table.offset {
            self.table.offset = next;
        } else if next >= self.table.offset + rows {
            self.table.offset = next + 1 - rows;
        }
        if self.frozen.is_none() {
            self.request_view(false);
        }
    }

    fn keep_selection_visible(&mut self) {
        let rows = self.table_rows().max(1);
        let len = self.table.view.len;
        if let Some(index) = self.table.pending.or_else(|| self.table.selected_index()) {
            if index < self.table.offset {
                self.table.offset = index;
            } else if index >= self.table.offset + rows {
                self.table.offset = index + 1 - rows;
            }
        }
        self.table.offset = self.table.offset.min(len.saturating_sub(rows));
    }

    /// The ids on screen, when they changed since the last request.
    fn viewport_request(&mut self) -> Option<Request> {
        let rows = self.table_rows();
        let ids: Vec<SessionId> = self.table.visible().take(rows).map(|r| r.id.clone()).collect();
        if ids == self.last_viewport {
            return None;
        }
        self.last_viewport = ids.clone();
        Some(Request::Viewport(ids))
    }
}

/// `value + delta`, kept within `0..len` (0 when `len` is 0). Total: no inputs panic.
pub fn clamp_add(value: usize, delta: i64, len: usize) -> usize {
    let last = len.saturating_sub(1);
    let moved = if delta >= 0 {
        value.saturating_add(usize::try_from(delta).unwrap_or(usize::MAX))
    } else {
        value.saturating_sub(usize::try_from(delta.unsigned_abs()).unwrap_or(usize::MAX))
    };
    moved.min(last)
}

/// Scrolls a list of `count` rows whose first shown is `offset` by `action`; whether it was a
/// scrolling key.
fn scroll(offset: &mut usize, count: usize, action: Action) -> bool {
    let last = count.saturating_sub(1);
    match action {
        Action::Up => *offset = offset.saturating_sub(1),
        Action::Down => *offset = (*offset + 1).min(last),
        Action::Top => *offset = 0,
        Action::Bottom => *offset = last,
        _ => return false,
    }
    true
}
