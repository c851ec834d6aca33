//! Map creation (opt-in): every RET of `runtime.makemap` and `runtime.makemap_small`, where RAX
//! holds the new map. Some programs make maps per request, so user space duty-cycles these.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use mapleak_common::{
    CREATE_MAKEMAP, CREATE_MAKEMAP_SMALL, CreateEvent, EventKind, ProbeId, probe::COUNTER_LOST,
};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, header, site},
    maps::{EVENTS, config, wakeup},
};

#[uprobe]
pub fn create_makemap_ret(ctx: ProbeContext) -> u32 {
    hit(ProbeId::MakeMapReturn);
    finish(emit(&ctx, CREATE_MAKEMAP))
}

#[uprobe]
pub fn create_makemap_small_ret(ctx: ProbeContext) -> u32 {
    hit(ProbeId::MakeMapSmallReturn);
    finish(emit(&ctx, CREATE_MAKEMAP_SMALL))
}

#[inline(always)]
fn emit(ctx: &ProbeContext, op: u8) -> Result<(), u32> {
    let cfg = config();
    let regs = GoRegs::new(ctx);
    let map = regs.arg(0);
    let event = CreateEvent {
        header: header(EventKind::Create as u32, &regs, cfg.g_goid),
        map,
        op,
        _pad: [0; 7],
        // At a RET the frame is popped: the stack top is the return address into the maker.
        site: site(ctx, &regs),
    };
    let mut entry = EVENTS.reserve::<CreateEvent>(0).ok_or(COUNTER_LOST)?;
    entry.write(event);
    entry.submit(wakeup());
    Ok(())
}
