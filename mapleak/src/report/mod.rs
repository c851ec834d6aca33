//! Reports: one data model ([`Summary`], [`Interval`]), built once ([`build`]) and written by
//! sinks ([`sink`]): text, JSON Lines, pprof, flame graph.

pub mod assist;
pub mod build;
pub mod file;
pub mod findings;
pub mod flamegraph;
pub mod gc;
pub mod gccost;
#[cfg(test)]
mod golden;
pub mod latency;
pub mod owner;
pub mod pprof;
pub mod profile;
pub mod room;
pub mod sampling;
pub mod sink;
pub mod sites;
pub mod summary;
pub mod text;
pub mod units;

pub use summary::{
    EventCounts, Interval, KernelCounters, MapRow, MapsSummary, ProbeHits, StopReason, Summary,
    TraceMeta,
};

use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub(crate) fn json_line<T: serde::Serialize>(
    out: &mut dyn Write,
    value: &T,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
