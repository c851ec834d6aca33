//! Command line: one module per subcommand; doc comments are the help text.

mod inspect;
mod trace;

use clap::{Parser, Subcommand};

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
    Inspect(inspect::InspectArgs),
}

/// Runs a subcommand; the error is one sentence for the user.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Trace(args) => trace::run(args),
        Command::Inspect(args) => {
            // Nothing to detach: Ctrl-C may stop it the ordinary way.
            crate::trace::signals::release();
            inspect::run(args)
        }
    }
}
