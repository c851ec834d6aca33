use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Held, not acted on, until the trace has its handlers: a Ctrl-C while mapleak starts must
    // end with a sentence or a report, never kill it with probes half attached.
    mapleak::trace::signals::hold();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = mapleak::cli::Cli::parse();
    match mapleak::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            mapleak::trace::say(&mapleak::cli::chain(&err));
            ExitCode::FAILURE
        }
    }
}
