use super::Error;
use std::process::ExitCode;

use super::flags::TraceFlags;
use crate::trace::{self, signals::Stops};

/// Attach to a running Go process and report its map growth live.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true))]
pub struct TraceArgs {
    /// Process to trace.
    #[arg(long, group = "target")]
    pid: Option<u32>,
    /// Trace the one Go process whose name (or executable's file name) matches this regular
    /// expression; when several do, they are listed and nothing is traced.
    #[arg(long, group = "target", value_name = "REGEX")]
    name: Option<regex::Regex>,
    #[command(flatten)]
    flags: TraceFlags,
}

pub fn run(args: TraceArgs) -> Result<ExitCode, Error> {
    let pid = match (args.pid, &args.name) {
        (Some(pid), _) => pid,
        (None, Some(name)) => crate::procs::one_named(name)?,
        (None, None) => unreachable!("clap requires --pid or --name"),
    };
    let opts = args.flags.options(pid);
    let runtime = super::runtime()?;
    let outcome = runtime.block_on(async {
        let mut stops = Stops::install().map_err(Error::Signals)?;
        Ok::<_, Error>(trace::run(opts, None, &mut stops).await?)
    })?;
    match outcome.failure {
        Some(why) => Err(Error::Said(why)),
        None => Ok(ExitCode::SUCCESS),
    }
}
