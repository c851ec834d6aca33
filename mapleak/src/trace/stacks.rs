//! Stacks from the kernel's stack map, symbolized from the target's own `.gopclntab`.

use aya::maps::{MapData, StackTraceMap};
use mapleak_common::Site;

use crate::{
    inspect::symbolize::Symbolizer,
    report::sites::{ResolvedStack, SourceSite, StackFrame},
};

/// Frames of the runtime itself: a call site is the first frame outside them.
const RUNTIME_PREFIXES: [&str; 2] = ["runtime.", "internal/runtime/"];

pub struct StackResolver<'a> {
    pub stacks: Option<StackTraceMap<MapData>>,
    pub symbolizer: Option<Symbolizer<'a>>,
    /// Subtracted from run-time addresses (PIE) to get the binary's own.
    pub bias: u64,
}

impl StackResolver<'_> {
    pub fn resolve(&mut self, site: &Site) -> ResolvedStack {
        let Some(symbolizer) = self.symbolizer.as_mut() else {
            return ResolvedStack::default();
        };
        let ips: Vec<u64> = match (&self.stacks, u32::try_from(site.stack_id)) {
            (Some(map), Ok(id)) => map
                .get(&id, 0)
                .map(|s| s.frames().iter().map(|f| f.ip).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        // The probe fires before the probed function pushes its frame, so a frame-pointer walk
        // can miss its immediate caller; the return address at the stack top fills that in
        // unless the walk already has it.
        let mut pcs = Vec::with_capacity(ips.len() + 1);
        pcs.extend(ips.first().copied());
        if ips.get(1) != Some(&site.caller) {
            pcs.push(site.caller);
        }
        pcs.extend(ips.iter().skip(1).copied());
        let pcs: Vec<u64> = pcs.iter().map(|pc| pc.wrapping_sub(self.bias)).collect();
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
