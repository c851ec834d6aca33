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
pub mod sampler;
pub mod session;
pub mod stacks;
pub mod target;
pub mod work;

pub use error::TraceError;
pub use session::{OptInProbe, TraceOptions, run};
