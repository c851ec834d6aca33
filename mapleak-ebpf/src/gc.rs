//! Stop-the-world: `runtime.stopTheWorldWithSema` and `runtime.startTheWorldWithSema`, which bound
//! every GC pause (sweep and mark termination) and every other stop (ReadMemStats, profiles …).
//! Both run a few times per GC cycle, never per allocation.

use aya_ebpf::programs::ProbeContext;
use mapleak_common::{
    EventKind, ProbeId, STW_RETURN, STW_START, STW_STOP, StwEvent,
    probe::{COUNTER_LOST, COUNTER_READ_ERRORS},
};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, header, read},
    maps::{EVENTS, config, wakeup},
};

uprobe_program!(gc_stop_the_world, gc_stop_the_world_m, |ctx| {
    hit(ProbeId::StopTheWorld);
    finish(emit(&ctx, STW_STOP))
});

uprobe_program!(gc_start_the_world, gc_start_the_world_m, |ctx| {
    hit(ProbeId::StartTheWorld);
    finish(emit(&ctx, STW_START))
});

uprobe_program!(
    /// At each RET (never a uretprobe: those corrupt Go's stack unwinding).
    gc_start_the_world_ret,
    gc_start_the_world_ret_m,
    |ctx| {
        hit(ProbeId::StartTheWorldReturn);
        finish(emit(&ctx, STW_RETURN))
    }
);

#[inline(always)]
fn emit(ctx: &ProbeContext, op: u8) -> Result<(), u32> {
    let cfg = config();
    let regs = GoRegs::new(ctx);
    // The probe sits before the frame is pushed, so the return address is at the stack top.
    let caller: u64 = read(regs.sp(), 0).map_err(|_| COUNTER_READ_ERRORS)?;
    // Runtime globals live in .bss, whose pages the kernel maps only once written: a read
    // that faults on a fresh process means "not known yet", not a broken probe.
    let optional_u32 = |addr: u64| -> u32 {
        if addr == 0 {
            u32::MAX
        } else {
            read::<u32>(addr, 0).unwrap_or(u32::MAX)
        }
    };
    let numgc = optional_u32(cfg.numgc_addr);
    let gcphase = optional_u32(cfg.gcphase_addr);
    // workType declares `pauseNS int64` right before `pauseStart int64` in every release that
    // needs them (1.19–1.21).
    let [pause_ns, pause_start] = if cfg.pause_start_addr < 8 {
        [0, 0]
    } else {
        read::<[u64; 2]>(cfg.pause_start_addr - 8, 0).unwrap_or([0, 0])
    };
    let event = StwEvent {
        header: header(EventKind::Stw as u32),
        caller,
        args: [regs.arg(0), regs.arg(1), regs.arg(2)],
        pause_start,
        pause_ns,
        numgc,
        gcphase,
        op,
        _pad: [0; 7],
    };
    let mut entry = EVENTS.reserve::<StwEvent>(0).ok_or(COUNTER_LOST)?;
    entry.write(event);
    entry.submit(wakeup());
    Ok(())
}
