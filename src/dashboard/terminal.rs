//! The terminal the dashboard draws on: raw mode and the alternate screen for as long as a
//! [`TerminalGuard`] lives, restored on every way out (normal exit, error, and panic through
//! the hook), and the terminal's input read on a thread of its own.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{self, DisableMouseCapture, EnableMouseCapture, Event};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use crossterm::{cursor, execute};
use tokio::sync::mpsc;

/// How long the input thread waits for an event before checking whether to stop.
const INPUT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Set by the panic hook, so the event loop stops drawing to a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Whether a panic has restored the terminal under the loop.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Whether stdin and stdout are both a terminal.
pub fn is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && io::stdin().is_terminal()
}

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

/// The terminal's events, read on a thread of its own (so a key is seen however busy the loop
/// is) until dropped.
pub struct Input {
    pub events: mpsc::UnboundedReceiver<Event>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Input {
    pub fn spawn() -> Input {
        let (input_tx, events) = mpsc::unbounded_channel::<Event>();
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
        Input { events, stop, reader: Some(reader) }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
