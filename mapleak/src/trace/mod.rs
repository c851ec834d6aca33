//! `mapleak trace`: load the kernel programs, attach them to one Go process, stream events into
//! the aggregator, report, and detach everything on the way out.

pub mod bias;
pub mod calibrate;
pub mod duty;
pub mod error;
pub mod governor;
pub mod live;
pub mod loader;
pub mod privileges;
pub mod ratio;
pub mod sampler;
pub mod session;
pub mod signals;
pub mod stacks;
pub mod target;
pub mod work;

pub use error::TraceError;
pub use session::{OptInProbe, Outcome, TraceOptions, run};

/// A line for the person at the terminal, on stderr. A closed or full stderr must not end a
/// trace (the report may be going to a file), so a failed write is dropped.
pub fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "mapleak: {message}");
}
