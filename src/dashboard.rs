//! The dashboard's runtime: the terminal, the event loop and the collectors, wired together.
//!
//! Input is read on its own thread and answered at once; collector updates are applied as
//! they come; the screen is redrawn only when something changed, at most every
//! [`FRAME_INTERVAL`]. The terminal is restored on every way out: normal exit, error (the
//! [`TerminalGuard`] drop) and panic (the hook).

pub mod app;
pub mod geometry;
pub mod keymap;
pub mod replay;
pub mod theme;
pub mod tree;
pub mod ui;

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use crate::collect::now_millis;
use crate::dashboard::app::{App, Table};
use crate::dashboard::keymap::Keymap;
use crate::engine::model::Model;
use crate::engine::msg::Request;
use crate::setup::Setup;
use theme::Theme;

/// The shortest time between two frames.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// How often the clock moves (TTL countdowns, reconnect countdowns).
const TICK_INTERVAL: Duration = Duration::from_secs(1);
/// How long the input thread waits for an event before checking whether to stop.
const INPUT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the dashboard needs a terminal (in scripts use `snapshot`, `inspect` or `demo --no-tui`)")]
    NotATerminal,
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error(transparent)]
    Theme(#[from] theme::ThemeError),
    #[error("{0}")]
    Keys(String),
    #[error("internal error: a background task panicked (the message is above)")]
    Panicked,
    #[error("{0}")]
    Metrics(String),
    #[error("{0}")]
    Record(String),
}

/// Set by the panic hook, so the event loop stops drawing to a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Restores the terminal: leaves raw mode, the alternate screen and mouse capture.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
    let _ = io::stdout().flush();
}

/// Puts the terminal into dashboard mode and restores it when dropped.
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            restore_terminal();
            tracing::error!("panic: {info}");
            hook(info);
        }));
        enable_raw_mode()?;
        let guard = TerminalGuard;
        execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// The theme the setup names, without colours under `NO_COLOR`.
pub fn load_theme(setup: &Setup) -> Result<Theme, theme::ThemeError> {
    let theme = Theme::load(&setup.theme)?;
    Ok(if theme::no_color_requested() { theme.without_colors() } else { theme })
}

/// One target the dashboard watches: its setup, theme, app (model and table) and collectors.
struct Tab {
    setup: Setup,
    theme: Theme,
    app: App,
    collector: crate::collect::Collector,
}

impl Tab {
    fn send(&self, requests: Vec<Request>) {
        for r in requests {
            let _ = self.collector.requests.send(r);
        }
    }

    /// The name the tab line and the metrics give the target.
    fn name(&self) -> String {
        self.setup.target_info.name.clone().unwrap_or_else(|| self.setup.target_info.url.clone())
    }
}

/// Runs the dashboard until the user quits, on one target or several side by side (a tab each;
/// number keys and `t` switch, a line on top shows every target).
pub async fn run(setups: Vec<Setup>) -> Result<(), DashboardError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let Some(first) = setups.first() else { return Ok(()) };
    let keymap = Keymap::with_overrides(&first.bindings).map_err(DashboardError::Keys)?;
    // The metrics address is bound before the terminal is taken, so a busy port is said plainly.
    let metrics = match first.metrics_listen {
        Some(addr) => {
            let listener = crate::export::metrics::bind(addr)
                .await
                .map_err(|e| DashboardError::Metrics(format!("cannot listen on {addr} for --metrics-listen: {e}")))?;
            let page = crate::export::metrics::Page::default();
            let serving = tokio::spawn(crate::export::metrics::serve(listener, page.clone()));
            Some((page, serving))
        }
        None => None,
    };
    // A recording that cannot start is said before the terminal is taken, too. It records the
    // first target.
    let mut recorder = match &first.record {
        Some((path, max_bytes)) => {
            let interval = first.collect.poll_interval.as_millis() as u64;
            let r =
                crate::export::record::Recorder::open(path, &first.target_info.url, interval, *max_bytes, now_millis())
                    .map_err(|e| DashboardError::Record(e.to_string()))?;
            Some(r)
        }
        None => None,
    };
    // Going on with a recording: the charts show what it holds, with a gap for the time
    // sessiontop was not running.
    let resumed = match (recorder.as_mut(), &first.record) {
        (Some(r), Some((path, _))) => r.resume(path),
        _ => None,
    };
    let mut themes = Vec::with_capacity(setups.len());
    for setup in &setups {
        themes.push(load_theme(setup)?);
    }
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    let several = setups.len() > 1;
    let app_size = |w: u16, h: u16| (w, if several { h.saturating_sub(1) } else { h });

    // Every tab's collector updates and table views come tagged with the tab's index.
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<(usize, crate::engine::msg::Update)>();
    let (views_tx, mut views) = mpsc::unbounded_channel();
    let mut tabs: Vec<Tab> = Vec::with_capacity(setups.len());
    let mut forwarders = Vec::new();
    let mut resumed = resumed;
    for (i, (setup, theme)) in setups.into_iter().zip(themes).enumerate() {
        let mut model = Model::new(setup.target_info.clone(), setup.model_settings(), now_millis());
        model.baseline = setup.baseline.map(|b| b.millis(now_millis()));
        if i == 0
            && let Some(history) = resumed.take()
        {
            model.history = history;
        }
        let (collector, mut own_updates) = setup.spawn_collectors(setup.collect.clone());
        let tx = updates_tx.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(u) = own_updates.recv().await {
                if tx.send((i, u)).is_err() {
                    break;
                }
            }
        }));
        // The table's rows live on the engine's own thread; its views come back on a channel.
        let views_tx = views_tx.clone();
        let worker = crate::engine::table::spawn(setup.max_rows, move |view| views_tx.send((i, view)).is_ok());
        let (w, h) = app_size(size.width, size.height);
        let mut app = App::with_table(model, keymap.clone(), (w, h), Table::Thread(worker));
        for w in &setup.warnings {
            app.on_update(crate::engine::msg::Update::Notice(w.clone()));
        }
        tabs.push(Tab { setup, theme, app, collector });
    }
    drop(updates_tx);
    let mut active = 0usize;
    let mut recorded_at: Option<i64> = None;
    let mut record_failure_said = false;

    let (stop, mut input, reader) = spawn_input_reader();
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    let mut dirty = true;
    let mut last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
    let result = loop {
        if PANICKED.load(Ordering::SeqCst) {
            break Err(DashboardError::Panicked);
        }
        if tabs.iter().any(|t| t.app.quit) {
            break Ok(());
        }
        let now = tokio::time::Instant::now();
        if dirty && now.duration_since(last_draw) >= FRAME_INTERVAL {
            let tab = &tabs[active];
            let line = several.then(|| tab_line(&tabs, active));
            terminal.draw(|frame| {
                let mut area = frame.area();
                if let Some(line) = line {
                    let top = ratatui::layout::Rect { height: 1.min(area.height), ..area };
                    frame.render_widget(ratatui::widgets::Paragraph::new(line), top);
                    area.y += top.height;
                    area.height -= top.height;
                }
                crate::dashboard::ui::draw_in(frame, area, &tab.app, &tab.theme);
            })?;
            dirty = false;
            last_draw = now;
        }
        let next_frame = last_draw + FRAME_INTERVAL;
        tokio::select! {
            biased;
            Some(ev) = input.recv() => {
                let tab = &mut tabs[active];
                let switch = match &ev {
                    Event::Key(key) if several && key.kind != event::KeyEventKind::Release && tab.app.takes_global_keys() => {
                        match key.code {
                            crossterm::event::KeyCode::Char(c @ '1'..='9') => Some(usize::from(c as u8 - b'1')),
                            _ if keymap.action(key) == Some(crate::dashboard::keymap::Action::NextTarget) => Some(active + 1),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(to) = switch {
                    let count = tabs.len();
                    active = if to >= count && to == active + 1 { 0 } else { to.min(count - 1) };
                } else {
                    let requests = match ev {
                        Event::Key(key) => tab.app.on_key(key),
                        Event::Mouse(mut mouse) => {
                            // Below the tab line.
                            if several {
                                if mouse.row == 0 {
                                    continue;
                                }
                                mouse.row -= 1;
                            }
                            tab.app.on_mouse(mouse)
                        }
                        Event::Resize(w, h) => {
                            let (w, h) = app_size(w, h);
                            for t in tabs.iter_mut() {
                                let requests = t.app.on_resize(w, h);
                                t.send(requests);
                            }
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    tabs[active].send(requests);
                }
                dirty = true;
            }
            Some((i, view)) = views.recv() => {
                // Only the newest view of each tab matters.
                let mut newest = vec![None; tabs.len()];
                newest[i] = Some(view);
                while let Ok((j, newer)) = views.try_recv() {
                    newest[j] = Some(newer);
                }
                for (j, view) in newest.into_iter().enumerate() {
                    let Some(view) = view else { continue };
                    let tab = &mut tabs[j];
                    // The answer to a key (a sort, a filter, a move) is drawn at once, not at
                    // the next frame: the frame cap is for data, which never holds a key back.
                    let answers_key = j == active && tab.app.table.awaits(view.serial);
                    let requests = tab.app.on_view(view);
                    tab.send(requests);
                    if answers_key {
                        last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
                    }
                }
                dirty = true;
            }
            Some((i, update)) = updates.recv() => {
                let mut server_polled = matches!(update, crate::engine::msg::Update::Server { .. });
                let requests = tabs[i].app.on_update(update);
                tabs[i].send(requests);
                // Apply whatever else is waiting before drawing.
                while let Ok((j, update)) = updates.try_recv() {
                    server_polled |= matches!(update, crate::engine::msg::Update::Server { .. });
                    let requests = tabs[j].app.on_update(update);
                    tabs[j].send(requests);
                }
                if several && server_polled {
                    mark_same_servers(&mut tabs);
                }
                dirty = true;
            }
            _ = tick.tick() => {
                let offset = chrono::Local::now().offset().local_minus_utc();
                for tab in tabs.iter_mut() {
                    tab.app.model.utc_offset_s = offset;
                    let requests = tab.app.on_tick(now_millis(), tab.setup.load.total());
                    tab.send(requests);
                }
                if let Some((page, _)) = &metrics {
                    let names: Vec<String> = tabs.iter().map(Tab::name).collect();
                    let targets: Vec<(&Model, &str)> =
                        tabs.iter().zip(&names).map(|(t, n)| (&t.app.model, n.as_str())).collect();
                    page.set(crate::export::metrics::exposition(&targets));
                }
                // A line for each new server poll; the disk is the recording thread's.
                if let Some(r) = recorder.as_mut() {
                    let app = &tabs[0].app;
                    if app.model.server_at.is_some() && app.model.server_at != recorded_at {
                        recorded_at = app.model.server_at;
                        r.record(&app.model.history, &app.model.findings, app.model.now);
                    }
                    if let Some(why) = r.status().failed
                        && !record_failure_said
                    {
                        record_failure_said = true;
                        let requests = tabs[0].app.on_update(crate::engine::msg::Update::Notice(why));
                        tabs[0].send(requests);
                    }
                }
                dirty = true;
            }
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(r) = recorder {
        r.finish(Duration::from_secs(2));
    }
    if let Some((_, serving)) = metrics {
        serving.abort();
    }
    for f in forwarders {
        f.abort();
    }
    drop(tabs);
    drop(terminal);
    drop(guard);
    let _ = reader.join();
    result
}

/// Tells each tab which other targets are the same Redis server (and which the same store).
fn mark_same_servers(tabs: &mut [Tab]) {
    let names: Vec<String> = tabs.iter().map(Tab::name).collect();
    let same = {
        let peers: Vec<crate::engine::diagnose::Peer<'_>> = tabs
            .iter()
            .zip(&names)
            .map(|(t, name)| crate::engine::diagnose::Peer {
                name,
                run_id: t.app.model.server.as_ref().and_then(|s| s.run_id.as_deref()),
                address: t.setup.target.address(),
                db: t.setup.target.db(),
                layout: t.app.model.layout.as_ref().map(|l| (l.name.as_str(), l.prefix.as_str())),
            })
            .collect();
        crate::engine::diagnose::same_servers(&peers)
    };
    for (tab, same) in tabs.iter_mut().zip(same) {
        tab.app.model.set_same_server(same);
    }
}

/// The line above a tab when several targets are watched: each target's number, name,
/// connection, live sessions and worst finding; the shown one highlighted.
fn tab_line(tabs: &[Tab], active: usize) -> ratatui::text::Line<'static> {
    use crate::dashboard::theme::Role;
    use ratatui::text::Span;
    let t = &tabs[active].theme;
    let mut spans = Vec::new();
    for (i, tab) in tabs.iter().enumerate() {
        let m = &tab.app.model;
        let dot = if m.is_stale() { "◌" } else { "●" };
        let sessions = m.census.complete.as_ref().map_or("…".to_string(), |c| crate::util::text::grouped(c.total));
        let (worst, role) = match crate::engine::diagnose::worst(&m.findings) {
            Some(crate::engine::domain::Severity::Critical) => ("✗", Role::Crit),
            Some(crate::engine::domain::Severity::Warning) => ("⚠", Role::Warn),
            _ => ("✓", Role::Ok),
        };
        let same = if m.same_server.iter().any(|(_, store)| *store) { " SAME SERVER" } else { "" };
        let text = format!(
            " {} {} {dot} {sessions} ",
            i + 1,
            crate::util::text::clip(&crate::util::text::escape_str(&tab.name()), 24)
        );
        let style = if i == active { t.style(Role::Selection) } else { t.style(Role::Text) };
        spans.push(Span::styled(text, style));
        spans.push(Span::styled(format!("{worst}{same} "), t.style(role)));
        spans.push(Span::styled("│", t.style(Role::Border)));
    }
    spans.push(Span::styled(" 1-9/t switch", t.style(Role::Muted)));
    ratatui::text::Line::from(spans)
}

/// Reads terminal events on a thread of its own (so a key is seen however busy the loop is)
/// until the flag is set: the flag, the events, the thread.
fn spawn_input_reader() -> (Arc<AtomicBool>, mpsc::UnboundedReceiver<Event>, std::thread::JoinHandle<()>) {
    let (input_tx, input) = mpsc::unbounded_channel::<Event>();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(INPUT_POLL_INTERVAL) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if input_tx.send(ev).is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
        })
    };
    (stop, input, reader)
}

/// `replay`: the charts of a recording, played back (see [`crate::dashboard::replay`]). The same terminal
/// handling as the dashboard, no collectors.
pub async fn replay(
    setup: Setup,
    recording: crate::export::record::Recording,
    file: &str,
) -> Result<(), DashboardError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let Some(mut player) = crate::dashboard::replay::Player::new(&recording) else {
        return Err(DashboardError::Record(format!("{file} holds no sample to replay")));
    };
    let theme = load_theme(&setup)?;
    let keymap = Keymap::with_overrides(&setup.bindings).map_err(DashboardError::Keys)?;
    let target = crate::engine::domain::TargetInfo {
        url: recording.target.clone(),
        name: Some(format!("replay of {file}")),
        read_only: true,
    };
    let mut model = Model::new(target, setup.model_settings(), player.now);
    model.apply(crate::engine::msg::Update::Link(crate::engine::domain::LinkState::Connected { since: player.first }));
    model.history = recording.history.clone();
    model.layout_note = Some("replaying a recording".into());
    model.utc_offset_s = chrono::Local::now().offset().local_minus_utc();

    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    let mut app = App::new(model, keymap, (size.width, size.height));
    app.view = crate::dashboard::app::View::Charts;

    let (stop, mut input, reader) = spawn_input_reader();
    let step = Duration::from_millis(100);
    let mut tick = tokio::time::interval(step);
    let result = loop {
        if PANICKED.load(Ordering::SeqCst) {
            break Err(DashboardError::Panicked);
        }
        if app.quit {
            break Ok(());
        }
        app.model.now = player.now;
        app.model.findings = player.findings(&recording);
        app.status = Some(crate::dashboard::app::Status {
            at: player.now,
            text: player.status(app.model.utc_offset_s),
            level: crate::dashboard::app::Level::Info,
        });
        terminal.draw(|frame| crate::dashboard::ui::draw(frame, &app, &theme))?;
        tokio::select! {
            Some(ev) = input.recv() => match ev {
                Event::Key(key) if key.kind != event::KeyEventKind::Release => {
                    // The overview has nothing to show here: the charts stay.
                    let overview = matches!(key.code, crossterm::event::KeyCode::Esc | crossterm::event::KeyCode::Char('c'));
                    if !overview && !player.key(key.code, &recording) {
                        app.on_key(key);
                    }
                }
                Event::Resize(w, h) => {
                    app.on_resize(w, h);
                }
                _ => {}
            },
            _ = tick.tick() => player.advance(step.as_millis() as i64),
        }
    };
    stop.store(true, Ordering::Relaxed);
    drop(terminal);
    drop(guard);
    let _ = reader.join();
    result
}
