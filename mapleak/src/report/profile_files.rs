//! The profile sinks' files: opened before the probes go in (so an unwritable path costs the
//! target nothing), written and put in place when the trace ends.

use super::{
    file::ReportFile,
    flamegraph,
    pprof::{self, Binary},
    profile::GrowthProfile,
};

#[derive(Default)]
pub struct Profiles {
    pub pprof: Option<ReportFile>,
    pub flamegraph: Option<ReportFile>,
}

impl Profiles {
    pub fn wanted(&self) -> bool {
        self.pprof.is_some() || self.flamegraph.is_some()
    }

    /// Writes each profile asked for; the error is one sentence.
    pub fn write(
        self,
        profile: &GrowthProfile,
        binary: &Binary,
        title: &str,
    ) -> Result<(), String> {
        if let Some(mut file) = self.pprof {
            let mut out = std::io::BufWriter::new(file.writer().map_err(|e| e.to_string())?);
            pprof::write(&mut out, profile, binary)
                .map_err(|e| format!("cannot write the pprof profile: {e}"))?;
            drop(out);
            file.commit().map_err(|e| e.to_string())?;
        }
        if let Some(mut file) = self.flamegraph {
            let mut out = std::io::BufWriter::new(file.writer().map_err(|e| e.to_string())?);
            flamegraph::write(&mut out, profile, title)
                .map_err(|e| format!("cannot write the flame graph: {e}"))?;
            drop(out);
            file.commit().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
