//! Stop-the-world: `runtime.stopTheWorldWithSema` and `runtime.startTheWorldWithSema`, which bound
//! every GC pause (sweep and mark termination) and every other stop (ReadMemStats, profiles …).
//! Both run a few times per GC cycle, never per allocation.

use aya_ebpf::programs::ProbeContext;
use mapleak_common::{
    Config, EventKind, GC_COST_CONTROLLER, GC_COST_LIMITER, GC_COST_WORK, GcCost, ProbeId,
    STW_RETURN, STW_START, STW_STOP, StwEvent,
    probe::{COUNTER_LOST, COUNTER_READ_ERRORS},
};

use crate::{
    counters::{finish, hit},
    go::{GoRegs, header, read},
    maps::{EVENTS, config, wakeup},
};

uprobe_program!(gc_stop_the_world, gc_stop_the_world_m, |ctx| {
    if !hit(ProbeId::StopTheWorld) {
        return 0;
    }
    finish(emit(&ctx, STW_STOP))
});

uprobe_program!(gc_start_the_world, gc_start_the_world_m, |ctx| {
    if !hit(ProbeId::StartTheWorld) {
        return 0;
    }
    finish(emit(&ctx, STW_START))
});

uprobe_program!(
    /// At each RET (never a uretprobe: those corrupt Go's stack unwinding).
    gc_start_the_world_ret,
    gc_start_the_world_ret_m,
    |ctx| {
        if !hit(ProbeId::StartTheWorldReturn) {
            return 0;
        }
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
        cost: if op == STW_START {
            gc_cost(cfg, numgc)
        } else {
            GcCost::default()
        },
    };
    let mut entry = EVENTS.reserve::<StwEvent>(0).ok_or(COUNTER_LOST)?;
    entry.write(event);
    entry.submit(wakeup());
    Ok(())
}

/// The last cycle's cost, read while the world is still stopped. The runtime counts
/// `work.cycles` up at a cycle's sweep termination and `memstats.numgc` up at its mark
/// termination: only while they agree do the mark times and phase clocks belong to the cycle
/// `numgc` names (a restart after sweep termination, or a mark termination that found work left,
/// sees them disagree, and reads nothing). A part that cannot be read is left out whole.
#[inline(always)]
fn gc_cost(cfg: &Config, numgc: u32) -> GcCost {
    let l = &cfg.gc_cost;
    let mut cost = GcCost::default();
    let Ok(cycles) = read::<u32>(l.work_addr, l.work_cycles) else {
        return cost;
    };
    if numgc == u32::MAX || cycles != numgc {
        return cost;
    }
    cost.cycles = cycles;
    let work = (|| -> Result<(), i64> {
        cost.stwprocs = read(l.work_addr, l.work_stwprocs)?;
        cost.maxprocs = read(l.work_addr, l.work_maxprocs)?;
        cost.t_sweep_term = read(l.work_addr, l.work_t_sweep_term)?;
        cost.t_mark = read(l.work_addr, l.work_t_mark)?;
        cost.t_mark_term = read(l.work_addr, l.work_t_mark_term)?;
        cost.t_end = read(l.work_addr, l.work_t_end)?;
        Ok(())
    })();
    if work.is_ok() {
        cost.read |= GC_COST_WORK;
    }
    let c = l.controller_addr;
    let controller = (|| -> Result<(), i64> {
        cost.gc_percent = read(c, l.gc_percent)?;
        cost.memory_limit = read(c, l.memory_limit)?;
        cost.heap_goal = read(c, l.last_heap_goal)?;
        cost.heap_marked = read(c, l.heap_marked)?;
        cost.total_alloc = read(c, l.total_alloc)?;
        cost.assist_ns = read(c, l.assist_time)?;
        cost.dedicated_ns = read(c, l.dedicated_time)?;
        cost.fractional_ns = read(c, l.fractional_time)?;
        cost.idle_ns = read(c, l.idle_time)?;
        Ok(())
    })();
    if controller.is_ok() {
        cost.read |= GC_COST_CONTROLLER;
    }
    let limiter = (|| -> Result<(), i64> {
        cost.limiter_enabled = read(l.limiter_addr, l.limiter_enabled)?;
        cost.limiter_last_enabled_cycle = read(l.limiter_addr, l.limiter_last_enabled_cycle)?;
        Ok(())
    })();
    if limiter.is_ok() {
        cost.read |= GC_COST_LIMITER;
    }
    cost
}
