//! The probes' stacks, symbolized from the target's own `.gopclntab`.

use mapleak_common::StackRef;

use crate::{
    aggregate::stacks::StackTable,
    inspect::symbolize::Symbolizer,
    report::{
        owner::{Owner, Ownership},
        sites::{ResolvedStack, SourceSite, StackFrame},
    },
};

pub struct StackResolver<'a> {
    pub stacks: &'a StackTable,
    pub symbolizer: Option<Symbolizer<'a>>,
    /// Subtracted from run-time addresses (PIE) to get the binary's own.
    pub bias: u64,
    pub ownership: Ownership,
}

impl StackResolver<'_> {
    pub fn resolve(&mut self, site: &StackRef) -> ResolvedStack {
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
        let owners: Vec<Owner> = frames
            .iter()
            .map(|(_, f)| self.ownership.owner(&f.function, &f.file))
            .collect();
        let source = |i: usize| SourceSite {
            function: frames[i].1.function.clone(),
            file: frames[i].1.file.clone(),
            line: frames[i].1.line,
        };
        // The call site: the first frame out of the runtime. The line to edit: the first frame
        // of the program's own code, through whatever library code lies between.
        let site = owners.iter().position(|o| *o != Owner::Runtime);
        let own = owners.iter().position(|o| *o == Owner::Own);
        let via = match (site, own) {
            (Some(s), Some(o)) if s < o => frames[s..o]
                .iter()
                .map(|(_, f)| f.function.clone())
                .collect(),
            _ => Vec::new(),
        };
        ResolvedStack {
            site: site.map(source),
            own: own.map(source),
            via,
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
