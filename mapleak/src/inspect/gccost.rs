//! Where the runtime keeps each GC cycle's cost — `runtime.work` (the phase clocks and P counts
//! gctrace computes pause CPU from) and `runtime.gcCPULimiter` — in binaries with or without
//! symbols; `runtime.gcController`, the third, is found by [`super::gccontroller`].
//!
//! Without `.symtab`: `work` from its `tSweepTerm` clock, which the GC's own code stores beside
//! the other clocks ([`gcdata::sweep_term_address`]), less the field's offset; the limiter by
//! [`super::limiter::address`], one of whose decodings is here: the receiver the GC passes to
//! `gcCPULimiterState` methods (`LEAQ runtime.gcCPULimiter(SB), AX`, the other arguments set,
//! then the call). Where neither works the figures are absent, with a note: never guessed.

use mapleak_common::GcCostLayout;

use super::{
    GoElf, GoVersion, gccontroller, gcdata,
    offsets::{self, GcControllerFields, GcCostFields},
    pclntab::Pclntab,
};

pub const WORK: &str = "runtime.work";
pub const LIMITER: &str = "runtime.gcCPULimiter";
const LIMITER_METHODS: &str = "runtime.(*gcCPULimiterState).";
/// `MOVL $1, BX; MOVQ x(SP), CX` and the like sit between the receiver's `LEA` and the call.
const ARGUMENTS_BETWEEN: usize = 3;

/// The code of `gcStart`, `gcMarkDone` and `gcMarkTermination`, each with its address.
pub type GcCode<'a> = [(&'a [u8], u64); 3];

/// Where the cost of each cycle is read, and what to say when it is not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcCostPlan {
    /// Link-time addresses (load bias not applied).
    pub work_address: Option<u64>,
    pub limiter_address: Option<u64>,
    /// The offsets the probe reads at, without addresses (filled in at load time).
    pub layout: Option<GcCostLayout>,
    pub notes: Vec<String>,
}

/// Link-time address of `runtime.work`: `.symtab`'s, else decoded from the GC's code.
pub fn work_address(elf: &GoElf, code: Option<GcCode>, t_sweep_term: Option<u64>) -> Option<u64> {
    elf.data_symbol(WORK).or_else(|| {
        let [start, done, term] = code?;
        gcdata::sweep_term_address(start, done, term)?.checked_sub(t_sweep_term?)
    })
}

/// The receiver the `runtime.gc*` functions most often pass to a `gcCPULimiterState` method.
pub fn decoded_limiter(elf: &GoElf, table: &Pclntab) -> Option<u64> {
    let is_method = |target: u64| {
        table
            .func_at(target)
            .is_some_and(|(name, entry, _)| entry == target && name.starts_with(LIMITER_METHODS))
    };
    let mut found: Vec<u64> = table
        .functions_with_prefix("runtime.gc")
        .into_iter()
        .filter_map(|(_, f)| Some((elf.code(f.address, f.size)?, f.address)))
        .flat_map(|(code, at)| {
            gccontroller::receivers_within(code, at, is_method, ARGUMENTS_BETWEEN)
        })
        .collect();
    gccontroller::most_frequent(&mut found)
}

/// Everything the start-the-world probe needs to read each cycle's cost in this binary.
pub fn plan(
    elf: &GoElf,
    version: &GoVersion,
    code: Option<GcCode>,
    controller: &GcControllerFields,
    fields: &GcCostFields,
    limiter_address: Option<u64>,
) -> GcCostPlan {
    let mut notes = Vec::new();
    let work_address = work_address(elf, code, fields.work_t_sweep_term);
    let layout = match offsets::gc_cost_layout(controller, fields) {
        Ok(layout) => Some(layout),
        Err(field) => {
            notes.push(format!(
                "the GC's cost per cycle is not read: {field} is in neither the binary's DWARF nor mapleak's {version} table"
            ));
            None
        }
    };
    if layout.is_some() && work_address.is_none() {
        notes.push(format!(
            "the GC's cost per cycle is not read: {WORK} was found neither in .symtab nor in the code of runtime.gcStart, gcMarkDone and gcMarkTermination"
        ));
    }
    if layout.is_some() && work_address.is_some() && limiter_address.is_none() {
        notes.push(format!(
            "whether the GC CPU limiter was on is not known: {LIMITER} was found neither in .symtab nor in the code of the runtime.gc* functions and runtime.gcAssistAlloc"
        ));
    }
    GcCostPlan {
        work_address,
        limiter_address,
        layout,
        notes,
    }
}

#[cfg(test)]
mod tests;
