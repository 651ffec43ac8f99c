//! The dashboard's runtime: the terminal, the event loop and the collectors, wired together.
//!
//! Input is read on its own thread and answered at once; collector updates are applied as
//! they come; the screen is redrawn only when something changed, at most every
//! [`FRAME_INTERVAL`]. The terminal is restored on every way out: normal exit, error (the
//! [`TerminalGuard`] drop) and panic (the hook).

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

use crate::app::{App, Table};
use crate::collect::now_millis;
use crate::keymap::Keymap;
use crate::model::Model;
use crate::msg::Request;
use crate::setup::Setup;
use crate::theme::{self, Theme};

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

/// Runs the dashboard until the user quits.
pub async fn run(setup: Setup) -> Result<(), DashboardError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let theme = load_theme(&setup)?;
    let keymap = Keymap::with_overrides(&setup.bindings).map_err(DashboardError::Keys)?;
    let mut model = Model::new(setup.target_info.clone(), setup.model_settings(), now_millis());
    model.baseline = setup.baseline.map(|b| b.millis(now_millis()));
    let (collector, mut updates) = setup.spawn_collectors(setup.collect.clone());

    // The metrics address is bound before the terminal is taken, so a busy port is said plainly.
    let metrics = match setup.metrics_listen {
        Some(addr) => {
            let listener = crate::metrics::bind(addr)
                .await
                .map_err(|e| DashboardError::Metrics(format!("cannot listen on {addr} for --metrics-listen: {e}")))?;
            let page = crate::metrics::Page::default();
            let serving = tokio::spawn(crate::metrics::serve(listener, page.clone()));
            Some((page, serving))
        }
        None => None,
    };
    let metrics_target = setup.target_info.name.clone().unwrap_or_else(|| setup.target_info.url.clone());
    // A recording that cannot start is said before the terminal is taken, too.
    let mut recorder = match &setup.record {
        Some((path, max_bytes)) => {
            let interval = setup.collect.poll_interval.as_millis() as u64;
            let r = crate::record::Recorder::open(path, &setup.target_info.url, interval, *max_bytes, now_millis())
                .map_err(|e| DashboardError::Record(e.to_string()))?;
            Some(r)
        }
        None => None,
    };
    // Going on with a recording: the charts show what it holds, with a gap for the time
    // sessiontop was not running.
    let resumed = match (recorder.as_mut(), &setup.record) {
        (Some(r), Some((path, _))) => r.resume(path),
        _ => None,
    };
    let mut recorded_at: Option<i64> = None;
    let mut record_failure_said = false;
    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    // The table's rows live on the engine's own thread; its views come back on a channel.
    let (views_tx, mut views) = mpsc::unbounded_channel();
    let worker = crate::store::spawn(setup.max_rows, move |view| views_tx.send(view).is_ok());
    if let Some(history) = resumed {
        model.history = history;
    }
    let mut app = App::with_table(model, keymap, (size.width, size.height), Table::Thread(worker));
    for w in &setup.warnings {
        app.on_update(crate::msg::Update::Notice(w.clone()));
    }

    let (stop, mut input, reader) = spawn_input_reader();

    let send = |requests: Vec<Request>| {
        for r in requests {
            let _ = collector.requests.send(r);
        }
    };
    let mut tick = tokio::time::interval(TICK_INTERVAL);
    let mut dirty = true;
    let mut last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
    let result = loop {
        if PANICKED.load(Ordering::SeqCst) {
            break Err(DashboardError::Panicked);
        }
        if app.quit {
            break Ok(());
        }
        let now = tokio::time::Instant::now();
        if dirty && now.duration_since(last_draw) >= FRAME_INTERVAL {
            terminal.draw(|frame| crate::ui::draw(frame, &app, &theme))?;
            dirty = false;
            last_draw = now;
        }
        let next_frame = last_draw + FRAME_INTERVAL;
        tokio::select! {
            biased;
            Some(ev) = input.recv() => {
                let requests = match ev {
                    Event::Key(key) => app.on_key(key),
                    Event::Mouse(mouse) => app.on_mouse(mouse),
                    Event::Resize(w, h) => app.on_resize(w, h),
                    _ => Vec::new(),
                };
                send(requests);
                dirty = true;
            }
            Some(view) = views.recv() => {
                // Only the newest view matters.
                let mut view = view;
                while let Ok(newer) = views.try_recv() {
                    view = newer;
                }
                // The answer to a key (a sort, a filter, a move) is drawn at once, not at the
                // next frame: the frame cap is for data, which never holds a key back.
                let answers_key = app.table.awaits(view.serial);
                send(app.on_view(view));
                dirty = true;
                if answers_key {
                    last_draw = tokio::time::Instant::now() - FRAME_INTERVAL;
                }
            }
            Some(update) = updates.recv() => {
                send(app.on_update(update));
                // Apply whatever else is waiting before drawing.
                while let Ok(update) = updates.try_recv() {
                    send(app.on_update(update));
                }
                dirty = true;
            }
            _ = tick.tick() => {
                app.model.utc_offset_s = chrono::Local::now().offset().local_minus_utc();
                send(app.on_tick(now_millis(), setup.load.total()));
                if let Some((page, _)) = &metrics {
                    page.set(crate::metrics::exposition(&app.model, &metrics_target));
                }
                // A line for each new server poll; the disk is the recording thread's.
                if let Some(r) = recorder.as_mut() {
                    if app.model.server_at.is_some() && app.model.server_at != recorded_at {
                        recorded_at = app.model.server_at;
                        r.record(&app.model.history, &app.model.findings, app.model.now);
                    }
                    if let Some(why) = r.status().failed
                        && !record_failure_said
                    {
                        record_failure_said = true;
                        send(app.on_update(crate::msg::Update::Notice(why)));
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
    drop(collector);
    drop(terminal);
    drop(guard);
    let _ = reader.join();
    result
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

/// `replay`: the charts of a recording, played back (see [`crate::replay`]). The same terminal
/// handling as the dashboard, no collectors.
pub async fn replay(setup: Setup, recording: crate::record::Recording, file: &str) -> Result<(), DashboardError> {
    use std::io::IsTerminal;
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        return Err(DashboardError::NotATerminal);
    }
    let Some(mut player) = crate::replay::Player::new(&recording) else {
        return Err(DashboardError::Record(format!("{file} holds no sample to replay")));
    };
    let theme = load_theme(&setup)?;
    let keymap = Keymap::with_overrides(&setup.bindings).map_err(DashboardError::Keys)?;
    let target = crate::domain::TargetInfo {
        url: recording.target.clone(),
        name: Some(format!("replay of {file}")),
        read_only: true,
    };
    let mut model = Model::new(target, setup.model_settings(), player.now);
    model.apply(crate::msg::Update::Link(crate::domain::LinkState::Connected { since: player.first }));
    model.history = recording.history.clone();
    model.layout_note = Some("replaying a recording".into());
    model.utc_offset_s = chrono::Local::now().offset().local_minus_utc();

    let guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let size = terminal.size()?;
    let mut app = App::new(model, keymap, (size.width, size.height));
    app.view = crate::app::View::Charts;

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
        app.status = Some(crate::app::Status {
            at: player.now,
            text: player.status(app.model.utc_offset_s),
            level: crate::app::Level::Info,
        });
        terminal.draw(|frame| crate::ui::draw(frame, &app, &theme))?;
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
