//! The dashboard: the terminal, the event loop and the collectors, wired together.
//!
//! Every state change is made by pure state, tested without a terminal: the [`tabs::Tabs`]
//! (the targets side by side) and each tab's [`app::App`]. The loop here only carries input,
//! collector updates, table views and the clock to them, their requests to the collectors,
//! and their state to the drawing ([`ui`]). Input is read on its own thread and answered at
//! once; the screen is redrawn only when something changed, at most every [`FRAME_INTERVAL`].
//! Beside the tabs run the host room ([`crate::collect::host`]), the metrics listener and the
//! recording. The terminal is restored on every way out ([`terminal`]).

pub mod app;
pub mod geometry;
pub mod keymap;
pub mod replay;
pub mod tabs;
pub mod terminal;
pub mod theme;
pub mod tree;
pub mod ui;

use std::io;
use std::time::Duration;

use crossterm::event::{Event, KeyEventKind};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::collect::{Collector, now_millis};
use crate::engine::history::Histories;
use crate::engine::model::Model;
use crate::engine::msg::Update;
use crate::export::exports::{self, Exports};
use crate::export::record;
use crate::setup::Setup;
use app::{App, TableEngine, TableView};
use keymap::{Action, Keymap, KeymapError, Scope};
use tabs::{Outbox, Tab, Tabs};
use terminal::{Input, TerminalGuard};
use theme::Theme;

/// The shortest time between two frames.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// How often the clock moves (TTL countdowns, reconnect countdowns).
const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a replay moves its clock.
const REPLAY_STEP_INTERVAL: Duration = Duration::from_millis(100);

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the dashboard needs a terminal (in scripts use `snapshot`, `inspect` or `demo --no-tui`)")]
    NotATerminal,
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error(transparent)]
    Theme(#[from] theme::ThemeError),
    #[error(transparent)]
    Keys(#[from] KeymapError),
    #[error("internal error: a background task panicked (the message is above)")]
    Panicked,
    #[error(transparent)]
    Start(#[from] exports::StartError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error("{0} holds no sample to replay")]
    EmptyRecording(String),
}

/// A theme by name or file, without colours under `NO_COLOR`.
pub fn load_theme(name: &str) -> Result<Theme, theme::ThemeError> {
    let theme = Theme::load(name)?;
    Ok(if theme::no_color_requested() { theme.without_colors() } else { theme })
}

/// What stands behind the tabs: each target's collectors and table engine, and the channels
/// their updates and views come back on, tagged with the tab's index; and the host room.
struct Backends {
    collectors: Vec<Collector>,
    updates: mpsc::UnboundedReceiver<(usize, Update)>,
    views: mpsc::UnboundedReceiver<(usize, TableView)>,
    forwarders: Vec<JoinHandle<()>>,
    host: mpsc::UnboundedReceiver<Update>,
    host_task: JoinHandle<()>,
}

impl Backends {
    /// Carries the tabs' requests to their collectors.
    fn send(&self, outbox: Outbox) {
        for (i, requests) in outbox {
            if let Some(collector) = self.collectors.get(i) {
                collector.send(requests);
            }
        }
    }

    /// Each target's commands sent so far, by tab.
    fn commands_sent(&self) -> Vec<u64> {
        self.collectors.iter().map(Collector::commands_sent).collect()
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.host_task.abort();
        for f in &self.forwarders {
            f.abort();
        }
    }
}

/// A tab for each target, with its collectors started and its table on its own thread.
fn start_tabs(
    setup: &Setup,
    themes: Vec<Theme>,
    keymap: &Keymap,
    size: (u16, u16),
    mut resumed: Option<Histories>,
) -> (Tabs, Backends) {
    let (updates_tx, updates) = mpsc::unbounded_channel::<(usize, Update)>();
    let (views_tx, views) = mpsc::unbounded_channel();
    // Below the line of targets, when there are several.
    let app_size = (size.0, if setup.targets.len() > 1 { size.1.saturating_sub(1) } else { size.1 });
    let mut tabs = Vec::with_capacity(setup.targets.len());
    let mut collectors = Vec::with_capacity(setup.targets.len());
    let mut forwarders = Vec::new();
    for (i, (target, theme)) in setup.targets.iter().zip(themes).enumerate() {
        let (model, collector, forwarder) = setup.watch_target(i, &mut resumed, &updates_tx);
        forwarders.push(forwarder);
        // The table's rows live on the engine's own thread; its views come back on a channel.
        let views_tx = views_tx.clone();
        let worker = crate::engine::table::spawn(setup.max_rows, move |view| views_tx.send((i, view)).is_ok());
        let mut app = App::with_table(model, keymap.clone(), app_size, TableEngine::Thread(worker));
        for w in &setup.warnings {
            app.on_update(Update::Notice(w.clone()));
        }
        let name = target.info.name.clone().unwrap_or_else(|| target.info.url.clone());
        let address = target.target.address().to_string();
        tabs.push(Tab { name, app, theme, address, db: target.target.db() });
        collectors.push(collector);
    }
    let (host_task, host) = crate::collect::host::spawn(setup.watch_processes.clone(), setup.collect.poll_interval);
    (Tabs::new(tabs, keymap.clone()), Backends { collectors, updates, views, forwarders, host, host_task })
}

/// Runs the dashboard until the user quits, on one target or several side by side (a tab each;
/// number keys and `t` switch, a line on top shows every target).
pub async fn run(setup: Setup) -> Result<(), DashboardError> {
    if !terminal::is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let keymap = Keymap::with_overrides(&setup.bindings)?;
    let (mut exports, resumed) = Exports::start(setup.metrics_listen, setup.recording().as_ref(), now_millis()).await?;
    let themes = setup.targets.iter().map(|t| load_theme(&t.theme)).collect::<Result<Vec<_>, _>>()?;
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    let (mut tabs, mut backends) = start_tabs(&setup, themes, &keymap, (size.width, size.height), resumed);
    let result = event_loop(&mut terminal, &mut tabs, &mut backends, &mut exports, &keymap).await;
    // A recording that failed was said on screen when it did.
    let _ = exports.finish();
    drop(backends);
    drop(tabs);
    drop(terminal);
    drop(guard);
    result
}

/// The loop: input, views, updates, host samples and the clock to the tabs; their requests to
/// the collectors; the tabs to the screen, when something changed and the frame cap allows.
async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<io::Stdout>>,
    tabs: &mut Tabs,
    backends: &mut Backends,
    exports: &mut Exports,
    keymap: &Keymap,
) -> Result<(), DashboardError> {
    let mut input = Input::spawn();
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    let mut dirty = true;
    let mut last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
    loop {
        if terminal::panicked() {
            return Err(DashboardError::Panicked);
        }
        if tabs.quit() {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        if dirty && now.duration_since(last_draw) >= FRAME_INTERVAL {
            terminal.draw(|frame| ui::draw_tabs(frame, tabs, keymap))?;
            dirty = false;
            last_draw = now;
        }
        let next_frame = last_draw + FRAME_INTERVAL;
        tokio::select! {
            biased;
            Some(event) = input.events.recv() => backends.send(tabs.on_event(event)),
            Some((i, view)) = backends.views.recv() => {
                if apply_views(tabs, backends, i, view) {
                    last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
                }
            }
            Some((i, update)) = backends.updates.recv() => {
                backends.send(vec![(i, tabs.on_update(i, update))]);
                // Apply whatever else is waiting before drawing.
                while let Ok((j, update)) = backends.updates.try_recv() {
                    backends.send(vec![(j, tabs.on_update(j, update))]);
                }
            }
            Some(update) = backends.host.recv() => backends.send(tabs.on_host(update)),
            _ = tick.tick() => {
                let offset = chrono::Local::now().offset().local_minus_utc();
                backends.send(tabs.on_tick(now_millis(), offset, &backends.commands_sent()));
                let stopped = {
                    let targets: Vec<(&Model, &str)> = tabs.tabs.iter().map(|t| (&t.app.model, t.name.as_str())).collect();
                    exports.on_tick(&targets)
                };
                if let Some(why) = stopped {
                    backends.send(vec![(0, tabs.on_update(0, Update::Notice(why)))]);
                }
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => continue,
        }
        dirty = true;
    }
}

/// Applies the newest view of each tab that sent one; returns whether one answers a key on
/// the shown tab (then the frame is drawn at once).
fn apply_views(tabs: &mut Tabs, backends: &mut Backends, first: usize, view: TableView) -> bool {
    let mut newest = vec![None; tabs.tabs.len()];
    if let Some(slot) = newest.get_mut(first) {
        *slot = Some(view);
    }
    while let Ok((j, newer)) = backends.views.try_recv() {
        if let Some(slot) = newest.get_mut(j) {
            *slot = Some(newer);
        }
    }
    let mut answers_key = false;
    for (j, view) in newest.into_iter().enumerate() {
        let Some(view) = view else { continue };
        let (requests, answers) = tabs.on_view(j, view);
        backends.send(vec![(j, requests)]);
        answers_key |= answers;
    }
    answers_key
}

/// `replay`: the charts of a recording, played back (see [`replay`]). The same terminal
/// handling as the dashboard, no collectors.
pub async fn replay(setup: &Setup, recording: record::Recording, file: &str) -> Result<(), DashboardError> {
    if !terminal::is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let Some(mut player) = replay::Player::new(&recording) else {
        return Err(DashboardError::EmptyRecording(file.to_string()));
    };
    let theme = load_theme(&setup.first().theme)?;
    let keymap = Keymap::with_overrides(&setup.bindings)?;
    let target = crate::engine::domain::TargetInfo {
        url: recording.target.clone(),
        name: Some(format!("replay of {file}")),
        read_only: true,
    };
    let mut model = Model::new(target, setup.model_settings(), player.now);
    model.apply(Update::Link(crate::engine::domain::LinkState::Connected { since: player.first }));
    model.history = recording.history.clone();
    model.layout_note = Some("replaying a recording".into());
    model.utc_offset_s = chrono::Local::now().offset().local_minus_utc();

    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    let mut app = App::new(model, keymap.clone(), (size.width, size.height));
    app.screen = app::Screen::Charts;
    app.scopes = app::REPLAY_SCOPES;
    let mut input = Input::spawn();
    let mut tick = tokio::time::interval(REPLAY_STEP_INTERVAL);
    let result = loop {
        if terminal::panicked() {
            break Err(DashboardError::Panicked);
        }
        if app.quit {
            break Ok(());
        }
        player.show(&mut app, &recording);
        terminal.draw(|frame| ui::draw(frame, &app, &theme))?;
        tokio::select! {
            Some(event) = input.events.recv() => match event {
                Event::Key(key) if key.kind != KeyEventKind::Release => {
                    // The replay's keys come first; the overview has nothing to show here, so
                    // the charts stay.
                    let leaves = matches!(keymap.action_in(&[Scope::Screen], &key), Some(Action::Back | Action::Charts));
                    if !leaves && !player.key(&keymap, &key, &recording) {
                        app.on_key(key);
                    }
                }
                Event::Resize(w, h) => {
                    app.on_resize(w, h);
                }
                _ => {}
            },
            _ = tick.tick() => player.advance(REPLAY_STEP_INTERVAL.as_millis() as i64),
        }
    };
    drop(input);
    drop(terminal);
    drop(guard);
    result
}
