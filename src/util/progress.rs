//! A progress bar on stderr for long one-shot work (a census pass of `snapshot`, `check`,
//! `fix`, `serve`'s first pass): sessions counted, their rate, the time left when the walk
//! knows how far it has come, and what the work costs Redis. Drawn only when stderr is a
//! terminal (a pipe, a file or a CI log sees nothing), at most a few times a second, and
//! cleared when the work ends, so what follows prints as it would without it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Steps of the bar: the walk's fraction in thousandths.
const STEPS: u64 = 1000;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar for `what` ("census"), shown only when stderr is a terminal.
    pub fn start(what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template("{prefix} [{bar:24}] {percent:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { bar, started: Instant::now() }
    }

    /// Whether anything is drawn.
    pub fn shown(&self) -> bool {
        self.bar.is_some()
    }

    /// After a batch: sessions counted so far, how far the walk has come (when it knows), and
    /// the share of a Redis core the work costs with its budget (`48% of a core (budget 50%)`).
    pub fn update(&self, counted: u64, fraction: Option<f64>, cost: Option<String>) {
        let Some(bar) = &self.bar else { return };
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { counted as f64 / elapsed } else { 0.0 };
        let mut msg =
            format!("{} sessions counted, {}/s", super::text::grouped(counted), super::text::grouped(rate as u64));
        if let Some(f) = fraction.filter(|f| *f > 0.01 && *f < 1.0) {
            let left = elapsed * (1.0 - f) / f;
            msg.push_str(&format!(", {} left", super::text::human_duration(left.ceil() as i64)));
        }
        if let Some(cost) = cost {
            msg.push_str(&format!(", Redis {cost}"));
        }
        bar.set_position(fraction.map_or(0, |f| (f.clamp(0.0, 1.0) * STEPS as f64) as u64));
        bar.set_message(msg);
    }

    /// Runs `f` (which prints to the same terminal) with the bar out of the way, then draws it
    /// again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Clears the bar (what follows prints where it was).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
