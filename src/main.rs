//! The `sessiontop` binary: parse the command line, run, turn any failure into one line on
//! stderr and an exit code.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use sessiontop::cli::Cli;
use sessiontop::run::{self, Exit};
use sessiontop::util::text;

fn main() -> ExitCode {
    sessiontop::util::memory::return_large_blocks_at_once();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = run::init_logging(cli.global.log.as_deref()).and_then(|()| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Exit::from)?.block_on(run::run(cli))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            // `check` says its verdict on stdout and exits with it; nothing more to say.
            if !exit.message.is_empty() {
                eprintln!("sessiontop: {}", text::sanitize_line(&exit.message));
            }
            ExitCode::from(exit.code)
        }
    }
}

/// `--help` and `--version` print as clap prints them; any other problem with the command line
/// is one `sessiontop:` line with a hint, and exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // "the following required arguments were not provided:" names them on the next line.
    if first.ends_with(':')
        && let Some(next) = lines.next()
    {
        first = format!("{first} {next}");
    }
    let hint = rendered
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("tip: "))
        .map(|t| format!("; {}", t.trim_start_matches("tip: ")))
        .unwrap_or_default();
    eprintln!("sessiontop: {}{hint} (see sessiontop --help)", text::sanitize_line(&first));
    // For `check`, 2 means critical: a command line it cannot run is "unknown" (3).
    if std::env::args().any(|a| a == "check") { ExitCode::from(run::CHECK_UNKNOWN) } else { ExitCode::from(2) }
}
