//! Where reports go. Each format is a sink: the live intervals and the final report for people
//! (text) or scripts (JSON Lines), and the profiles (pprof, flame graph) built from every stack.
//! A sink is opened before anything is attached, so that an unwritable destination costs the
//! target nothing, and written when the trace ends.

use std::io::{self, Write};

use super::{
    Format, Interval, build::Report, file::ReportFile, flamegraph, json_line, pprof,
    profile::GrowthProfile, text,
};

/// Why a sink could not write.
#[derive(Debug)]
pub enum SinkError {
    /// Its reader went away (`mapleak trace … | head`): nothing more can be said to it.
    Closed,
    /// One sentence.
    Failed(String),
}

impl SinkError {
    fn of(e: io::Error, what: &str) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Self::Closed
        } else {
            Self::Failed(format!("cannot write {what}: {e}"))
        }
    }
}

pub trait Sink: Send {
    /// One live interval; profile sinks have nothing to say about it.
    fn interval(&mut self, _interval: &Interval) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether the report must carry every stack's growth for this sink.
    fn wants_profile(&self) -> bool {
        false
    }

    /// Writes the final report and puts the file in place.
    fn finish(self: Box<Self>, report: &Report) -> Result<(), SinkError>;
}

/// The report for people or scripts, on standard output, standard error or `--output`.
pub struct ReportSink {
    format: Format,
    out: Box<dyn Write + Send>,
    file: Option<ReportFile>,
}

impl ReportSink {
    /// To `file` when given, else to standard error (`to_stderr`) or standard output.
    pub fn new(format: Format, file: Option<ReportFile>, to_stderr: bool) -> io::Result<Self> {
        let mut file = file;
        let out: Box<dyn Write + Send> = match &mut file {
            Some(f) => Box::new(io::BufWriter::new(f.writer()?)),
            None if to_stderr => Box::new(io::stderr()),
            None => Box::new(io::stdout()),
        };
        Ok(Self { format, out, file })
    }
}

impl Sink for ReportSink {
    fn interval(&mut self, interval: &Interval) -> Result<(), SinkError> {
        match self.format {
            Format::Json => json_line(&mut self.out, interval),
            Format::Text => writeln!(self.out, "{}", text::interval(interval)),
        }
        .and_then(|()| self.out.flush())
        .map_err(|e| SinkError::of(e, "the report"))
    }

    fn finish(mut self: Box<Self>, report: &Report) -> Result<(), SinkError> {
        let summary = &report.summary;
        match self.format {
            Format::Json => json_line(&mut self.out, summary),
            Format::Text => write!(self.out, "{}", text::summary(summary)),
        }
        .and_then(|()| self.out.flush())
        .map_err(|e| SinkError::of(e, "the report"))?;
        drop(self.out);
        match self.file {
            Some(file) => file.commit().map_err(|e| SinkError::Failed(e.to_string())),
            None => Ok(()),
        }
    }
}

/// `--pprof FILE`: a gzipped profile.proto of every stack's growth.
pub struct PprofSink(pub ReportFile);

impl Sink for PprofSink {
    fn wants_profile(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, report: &Report) -> Result<(), SinkError> {
        write_profile(self.0, "the pprof profile", report, |out, profile| {
            pprof::write(out, profile, &report.binary)
        })
    }
}

/// `--flamegraph FILE.svg`: the same stacks as an SVG flame graph of bytes grown.
pub struct FlamegraphSink(pub ReportFile);

impl Sink for FlamegraphSink {
    fn wants_profile(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, report: &Report) -> Result<(), SinkError> {
        write_profile(self.0, "the flame graph", report, |out, profile| {
            flamegraph::write(out, profile, &report.title)
        })
    }
}

fn write_profile(
    mut file: ReportFile,
    what: &str,
    report: &Report,
    write: impl FnOnce(&mut dyn Write, &GrowthProfile) -> io::Result<()>,
) -> Result<(), SinkError> {
    let failed = |e: io::Error| SinkError::Failed(format!("cannot write {what}: {e}"));
    // The report carries the profile whenever a sink wants it (see `build`).
    let profile = report
        .profile
        .as_ref()
        .ok_or_else(|| SinkError::Failed(format!("cannot write {what}: no profile was built")))?;
    let mut out = io::BufWriter::new(file.writer().map_err(failed)?);
    write(&mut out, profile)
        .and_then(|()| out.flush())
        .map_err(failed)?;
    drop(out);
    file.commit().map_err(|e| SinkError::Failed(e.to_string()))
}
