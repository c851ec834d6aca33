//! The probes' stacks, symbolized from the target's own `.gopclntab`.

use mapleak_common::Site;

use crate::{
    aggregate::stacks::StackTable,
    inspect::symbolize::Symbolizer,
    report::sites::{ResolvedStack, SourceSite, StackFrame},
};

/// Frames of the runtime itself: a call site is the first frame outside them.
const RUNTIME_PREFIXES: [&str; 2] = ["runtime.", "internal/runtime/"];

pub struct StackResolver<'a> {
    pub stacks: &'a StackTable,
    pub symbolizer: Option<Symbolizer<'a>>,
    /// Subtracted from run-time addresses (PIE) to get the binary's own.
    pub bias: u64,
}

impl StackResolver<'_> {
    pub fn resolve(&mut self, site: &Site) -> ResolvedStack {
        let Some(symbolizer) = self.symbolizer.as_mut() else {
            return ResolvedStack::default();
        };
        let pcs: Vec<u64> = self
            .stacks
            .get(site.stack_id)
            .unwrap_or_default()
            .iter()
            .map(|pc| pc.wrapping_sub(self.bias))
            .collect();
        let frames = symbolizer.stack_pcs(&pcs);
        let site = frames
            .iter()
            .find(|(_, f)| !RUNTIME_PREFIXES.iter().any(|p| f.function.starts_with(p)))
            .map(|(_, f)| SourceSite {
                function: f.function.clone(),
                file: f.file.clone(),
                line: f.line,
            });
        ResolvedStack {
            site,
            frames: frames
                .into_iter()
                .map(|(pc, f)| StackFrame {
                    pc: format!("{pc:#x}"),
                    function: f.function,
                    file: f.file,
                    line: f.line,
                    inlined: f.inlined,
                })
                .collect(),
        }
    }
}
