//! Reports: one data model ([`Summary`], [`Interval`]) rendered as JSON Lines or text.

pub mod file;
pub mod findings;
pub mod flamegraph;
pub mod gc;
pub mod gccost;
pub mod owner;
pub mod pprof;
pub mod profile;
pub mod profile_files;
pub mod sampling;
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

/// Writes reports in one format to one sink.
pub struct Reporter {
    format: Format,
    out: Box<dyn Write + Send>,
}

impl Reporter {
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> Self {
        Self { format, out }
    }

    pub fn interval(&mut self, interval: &Interval) -> std::io::Result<()> {
        match self.format {
            Format::Json => json_line(&mut self.out, interval)?,
            Format::Text => writeln!(self.out, "{}", text::interval(interval))?,
        }
        self.out.flush()
    }

    pub fn summary(&mut self, summary: &Summary) -> std::io::Result<()> {
        match self.format {
            Format::Json => json_line(&mut self.out, summary)?,
            Format::Text => write!(self.out, "{}", text::summary(summary))?,
        }
        self.out.flush()
    }
}

fn json_line<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
