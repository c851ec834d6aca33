//! The calibration probe: does what a growth probe does — reads user memory, checks the per-CPU
//! type slot, reserves a record and walks the user stack into it — but discards the record. User
//! space times it on a function of its own to learn what one hit costs on this host.

use mapleak_common::{ClassicGrowEvent, EventKind, HMAP_WORDS, ProbeId};

use crate::{
    counters::hit,
    go::{GoRegs, StackTop, field, header, read_words, reserve_with_frames},
    types,
};

uprobe_program!(calibrate, calibrate_m, |ctx| {
    // Never switched off: tracepoints and the calibration stay attached.
    let _ = hit(ProbeId::Calibrate);
    let regs = GoRegs::new(&ctx);
    // The growth probes' one read of the map header, here of the caller's stack.
    let words: [u64; HMAP_WORDS] = read_words(regs.sp()).unwrap_or_default();
    let event = ClassicGrowEvent {
        header: header(EventKind::ClassicGrow as u32),
        count: field(&words, 8, 8),
        map_type: u64::from(types::is_new(regs.sp())),
        ..Default::default()
    };
    if let Some(entry) = reserve_with_frames(event, &regs, StackTop::PostPrologue) {
        entry.discard(0);
    }
    0
});
