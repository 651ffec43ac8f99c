//! The `sessiontop` binary: parse the command line, run, turn any failure into one line on
//! stderr and an exit code.

use std::process::ExitCode;

use clap::Parser;
use sessiontop::cli::Cli;
use sessiontop::run::{self, Exit};
use sessiontop::text;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run::init_logging(cli.global.log.as_deref()).and_then(|()| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Exit::from)?.block_on(run::run(cli))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            eprintln!("sessiontop: {}", text::sanitize_line(&exit.message));
            ExitCode::from(exit.code)
        }
    }
}
