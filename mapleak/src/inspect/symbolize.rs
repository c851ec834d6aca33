//! Captured user stacks → function, file and line, from `.gopclntab` alone (so stripped
//! binaries work), inlined calls included, as `runtime.CallersFrames` and `go tool pprof`
//! show them.

use std::collections::HashMap;

use super::pclntab::{Frame, Pclntab};
use super::{GoElf, InspectError, symbols};

/// Sections that can hold `runtime.firstmoduledata`: its own from Go 1.26, `.noptrdata` before.
pub(crate) const MODULEDATA_SECTIONS: [&str; 2] = [".go.module", ".noptrdata"];

/// Symbolizes PCs of one binary, remembering each answer: stacks repeat, and a deep inline
/// chain costs several pc-value table walks.
pub struct Symbolizer<'a> {
    table: Pclntab<'a>,
    cache: HashMap<u64, Entry>,
}

/// The frames at one PC, and which of them are wrappers.
struct Entry {
    frames: Vec<Frame>,
    wrapper: Vec<bool>,
}

/// Callees whose wrapper callers tracebacks keep (runtime `elideWrapperCalling`): a panic
/// raised in the wrapper itself.
const PANICS: [&str; 3] = ["runtime.gopanic", "runtime.sigpanic", "runtime.panicwrap"];

impl<'a> Symbolizer<'a> {
    pub fn new(table: Pclntab<'a>) -> Self {
        Self {
            table,
            cache: HashMap::new(),
        }
    }

    /// The binary's pclntab with its funcdata located, for the Go minor version `minor`
    /// (from the build information; it decides the module data layout).
    ///
    /// When `runtime.firstmoduledata` cannot be found, symbolization still works but without
    /// inlined frames; [`Symbolizer::has_inline_info`] tells.
    pub fn for_elf(elf: &GoElf<'a>, minor: u32) -> Result<Self, InspectError> {
        let table = symbols::pclntab(elf)?;
        let gofunc = MODULEDATA_SECTIONS
            .iter()
            .filter_map(|name| elf.section(name))
            .find_map(|module| table.moduledata_gofunc(module, minor))
            .and_then(|address| elf.data_at(address));
        Ok(Self::new(match gofunc {
            Some(bytes) => table.with_gofunc(bytes),
            None => table,
        }))
    }

    pub fn table(&self) -> &Pclntab<'a> {
        &self.table
    }

    /// Whether funcdata was located, i.e. inlined calls are expanded.
    pub fn has_inline_info(&self) -> bool {
        self.table.has_gofunc()
    }

    /// [`Pclntab::symbolize`], cached: frames for the instruction at `pc`, innermost first.
    pub fn frames(&mut self, pc: u64) -> &[Frame] {
        &self.entry(pc).frames
    }

    fn entry(&mut self, pc: u64) -> &Entry {
        let table = &self.table;
        self.cache.entry(pc).or_insert_with(|| {
            let (frames, wrapper) = table.symbolize_marked(pc).into_iter().unzip();
            Entry { frames, wrapper }
        })
    }

    /// A user stack as captured by the kernel, as Go's tracebacks (and so pprof) show it:
    /// `pcs[0]` is where the thread was stopped, the others are return addresses, looked up
    /// at `ret - 1` (inside the call instruction) like the runtime does.
    ///
    /// Like the runtime, compiler-generated wrappers (ABI wrappers, promoted and
    /// pointer-receiver methods) are left out unless they called a panic; addresses outside
    /// Go code are skipped.
    pub fn stack(&mut self, pcs: &[u64]) -> Vec<Frame> {
        self.stack_pcs(pcs).into_iter().map(|(_, f)| f).collect()
    }

    /// [`Symbolizer::stack`], each frame with the PC it was looked up at (`ret - 1` for
    /// return addresses), to check against other symbolizers.
    pub fn stack_pcs(&mut self, pcs: &[u64]) -> Vec<(u64, Frame)> {
        let mut out = Vec::new();
        let mut callee_panics = false;
        for (k, &pc) in pcs.iter().enumerate() {
            let pc = if k == 0 { pc } else { pc.wrapping_sub(1) };
            let entry = self.entry(pc);
            for (frame, &wrapper) in entry.frames.iter().zip(&entry.wrapper) {
                if !wrapper || callee_panics {
                    out.push((pc, frame.clone()));
                }
                callee_panics = PANICS.contains(&frame.function.as_str());
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
