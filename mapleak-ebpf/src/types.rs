//! The map type each CPU last described to user space.
//!
//! A map type is immutable and lives as long as the program, so its sizes need reading only
//! once: a growth event carries them only when its type differs from the one this CPU sent last,
//! and user space keeps them by type address. Records from one CPU reach the ring in the order
//! they were reserved, so the describing record always precedes the ones that lean on it; the
//! slot changes only once that record is in the ring.

use aya_ebpf::{macros::map, maps::PerCpuArray};

use crate::go::{GoRegs, StackTop, submit_with_frames};

#[map]
static LAST_TYPE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Whether `map_type` must be described in this CPU's next record.
#[inline(always)]
pub fn is_new(map_type: u64) -> bool {
    LAST_TYPE.get(0).is_none_or(|last| *last != map_type)
}

/// Sends growth `event` of `map_type` with its user stack; `describe` fills in the type's sizes,
/// and runs only when this CPU has not described the type yet.
#[inline(always)]
pub fn submit_growth<T: 'static>(
    mut event: T,
    regs: &GoRegs,
    map_type: u64,
    describe: impl FnOnce(&mut T) -> Result<(), u32>,
) -> Result<(), u32> {
    let fresh = is_new(map_type);
    if fresh {
        describe(&mut event)?;
    }
    submit_with_frames(event, regs, StackTop::PostPrologue)?;
    if fresh {
        remember(map_type);
    }
    Ok(())
}

/// `map_type` was described in a record now in the ring.
#[inline(always)]
fn remember(map_type: u64) {
    if let Some(slot) = LAST_TYPE.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot from a successful lookup, written only by this CPU with
        // preemption off (uprobe programs run so).
        unsafe { *slot = map_type };
    }
}
