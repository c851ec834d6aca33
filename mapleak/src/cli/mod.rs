//! Command line: one module per subcommand; doc comments are the help text.

mod error;
mod flags;
mod inspect;
mod ps;
mod run;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
pub use error::{Error, chain};

/// Find the Go maps that grow, the GC pauses they cause and the memory they keep.
#[derive(Debug, Parser)]
#[command(name = "mapleak", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Trace(trace::TraceArgs),
    Run(run::RunArgs),
    Ps(ps::PsArgs),
    Inspect(inspect::InspectArgs),
}

/// Runs a subcommand; the error, with its causes ([`chain`]), is one sentence for the user.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Trace(args) => trace::run(args),
        Command::Run(args) => run::run(args),
        command => {
            // Nothing to detach: Ctrl-C may stop it the ordinary way.
            crate::trace::signals::release();
            match command {
                Command::Ps(args) => ps::run(args),
                Command::Inspect(args) => inspect::run(args),
                Command::Trace(_) | Command::Run(_) => unreachable!("matched above"),
            }
            .map(|()| ExitCode::SUCCESS)
        }
    }
}

/// The trace runs on one thread: its work is waiting, and a second thread would only compete
/// with the target for the CPU.
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
