//! Map creation (opt-in): every RET of `runtime.makemap` and `runtime.makemap_small`, where RAX
//! holds the new map. Some programs make maps per request, so user space duty-cycles these.

use aya_ebpf::programs::ProbeContext;
use mapleak_common::{CREATE_MAKEMAP, CREATE_MAKEMAP_SMALL, CreateEvent, EventKind, ProbeId};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, StackTop, header, submit_with_frames},
};

uprobe_program!(create_makemap_ret, create_makemap_ret_m, |ctx| {
    if !hit(ProbeId::MakeMapReturn) {
        return 0;
    }
    finish(emit(&ctx, CREATE_MAKEMAP))
});

uprobe_program!(
    create_makemap_small_ret,
    create_makemap_small_ret_m,
    |ctx| {
        if !hit(ProbeId::MakeMapSmallReturn) {
            return 0;
        }
        finish(emit(&ctx, CREATE_MAKEMAP_SMALL))
    }
);

#[inline(always)]
fn emit(ctx: &ProbeContext, op: u8) -> Result<(), u32> {
    let regs = GoRegs::new(ctx);
    let event = CreateEvent {
        header: header(EventKind::Create as u32),
        map: regs.arg(0),
        op,
        ..Default::default()
    };
    submit_with_frames(event, &regs, StackTop::Ret)
}
