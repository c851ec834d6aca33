//! Map assignments (opt-in): `runtime.mapassign*(t, m, key)`, one hit per insert or update. Too
//! hot for an event each: the count per map lives in a per-CPU LRU hash that user space reads
//! every interval, and user space duty-cycles these probes like the others.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::ProbeId;

use crate::{counters::hit, go::GoRegs, maps::ASSIGNS};

#[inline(always)]
fn count(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    hit(probe);
    // The map is the second argument of every variant, classic and Swiss.
    let map = GoRegs::new(ctx).arg(1);
    match ASSIGNS.get_ptr_mut(&map) {
        // SAFETY: a per-CPU slot only this CPU writes, from a successful lookup.
        Some(n) => unsafe { *n += 1 },
        None => {
            // A full LRU evicts its least recently used map: counts then start again.
            let _ = ASSIGNS.insert(&map, &1, 0);
        }
    }
    0
}

#[uprobe]
pub fn assign(ctx: ProbeContext) -> u32 {
    count(&ctx, ProbeId::MapAssign)
}

#[uprobe]
pub fn assign_fast32(ctx: ProbeContext) -> u32 {
    count(&ctx, ProbeId::MapAssignFast32)
}

#[uprobe]
pub fn assign_fast64(ctx: ProbeContext) -> u32 {
    count(&ctx, ProbeId::MapAssignFast64)
}

#[uprobe]
pub fn assign_fast64ptr(ctx: ProbeContext) -> u32 {
    count(&ctx, ProbeId::MapAssignFast64Ptr)
}

#[uprobe]
pub fn assign_faststr(ctx: ProbeContext) -> u32 {
    count(&ctx, ProbeId::MapAssignFastStr)
}
