//! The dashboard's state and how it changes: keys, mouse, collector updates and the clock go in,
//! requests for the collectors come out. No I/O and no drawing happen here, so every key and
//! dialog can be tested without a terminal.

use std::collections::HashSet;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use crate::domain::{Millis, SessionRow, Ttl};
use crate::keymap::{Action, Keymap};
use crate::model::Model;
use crate::msg::{PlanReply, Request, Update, WriteKind, WritePlan};
use crate::names::SessionId;
use crate::screen;
use crate::tree::{self, TreeLine};

/// Data-driven re-sorting of the session table happens at most this often, and half a second
/// less often per 100,000 sessions, so that re-sorting a huge census never makes the keys
/// slow; what the user changes (sort, filter) re-sorts at once.
pub const ORDER_REFRESH_INTERVAL_MS: i64 = 500;
const ORDER_REFRESH_ROWS_PER_STEP: usize = 100_000;
/// How long a status message stays.
pub const STATUS_TTL_MS: i64 = 6000;

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Inspector,
}

/// Which overview panel has the focus (Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Sessions,
    Server,
}

/// Which inspector pane has the focus (Tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Keys,
    Tree,
    History,
}

/// The session table's columns, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Idle,
    Ttl,
    History,
    Memory,
    Id,
    Stage,
    Substate,
}

impl SortColumn {
    pub const ALL: [SortColumn; 7] = [
        SortColumn::Idle,
        SortColumn::Ttl,
        SortColumn::History,
        SortColumn::Memory,
        SortColumn::Id,
        SortColumn::Stage,
        SortColumn::Substate,
    ];

    pub fn title(self) -> &'static str {
        match self {
            SortColumn::Id => "ID",
            SortColumn::Stage => "STAGE",
            SortColumn::Substate => "SUBSTATE",
            SortColumn::Idle => "IDLE",
            SortColumn::Ttl => "TTL",
            SortColumn::History => "HIST",
            SortColumn::Memory => "MEMORY",
        }
    }

    fn next(self) -> SortColumn {
        let i = SortColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        SortColumn::ALL[(i + 1) % SortColumn::ALL.len()]
    }
}

/// The session table's state. Rows are identified by session id, so updates never move the
/// selection to another session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableState {
    pub sort: Option<SortColumn>,
    pub reverse: bool,
    pub filter: String,
    pub editing_filter: bool,
    pub selected: Option<SessionId>,
    /// Index of the first visible row.
    pub offset: usize,
    /// Ids in display order (filtered and sorted).
    pub order: Vec<SessionId>,
    /// Stalled sessions, in all and by stage (or substate), counted when the order is.
    pub stalled: usize,
    pub stalled_by: std::collections::BTreeMap<String, usize>,
    order_inputs: Option<(u64, Option<SortColumn>, bool, String, bool)>,
    order_at: Millis,
}

impl TableState {
    pub fn sort_column(&self) -> SortColumn {
        self.sort.unwrap_or(SortColumn::Idle)
    }

    /// The selected row's index in `order`.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_ref()?;
        self.order.iter().position(|o| o == id)
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
    /// Waiting for the collector to list what a write would change.
    Planning { id: SessionId, kind: WriteKind },
    /// The exact keys a write will change; `yes` is the highlighted answer (default No).
    Confirm { plan: WritePlan, yes: bool },
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
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub model: Model,
    /// What the screen shows while frozen (`f`); the live model keeps updating underneath.
    pub frozen: Option<Box<Model>>,
    pub view: View,
    pub focus: Focus,
    pub table: TableState,
    pub inspector: Option<InspectorState>,
    pub dialog: Option<Dialog>,
    pub help: bool,
    pub status: Option<Status>,
    pub keymap: Keymap,
    /// The terminal's size, for layout and mouse clicks.
    pub size: (u16, u16),
    pub quit: bool,
    last_viewport: Vec<SessionId>,
}

impl App {
    pub fn new(model: Model, keymap: Keymap, size: (u16, u16)) -> App {
        App {
            model,
            frozen: None,
            view: View::Overview,
            focus: Focus::Sessions,
            table: TableState::default(),
            inspector: None,
            dialog: None,
            help: false,
            status: None,
            keymap,
            size,
            quit: false,
            last_viewport: Vec::new(),
        }
    }

    /// The model the screen shows: the frozen copy, or the live one.
    pub fn shown(&self) -> &Model {
        self.frozen.as_deref().unwrap_or(&self.model)
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
                self.say(level, crate::text::escape_str(message));
            }
            Update::Notice(message) => self.say(Level::Warn, crate::text::escape_str(message)),
            _ => {}
        }
        // A finished census pass or sessions found gone change the picture: show it at once.
        let at_once = matches!(update, Update::CensusDone { .. } | Update::Gone { .. });
        let report = matches!(update, Update::Inspect(_));
        self.model.apply(update);
        if report && self.frozen.is_none() {
            self.rebuild_tree();
        }
        self.refresh_order(at_once);
        self.viewport_request().into_iter().collect()
    }

    fn on_plan(&mut self, reply: PlanReply) -> Vec<Request> {
        let Some(Dialog::Planning { id, kind }) = self.dialog.clone() else { return Vec::new() };
        match reply {
            PlanReply::Ready(plan) if plan.id == id && plan.kind == kind => {
                self.dialog = Some(Dialog::Confirm { plan, yes: false });
            }
            PlanReply::Failed { id: failed, kind: failed_kind, error } if failed == id && failed_kind == kind => {
                self.dialog = None;
                self.say(Level::Error, format!("{} not possible: {}", kind.verb(), crate::text::escape_str(&error)));
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
        self.refresh_order(false);
        self.viewport_request().into_iter().collect()
    }

    pub fn on_resize(&mut self, width: u16, height: u16) -> Vec<Request> {
        self.size = (width, height);
        self.keep_selection_visible();
        self.viewport_request().into_iter().collect()
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        // Ctrl-C always quits, whatever is open.
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
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
                    self.frozen = Some(Box::new(self.model.clone()));
                    self.say(
                        Level::Info,
                        format!("frozen: updates continue underneath; {} to resume", self.keymap.label(Action::Freeze)),
                    );
                } else {
                    self.say(Level::Info, "resumed");
                }
                self.rebuild_tree();
                self.refresh_order(true);
                Vec::new()
            }
            Action::Expire | Action::Persist | Action::Delete => self.start_write(action),
            _ => match self.view {
                View::Overview => self.on_overview_action(action),
                View::Inspector => self.on_inspector_action(action),
            },
        }
    }

    fn on_overview_action(&mut self, action: Action) -> Vec<Request> {
        let page = self.table_rows().max(1);
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
                self.refresh_order(true);
            }
            Action::Filter => self.table.editing_filter = true,
            Action::SortNext => {
                self.table.sort = Some(self.table.sort_column().next());
                self.table.reverse = false;
                self.refresh_order(true);
            }
            Action::SortReverse => {
                self.table.reverse = !self.table.reverse;
                self.refresh_order(true);
            }
            Action::NextPanel => {
                self.focus = match self.focus {
                    Focus::Sessions => Focus::Server,
                    Focus::Server => Focus::Sessions,
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn open_inspector(&mut self, id: SessionId) -> Vec<Request> {
        self.view = View::Inspector;
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
        let rows = screen::inspector_pane_rows(self.size);
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
                self.view = View::Overview;
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
        match self.view {
            View::Inspector => self.inspector.as_ref().map(|i| i.id.clone()),
            View::Overview => self.table.selected.clone(),
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
        self.dialog = Some(Dialog::Planning { id: id.clone(), kind });
        vec![Request::Plan { id, kind }]
    }

    fn on_dialog_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(dialog) = self.dialog.as_mut() else { return Vec::new() };
        match dialog {
            Dialog::ExpireInput { id, input, error } => match key.code {
                KeyCode::Esc => self.dialog = None,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Enter => match crate::cli::parse_duration(input) {
                    Ok(d) if d.as_secs() >= 1 => {
                        let id = id.clone();
                        return self.request_plan(id, WriteKind::Expire(d.as_secs() as i64));
                    }
                    Ok(_) => *error = Some("at least 1 second".into()),
                    Err(e) => *error = Some(e),
                },
                KeyCode::Char(c) if (c.is_ascii_alphanumeric() || c == '.') && input.len() < 16 => {
                    input.push(c);
                    *error = None;
                }
                _ => {}
            },
            Dialog::Planning { .. } => {
                if key.code == KeyCode::Esc {
                    self.dialog = None;
                }
            }
            Dialog::Confirm { plan, yes } => match key.code {
                KeyCode::Esc | KeyCode::Char('n') | KeyCode::Char('N') => self.dialog = None,
                KeyCode::Left | KeyCode::Right | KeyCode::Tab | KeyCode::BackTab => *yes = !*yes,
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    let plan = plan.clone();
                    self.dialog = None;
                    self.say(Level::Info, format!("{}…", plan.kind.verb()));
                    return vec![Request::Execute(plan)];
                }
                KeyCode::Enter => {
                    let (plan, confirmed) = (plan.clone(), *yes);
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

    fn on_filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Esc => {
                self.table.filter.clear();
                self.table.editing_filter = false;
            }
            KeyCode::Enter => self.table.editing_filter = false,
            KeyCode::Backspace => {
                self.table.filter.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) && self.table.filter.len() < 128 => {
                self.table.filter.push(c)
            }
            _ => {}
        }
        self.table.offset = 0;
        self.refresh_order(true);
        if self.table.selected_index().is_none() {
            self.table.selected = self.table.order.first().cloned();
        }
    }

    /// A mouse event: the wheel scrolls, a click selects a row.
    pub fn on_mouse(&mut self, event: MouseEvent) -> Vec<Request> {
        if self.dialog.is_some() || self.help {
            return Vec::new();
        }
        let mut requests = match event.kind {
            MouseEventKind::ScrollDown => self.on_action(Action::Down),
            MouseEventKind::ScrollUp => self.on_action(Action::Up),
            MouseEventKind::Down(MouseButton::Left) if self.view == View::Overview => {
                let table = screen::overview_areas(self.area()).table;
                let first_row = table.y + 2; // border and header
                let position = Position::new(event.column, event.row);
                if table.contains(position) && event.row >= first_row {
                    let index = self.table.offset + usize::from(event.row - first_row);
                    if let Some(id) = self.table.order.get(index) {
                        self.table.selected = Some(id.clone());
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
        screen::table_rows(self.area())
    }

    fn move_selection(&mut self, delta: i64) {
        if self.table.order.is_empty() {
            return;
        }
        let current = self.table.selected_index().unwrap_or(0);
        let next = clamp_add(current, delta, self.table.order.len());
        self.table.selected = self.table.order.get(next).cloned();
        self.keep_selection_visible();
    }

    fn keep_selection_visible(&mut self) {
        let rows = self.table_rows().max(1);
        let len = self.table.order.len();
        let Some(index) = self.table.selected_index() else {
            self.table.offset = self.table.offset.min(len.saturating_sub(rows));
            return;
        };
        if index < self.table.offset {
            self.table.offset = index;
        } else if index >= self.table.offset + rows {
            self.table.offset = index + 1 - rows;
        }
        self.table.offset = self.table.offset.min(len.saturating_sub(rows));
    }

    /// Recomputes the table order when its inputs changed: at once when `force` (the user
    /// changed sort or filter), else at most every [`ORDER_REFRESH_INTERVAL_MS`].
    pub fn refresh_order(&mut self, force: bool) {
        let model = self.shown();
        let inputs = (
            model.sessions_version,
            self.table.sort,
            self.table.reverse,
            self.table.filter.clone(),
            self.frozen.is_some(),
        );
        if self.table.order_inputs.as_ref() == Some(&inputs) {
            return;
        }
        // Throttled, except when the table is empty and need not be.
        let throttled = self.table.order_inputs.is_some()
            && model.now - self.table.order_at
                < ORDER_REFRESH_INTERVAL_MS * (1 + (model.sessions.len() / ORDER_REFRESH_ROWS_PER_STEP) as i64)
            && (!self.table.order.is_empty() || model.sessions.is_empty());
        if !force && throttled {
            return;
        }
        let order = sorted_ids(model, self.table.sort_column(), self.table.reverse, &self.table.filter);
        let by_substate = !model.census.totals().by_substate.is_empty();
        let mut stalled_by = std::collections::BTreeMap::new();
        let mut stalled = 0;
        for row in model.sessions.values().filter(|r| model.is_stalled(r)) {
            stalled += 1;
            let key = if by_substate { row.substate.as_deref() } else { row.stage.as_deref() };
            if let Some(key) = key {
                *stalled_by.entry(key.to_string()).or_insert(0) += 1;
            }
        }
        let now = model.now;
        self.table.stalled = stalled;
        self.table.stalled_by = stalled_by;
        self.table.order = order;
        self.table.order_inputs = Some(inputs);
        self.table.order_at = now;
        if self.table.selected_index().is_none() {
            self.table.selected =
                self.table.order.get(self.table.offset).cloned().or_else(|| self.table.order.first().cloned());
        }
        self.keep_selection_visible();
    }

    /// The ids on screen, when they changed since the last request.
    fn viewport_request(&mut self) -> Option<Request> {
        let rows = self.table_rows();
        let ids: Vec<SessionId> = self.table.order.iter().skip(self.table.offset).take(rows).cloned().collect();
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

/// Session ids filtered by a case-insensitive substring of id, stage or substate, then sorted.
/// Unknown values sort last either way; ties fall back to the id, so the order is stable.
pub fn sorted_ids(model: &Model, column: SortColumn, reverse: bool, filter: &str) -> Vec<SessionId> {
    let needle = filter.to_lowercase();
    let id_matches = |id: &SessionId| match id.as_str() {
        Some(text) if !text.contains('\\') && text.chars().all(|c| !c.is_control()) => {
            text.to_lowercase().contains(&needle)
        }
        // Ids that are shown escaped are matched as shown.
        _ => id.escaped().to_lowercase().contains(&needle),
    };
    let matches = |row: &SessionRow| {
        needle.is_empty()
            || id_matches(&row.id)
            || row.stage.as_deref().is_some_and(|s| s.to_lowercase().contains(&needle))
            || row.substate.as_deref().is_some_and(|s| s.to_lowercase().contains(&needle))
    };
    let mut rows: Vec<&SessionRow> = model.sessions.values().filter(|r| matches(r)).collect();
    let number = |row: &SessionRow| -> Option<i64> {
        match column {
            // Least idle first: the most recent activity, exactly (idle seconds tie within one).
            SortColumn::Idle => model.activity(row).map(|a| a.saturating_neg()),
            SortColumn::Ttl => match row.ttl {
                Ttl::Persistent => Some(i64::MAX),
                ttl => ttl.seconds_left(model.now),
            },
            SortColumn::History => row.history_len.map(|n| n as i64),
            SortColumn::Memory => row.memory_bytes.map(|n| n as i64),
            _ => None,
        }
    };
    let text = |row: &SessionRow| -> Option<String> {
        match column {
            SortColumn::Stage => row.stage.as_deref().map(str::to_string),
            SortColumn::Substate => row.substate.as_deref().map(str::to_string),
            _ => None,
        }
    };
    // Numbers the engineer wants high first by default (history, memory) start descending.
    let descending = matches!(column, SortColumn::History | SortColumn::Memory) != reverse;
    rows.sort_by(|a, b| {
        let ordering = match column {
            SortColumn::Id => a.id.cmp(&b.id),
            SortColumn::Stage | SortColumn::Substate => {
                let (x, y) = (text(a), text(b));
                x.is_none().cmp(&y.is_none()).then_with(|| if descending { y.cmp(&x) } else { x.cmp(&y) })
            }
            _ => {
                let (x, y) = (number(a), number(b));
                x.is_none().cmp(&y.is_none()).then_with(|| if descending { y.cmp(&x) } else { x.cmp(&y) })
            }
        };
        let ordering = if column == SortColumn::Id && reverse { ordering.reverse() } else { ordering };
        ordering.then_with(|| a.id.cmp(&b.id))
    });
    rows.into_iter().map(|r| r.id.clone()).collect()
}
