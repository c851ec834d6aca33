use super::Error;
use std::{ffi::OsString, process::ExitCode};

use super::flags::TraceFlags;
use crate::trace::{self, launch::Launched, signals::Stops};

/// Start a Go program and trace it from its first instruction until it exits.
///
/// The report goes to standard error (the program keeps standard output) unless --output is
/// given. A command that is not Go (`env`, a wrapper script) runs until it executes one. The
/// terminal's Ctrl-C reaches the program as usual; a signal sent to mapleak alone is passed on.
/// mapleak exits with the program's status.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    flags: TraceFlags,
    /// The program and its arguments, after `--`.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn run(args: RunArgs) -> Result<ExitCode, Error> {
    let mut launched = Launched::spawn(&args.command)?;
    // A program started to be measured is measured exactly: sampled estimates need many
    // windows, and a short program's phases (parsing, then compiling, say) grow maps at rates
    // a few windows do not represent. A budget on the command line brings the governor back.
    let exact = !args.flags.budget_given();
    let mut opts = args.flags.options(launched.pid());
    opts.exact |= exact;
    opts.report_to_stderr = true;
    opts.launched = true;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let mut stops = Stops::install().map_err(Error::Signals)?;
        let outcome = trace::run(opts, Some(&mut launched), &mut stops).await?;
        // The report is out; the program may still run (after --duration): its status is
        // mapleak's, unless it succeeded and the trace did not.
        let code = launched.wait(&mut stops).await;
        match outcome.failure {
            Some(why) if code == 0 => Err(Error::Said(why)),
            _ => Ok(ExitCode::from(code)),
        }
    })
}
