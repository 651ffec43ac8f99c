//! Runs a parsed command line: sets up logging, builds the setup and dispatches to the
//! dashboard, the demo or a headless command. Errors come back as one line and an exit code.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::{Cli, Command};
use crate::collect::fix::FixOrder;
use crate::engine::msg::{WriteKind, WritePlan};
use crate::engine::names::SessionId;
use crate::headless::{self, HeadlessError};

use crate::setup::Setup;
use crate::util::text;

/// A failure at the program's edge: the line to print and the exit code.
#[derive(Debug)]
pub struct Exit {
    pub message: String,
    pub code: u8,
}

impl<E: std::fmt::Display> From<E> for Exit {
    fn from(e: E) -> Self {
        Exit { message: e.to_string(), code: 1 }
    }
}

fn headless_exit(e: HeadlessError) -> Exit {
    Exit { code: e.exit_code() as u8, message: e.to_string() }
}

/// A failure of Redis itself, named with the target it came from (`timed out` alone would not
/// say which server, nor, for a write, that it may still happen).
fn redis_exit(setup: &Setup) -> impl Fn(HeadlessError) -> Exit + '_ {
    move |e| {
        let url = setup.first().target.redacted_url();
        let message = match &e {
            HeadlessError::Redis(f) => format!("{url}: {f}"),
            HeadlessError::Write(crate::collect::write::WriteError::Redis(f)) if f.is_connection() => {
                format!("{url}: {f}; the write may or may not have happened (see the audit log and inspect)")
            }
            HeadlessError::Write(crate::collect::write::WriteError::Redis(f)) => format!("{url}: {f}"),
            _ => e.to_string(),
        };
        Exit { code: e.exit_code() as u8, message }
    }
}

/// `report`: reads a recording and prints what it saw (and writes the HTML page).
fn report(args: &crate::cli::ReportArgs) -> Result<(), Exit> {
    let recording =
        crate::export::record::Recording::read(&args.file).map_err(|e| Exit { message: e.to_string(), code: 1 })?;
    let offset = chrono::Local::now().offset().local_minus_utc();
    let file = args.file.display().to_string();
    if let Some(out) = &args.html {
        let page = crate::headless::report::html(&recording, &file, offset);
        std::fs::write(out, page)
            .map_err(|e| Exit { message: format!("cannot write {}: {e}", out.display()), code: 1 })?;
    }
    print!("{}", crate::headless::report::text(&recording, &file, offset));
    Ok(())
}

/// `man`: the page of the whole command line on stdout, or with `dir` it and a page for each
/// subcommand written there.
fn man(dir: Option<&std::path::Path>) -> Result<(), Exit> {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        return write_out(&page);
    };
    let cannot =
        |e: std::io::Error| Exit { message: format!("cannot write man pages to {}: {e}", dir.display()), code: 1 };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    clap_mangen::generate_to(command, dir).map_err(cannot)?;
    Ok(())
}

/// Writes generated text to stdout; a reader that went away (`| head`) is no error.
fn write_out(bytes: &[u8]) -> Result<(), Exit> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Exit::from(e)),
        _ => Ok(()),
    }
}

/// Writes logs to `path` (never to the terminal); the level comes from `$SESSIONTOP_LOG`.
pub fn init_logging(path: Option<&std::path::Path>) -> Result<(), Exit> {
    let Some(path) = path else { return Ok(()) };
    let file = crate::collect::write::open_private(path)
        .map_err(|e| Exit { message: format!("cannot open log file {}: {e}", path.display()), code: 1 })?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SESSIONTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::sync::Mutex::new(file)).init();
    Ok(())
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), Exit> {
    let command = match cli.command {
        Some(Command::Demo(args)) => return crate::demo::run(&cli.global, &args).await.map_err(Exit::from),
        Some(Command::Report(args)) => return report(&args),
        Some(Command::Completions(args)) => {
            // Into a buffer first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "sessiontop", &mut script);
            return write_out(&script);
        }
        Some(Command::Man(args)) => return man(args.dir.as_deref()),
        Some(Command::Serve(args)) => {
            return crate::serve::run(Setup::new(&cli.global)?, args.log_format).await.map_err(Exit::from);
        }
        Some(command) => command,
        None => return dashboard(Setup::new(&cli.global)?).await,
    };
    let setup = Setup::new(&cli.global)?;
    let target = setup.one()?;
    if let Command::Replay(args) = &command {
        let recording = crate::export::record::Recording::read(&args.file)?;
        let file = args.file.display().to_string();
        return crate::dashboard::replay(&setup, recording, &file).await.map_err(Exit::from);
    }
    for w in &setup.warnings {
        eprintln!("sessiontop: warning: {w}");
    }
    if let Command::Check(args) = &command {
        return check(&setup, args).await;
    }
    if let Command::Doctor(args) = &command {
        return doctor(&setup, args.json).await;
    }
    // Refuse writes before connecting, so read-only is obviously safe.
    let writes = match &command {
        Command::Fix(args) => !args.dry_run,
        other => matches!(other, Command::Expire(_) | Command::Persist(_) | Command::Delete(_)),
    };
    if writes && target.writer.is_read_only() {
        return Err(headless_exit(HeadlessError::Write(crate::collect::write::WriteError::ReadOnly)));
    }
    let mut store = headless::open(&setup).await.map_err(redis_exit(&setup))?;
    // What detection chose is said once the command has succeeded; a failure says it in its
    // own line instead, so failures stay one line.
    let note = store.note.as_ref().map(|_| format!("sessiontop: layout {}", store.describe_layout()));
    one_shot(&setup, &mut store, command).await?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(())
}

/// The dashboard, on every target given.
async fn dashboard(setup: Setup) -> Result<(), Exit> {
    let warnings = setup.warnings.clone();
    let result = crate::dashboard::run(setup).await.map_err(Exit::from);
    // Said on screen while it ran; said again where it stays once the screen is gone.
    for w in warnings {
        eprintln!("sessiontop: warning: {w}");
    }
    result
}

/// A one-shot command on the store it opened.
async fn one_shot(setup: &Setup, store: &mut headless::Store, command: Command) -> Result<(), Exit> {
    let exit = redis_exit(setup);
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Demo(_)
        | Command::Check(_)
        | Command::Report(_)
        | Command::Replay(_)
        | Command::Serve(_)
        | Command::Completions(_)
        | Command::Doctor(_)
        | Command::Man(_) => {
            unreachable!("handled by run")
        }
        Command::Fix(args) => fix(setup, store, &args).await?,
        Command::Events(args) => {
            drop(stdout);
            crate::headless::events::follow(store, args.json, args.count).await.map_err(&exit)?;
        }
        Command::Snapshot(args) => {
            let data = headless::snapshot(setup, store, args.limit, !args.no_census).await.map_err(&exit)?;
            if args.json {
                writeln!(stdout, "{}", text::json_pretty(&headless::json::snapshot(&data, setup)))?;
            } else {
                write!(stdout, "{}", headless::plain::snapshot(&data))?;
            }
        }
        Command::Inspect(args) => {
            let id = match (&args.id, &args.by) {
                (Some(id), _) => SessionId::from_escaped(id),
                (None, Some(by)) => headless::find_by_app_id(setup, store, by).await.map_err(&exit)?,
                (None, None) => unreachable!("clap requires an id or --by"),
            };
            let (report, model) = headless::inspect(setup, store, &id).await.map_err(&exit)?;
            if args.json {
                let json = headless::json::inspect(&report, &model, store.layout().map_err(&exit)?);
                writeln!(stdout, "{}", text::json_pretty(&json))?;
            } else {
                write!(stdout, "{}", headless::plain::inspect(&report, &model))?;
            }
        }
        Command::Expire(args) => {
            let id = SessionId::from_escaped(&args.id);
            let kind = WriteKind::Expire(args.ttl.as_secs().max(1) as i64);
            let outcome = headless::write(setup, store, &id, kind, |_| Ok(())).await.map_err(&exit)?;
            write!(stdout, "{}", headless::plain::outcome(&outcome))?;
        }
        Command::Persist(args) => {
            let id = SessionId::from_escaped(&args.id);
            let outcome = headless::write(setup, store, &id, WriteKind::Persist, |_| Ok(())).await.map_err(&exit)?;
            write!(stdout, "{}", headless::plain::outcome(&outcome))?;
        }
        Command::Delete(args) => {
            let (id, yes) = (SessionId::from_escaped(&args.id), args.yes);
            let confirm = |plan: &WritePlan| {
                if yes { Ok(()) } else { confirm_on_terminal(&headless::plain::plan(plan), "Delete?") }
            };
            let outcome = headless::write(setup, store, &id, WriteKind::Delete, confirm).await.map_err(&exit)?;
            write!(stdout, "{}", headless::plain::outcome(&outcome))?;
        }
    }
    Ok(())
}

/// `fix`: lists every change; with `--dry-run` that is all; else asks (or `--yes`), makes them
/// one by one and says how each went.
async fn fix(setup: &Setup, store: &mut headless::Store, args: &crate::cli::FixArgs) -> Result<(), Exit> {
    let exit = redis_exit(setup);
    let mut stdout = std::io::stdout().lock();
    let kind = crate::engine::domain::FindingKind::ALL
        .into_iter()
        .find(|k| k.name() == args.finding)
        .ok_or_else(|| Exit { message: format!("no finding '{}'", args.finding), code: 2 })?;
    let write = match (args.expire, args.delete) {
        (Some(d), _) => Some(WriteKind::Expire(d.as_secs() as i64)),
        (None, true) => Some(WriteKind::Delete),
        (None, false) => None,
    };
    let order = FixOrder { kind, write, ttl_s: args.ttl.map(|d| d.as_secs() as i64) };
    let fix = headless::plan_fix(setup, store, order, args.limit as usize).await.map_err(&exit)?;
    let listing = headless::plain::fix_plans(&fix);
    if args.dry_run || fix.plans.is_empty() {
        write!(stdout, "{listing}")?;
        if args.dry_run && !fix.plans.is_empty() {
            writeln!(stdout, "dry run: nothing was changed")?;
        }
        return Ok(());
    }
    if args.yes {
        write!(stdout, "{listing}")?;
    } else {
        confirm_on_terminal(&listing, "Apply these changes?").map_err(&exit)?;
    }
    let results = headless::apply_fix(store, &fix.plans).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    for r in &results {
        match r {
            Ok(outcome) => writeln!(stdout, "{}", outcome.summary())?,
            Err(e) => writeln!(stdout, "failed: {}", text::escape_str(&e.to_string()))?,
        }
    }
    if failed > 0 {
        return Err(Exit { message: format!("{failed} of {} changes failed", results.len()), code: 1 });
    }
    Ok(())
}

/// Shows the plan and asks on the terminal; refuses when stdin is not one. Default: no.
fn confirm_on_terminal(plan: &str, question: &str) -> Result<(), HeadlessError> {
    if !std::io::stdin().is_terminal() {
        return Err(HeadlessError::Refused(
            "refusing to write without confirmation: stdin is not a terminal (pass --yes)".into(),
        ));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{plan}{question} [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(HeadlessError::Refused("nothing was changed".into())),
    }
}

/// `check`: exit 0, 1 or 2 by the worst finding; 3 (unknown) for anything that keeps it from
/// judging: no connection, no permission; no session layout unless the server is worse.
async fn check(setup: &Setup, args: &crate::cli::CheckArgs) -> Result<(), Exit> {
    let unknown = |message: String| Exit { message: format!("UNKNOWN: {message}"), code: CHECK_UNKNOWN };
    let mut store = headless::open(setup).await.map_err(|e| unknown(redis_exit(setup)(e).message))?;
    // With no session layout the server is still judged; the verdict is the worse of the two.
    let (data, mut verdict) =
        headless::check(setup, &mut store, args.observe).await.map_err(|e| unknown(redis_exit(setup)(e).message))?;
    if store.layout.is_none() {
        let missing = format!(
            "no session layout found ({})",
            store.note.as_deref().map_or_else(|| "nothing detected".into(), text::escape_str)
        );
        verdict.unjudged = Some(match verdict.unjudged.take() {
            Some(also) => format!("{missing}; {also}"),
            None => missing,
        });
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", text::json_pretty(&headless::json::check(&verdict, &data, setup)))?;
    } else {
        write!(stdout, "{}", headless::plain::check(&verdict, &data))?;
    }
    stdout.flush()?;
    match verdict.exit_code() {
        0 => Ok(()),
        code => Err(Exit { message: String::new(), code }),
    }
}

/// `doctor`: the report, and the exit code as `check`'s (3 when it cannot connect).
async fn doctor(setup: &Setup, json: bool) -> Result<(), Exit> {
    let diagnosis = crate::headless::doctor::diagnose(setup)
        .await
        .map_err(|e| Exit { message: format!("UNKNOWN: {}", redis_exit(setup)(e).message), code: CHECK_UNKNOWN })?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", text::json_pretty(&serde_json::to_value(&diagnosis)?))?;
    } else {
        write!(stdout, "{}", crate::headless::doctor::text(&diagnosis))?;
    }
    stdout.flush()?;
    match diagnosis.exit_code {
        0 => Ok(()),
        code => Err(Exit { message: String::new(), code }),
    }
}

pub use crate::headless::CHECK_UNKNOWN;
