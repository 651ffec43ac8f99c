//! Regenerates the README's screenshots: `cargo run --example screenshots`.
//!
//! They are real renders: a throwaway redis-server filled by the demo's simulator, the real
//! collectors feeding the real dashboard state, and the real drawing code, rendered into a
//! 160x48 buffer and written as SVG (one text run per cell style, so the layout holds in any
//! monospace font).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

use std::fmt::Write as _;
use std::time::Duration;

use clap::Parser;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use sessiontop::cli::Cli;
use sessiontop::collect;
use sessiontop::dashboard::app::{App, Dialog};
use sessiontop::dashboard::keymap::Keymap;
use sessiontop::dashboard::theme::Theme;
use sessiontop::demo::local_redis::{LocalRedis, Options};
use sessiontop::engine::model::Model;
use sessiontop::engine::msg::{Request, Update};
use sessiontop::setup::Setup;
use tokio::sync::mpsc::UnboundedReceiver;

const SIZE: (u16, u16) = (160, 48);
/// How long the collectors get to reach each state.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("screenshots: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let server = LocalRedis::start(Options::default()).map_err(|e| e.to_string())?;
    let url = server.socket_url();
    let link = sessiontop::demo::writer(&url).await.map_err(|e| e.to_string())?;
    let mut sim = sessiontop::demo::Simulator::new(fastrand::Rng::with_seed(7));
    sim.fill(&link, 2000).await.map_err(|e| e.to_string())?;
    // Live traffic while the screenshots are taken.
    let traffic = tokio::spawn(async move {
        loop {
            let _ = sim.step(&link).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let cli =
        Cli::parse_from(["sessiontop", "--url", url.as_str(), "--audit-log", "/dev/null", "--poll-interval", "500ms"]);
    let setup = Setup::new(&cli.global).map_err(|e| e.to_string())?;
    let model = Model::new(setup.first().info.clone(), setup.model_settings(), collect::now_millis());
    let (collector, updates) = setup.spawn_collectors(setup.collect.clone());
    let (host_task, host) = collect::host::spawn(Vec::new(), setup.collect.poll_interval);
    let mut feed = Feed { updates, host, commands: &collector };
    let mut app = App::new(model, Keymap::default(), SIZE);
    let send = |requests: Vec<Request>| {
        for r in requests {
            let _ = collector.requests.send(r);
        }
    };

    // The overview once the census is complete and the visible rows carry their memory.
    // Give the trends a few seconds of history too.
    until(&mut app, &mut feed, &send, |a| {
        a.model.census.complete.is_some()
            && a.table.visible().take(a.table_rows()).filter(|r| r.memory_bytes.is_some()).count() > 20
            && a.model.history.get("ops_per_sec").is_some_and(|h| h.recent(16).len() >= 16)
            && a.model.own.commands_per_sec.is_some()
    })
    .await?;
    let dark = Theme::load("default").map_err(|e| e.to_string())?;
    let light = Theme::load("light").map_err(|e| e.to_string())?;
    write(&out.join("overview.svg"), &app, &dark)?;
    write(&out.join("overview-light.svg"), &app, &light)?;

    // The charts: ops/s over the last minute, once there is a minute of polls.
    until(&mut app, &mut feed, &send, |a| {
        a.model.history.get("ops_per_sec").is_some_and(|h| {
            h.window(a.model.now - 60_000, a.model.now, 2000, 400).runs.iter().map(Vec::len).sum::<usize>() >= 50
        })
    })
    .await?;
    send(app.on_key(KeyEvent::from(KeyCode::Char('c'))));
    for _ in 0..5 {
        send(app.on_key(KeyEvent::from(KeyCode::Char('j'))));
    }
    for _ in 0..4 {
        send(app.on_key(KeyEvent::from(KeyCode::Char('w'))));
    }
    write(&out.join("charts.svg"), &app, &dark)?;
    send(app.on_key(KeyEvent::from(KeyCode::Esc)));

    // The inspector on a stalled session with history: the most idle first, to find one.
    send(app.on_key(KeyEvent::from(KeyCode::Char('S'))));
    send(app.on_key(KeyEvent::from(KeyCode::Home)));
    let stalled = app
        .table
        .view
        .window
        .iter()
        .filter(|r| app.model.is_stalled(r) && r.history_len.unwrap_or(0) >= 5)
        .map(|r| r.id.clone())
        .min()
        .ok_or("no stalled session in the demo data")?;
    app.table.selected = Some(stalled.clone());
    send(app.on_key(KeyEvent::from(KeyCode::Enter)));
    until(&mut app, &mut feed, &send, |a| a.model.inspect.as_ref().is_some_and(|r| r.id == stalled)).await?;
    write(&out.join("inspector.svg"), &app, &dark)?;

    // The delete dialog, listing the exact keys.
    send(app.on_key(KeyEvent::from(KeyCode::Char('d'))));
    until(&mut app, &mut feed, &send, |a| matches!(a.dialog, Some(Dialog::Confirm { .. }))).await?;
    write(&out.join("delete-dialog.svg"), &app, &dark)?;
    println!("screenshots: wrote overview, overview-light, charts, inspector and delete-dialog to {}", out.display());
    traffic.abort();
    host_task.abort();
    drop(collector);
    drop(server);
    Ok(())
}

/// What the app is fed with: its collector's updates, the host room's samples, and the
/// commands the collector has sent (for the clock).
struct Feed<'a> {
    updates: UnboundedReceiver<Update>,
    host: UnboundedReceiver<Update>,
    commands: &'a collect::Collector,
}

/// Applies collector updates, host samples and the clock until `done` holds.
async fn until(
    app: &mut App,
    feed: &mut Feed<'_>,
    send: &impl Fn(Vec<Request>),
    done: impl Fn(&App) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while !done(app) {
        tokio::select! {
            update = feed.updates.recv() => match update {
                Some(update) => send(app.on_update(update)),
                None => return Err("the collectors stopped".into()),
            },
            Some(update) = feed.host.recv() => send(app.on_update(update)),
            _ = tick.tick() => send(app.on_tick(collect::now_millis(), feed.commands.commands_sent())),
            _ = tokio::time::sleep_until(deadline) => return Err("the collectors did not get there in time".into()),
        }
    }
    // One more tick so that the table order and the clock are current.
    send(app.on_tick(collect::now_millis(), feed.commands.commands_sent()));
    Ok(())
}

fn write(path: &std::path::Path, app: &App, theme: &Theme) -> Result<(), String> {
    let mut terminal = Terminal::new(TestBackend::new(SIZE.0, SIZE.1)).map_err(|e| e.to_string())?;
    terminal.draw(|f| sessiontop::dashboard::ui::draw(f, app, theme)).map_err(|e| e.to_string())?;
    let background = if theme.name == "light" { "#fbfbf8" } else { "#1b1d23" };
    let foreground = if theme.name == "light" { "#1f2328" } else { "#c9d1d9" };
    let svg = svg(terminal.backend().buffer(), background, foreground, theme.name == "light");
    std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))
}

const CELL_W: f64 = 8.4;
const CELL_H: f64 = 17.0;

/// A buffer as SVG: background rectangles and text runs per style.
fn svg(buffer: &Buffer, background: &str, foreground: &str, light: bool) -> String {
    let area = buffer.area;
    let (w, h) = (f64::from(area.width) * CELL_W, f64::from(area.height) * CELL_H);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="'DejaVu Sans Mono', Menlo, Consolas, monospace" font-size="14">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="{background}"/>"#);
    for y in 0..area.height {
        let mut x = 0;
        while x < area.width {
            let cell = &buffer[(x, y)];
            let style = CellStyle::of(cell, background, foreground, light);
            let start = x;
            let mut text = String::new();
            while x < area.width && CellStyle::of(&buffer[(x, y)], background, foreground, light) == style {
                text.push_str(buffer[(x, y)].symbol());
                x += 1;
            }
            let (px, py, len) = (f64::from(start) * CELL_W, f64::from(y) * CELL_H, f64::from(x - start) * CELL_W);
            if style.bg != background {
                let _ = writeln!(
                    out,
                    r#"<rect x="{px:.1}" y="{py:.1}" width="{len:.1}" height="{CELL_H}" fill="{}"/>"#,
                    style.bg
                );
            }
            if text.trim().is_empty() {
                continue;
            }
            let weight = if style.bold { r#" font-weight="bold""# } else { "" };
            let opacity = if style.dim { r#" opacity="0.6""# } else { "" };
            let _ = writeln!(
                out,
                r#"<text x="{px:.1}" y="{:.1}" fill="{}" textLength="{len:.1}" lengthAdjust="spacingAndGlyphs" xml:space="preserve"{weight}{opacity}>{}</text>"#,
                py + CELL_H * 0.78,
                style.fg,
                escape(&text)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[derive(PartialEq)]
struct CellStyle {
    fg: String,
    bg: String,
    bold: bool,
    dim: bool,
}

impl CellStyle {
    fn of(cell: &ratatui::buffer::Cell, background: &str, foreground: &str, light: bool) -> CellStyle {
        let mut fg = hex(cell.fg, light).unwrap_or_else(|| foreground.to_string());
        let mut bg = hex(cell.bg, light).unwrap_or_else(|| background.to_string());
        if cell.modifier.contains(Modifier::REVERSED) {
            std::mem::swap(&mut fg, &mut bg);
        }
        CellStyle { fg, bg, bold: cell.modifier.contains(Modifier::BOLD), dim: cell.modifier.contains(Modifier::DIM) }
    }
}

/// Terminal colours as a typical terminal palette shows them.
fn hex(color: Color, light: bool) -> Option<String> {
    let named = |dark: &str, on_light: &str| Some(if light { on_light } else { dark }.to_string());
    match color {
        Color::Reset => None,
        Color::Black => named("#1b1d23", "#1f2328"),
        Color::Red => named("#c0392b", "#b00020"),
        Color::Green => named("#4caf50", "#1a7f37"),
        Color::Yellow => named("#e5c07b", "#8a5a00"),
        Color::Blue => named("#4f8fdc", "#0550ae"),
        Color::Magenta => named("#c678dd", "#8250df"),
        Color::Cyan => named("#56b6c2", "#1b7c83"),
        Color::Gray => named("#b8bfc7", "#57606a"),
        Color::DarkGray => named("#6b7280", "#8c959f"),
        Color::LightRed => named("#ff6b6b", "#cf222e"),
        Color::LightGreen => named("#98e07b", "#1a7f37"),
        Color::LightYellow => named("#ffe082", "#9a6700"),
        Color::LightBlue => named("#8ab4f8", "#218bff"),
        Color::LightMagenta => named("#e0a3f5", "#a475f9"),
        Color::LightCyan => named("#8be9fd", "#3192aa"),
        Color::White => named("#f0f3f6", "#ffffff"),
        Color::Rgb(r, g, b) => Some(format!("#{r:02x}{g:02x}{b:02x}")),
        Color::Indexed(i) => Some(format!("#{0:02x}{0:02x}{0:02x}", i)),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
