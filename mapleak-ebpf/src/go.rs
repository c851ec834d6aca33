//! Reading Go runtime state from a uprobe: ABIInternal registers and user memory.

use aya_ebpf::{bindings::BPF_F_USER_STACK, programs::tracing::StackIdContext as _};
use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    programs::ProbeContext,
};
use mapleak_common::{EventHeader, Site};

/// Go's register ABI on amd64 passes integer arguments in RAX, RBX, RCX, RDI, RSI, R8..R11 and
/// keeps the current goroutine in R14 — not the C ABI that `ProbeContext::arg` assumes.
pub struct GoRegs<'a>(&'a pt_regs);

impl<'a> GoRegs<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a ProbeContext) -> Self {
        // SAFETY: a uprobe context always points at the trapped task's saved registers.
        Self(unsafe { &*ctx.regs })
    }

    #[inline(always)]
    pub fn arg(&self, n: usize) -> u64 {
        let r = self.0;
        match n {
            0 => r.rax,
            1 => r.rbx,
            2 => r.rcx,
            3 => r.rdi,
            4 => r.rsi,
            5 => r.r8,
            6 => r.r9,
            7 => r.r10,
            _ => r.r11,
        }
    }

    #[inline(always)]
    pub fn g(&self) -> u64 {
        self.0.r14
    }

    #[inline(always)]
    pub fn sp(&self) -> u64 {
        self.0.rsp
    }
}

/// Reads a `T` at `base + off` in the traced process; faults become `Err`.
#[inline(always)]
pub fn read<T>(base: u64, off: u16) -> Result<T, i64> {
    if base == 0 {
        return Err(-1);
    }
    // SAFETY: bpf_probe_read_user validates the address and fails instead of faulting.
    unsafe { bpf_probe_read_user((base + off as u64) as *const T) }.map_err(|e| e as i64)
}

/// Reads `N` consecutive words at `base`: one helper call for fields that would take one each.
#[inline(always)]
pub fn read_words<const N: usize>(base: u64) -> Result<[u64; N], i64> {
    read::<[u64; N]>(base, 0)
}

/// The `size`-byte little-endian field at byte `off` of `words`. User space checks before load
/// that every such field lies inside the words and within one of them; a field that does not
/// reads as 0 rather than failing the verifier.
#[inline(always)]
pub fn field(words: &[u64], off: u16, size: u32) -> u64 {
    let Some(word) = words.get(usize::from(off / 8)) else {
        return 0;
    };
    let shifted = word >> (u32::from(off % 8) * 8);
    if size >= 8 {
        shifted
    } else {
        shifted & ((1u64 << (size * 8)) - 1)
    }
}

#[inline(always)]
pub fn header(kind: u32, regs: &GoRegs, goid_off: u16) -> EventHeader {
    EventHeader {
        kind,
        tid: bpf_get_current_pid_tgid() as u32,
        // SAFETY: plain helper call with no arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        goid: read::<u64>(regs.g(), goid_off).unwrap_or(0),
    }
}

/// A header for events outside Go code (system calls), where no goroutine register is valid.
#[inline(always)]
pub fn plain_header(kind: u32, tid: u32) -> EventHeader {
    EventHeader {
        kind,
        tid,
        // SAFETY: plain helper call with no arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        goid: 0,
    }
}

/// The user stack (by frame pointers) and the return address at the stack top.
#[inline(always)]
pub fn site(ctx: &ProbeContext, regs: &GoRegs) -> Site {
    Site {
        stack_id: ctx
            .get_stackid(&crate::maps::STACKS, u64::from(BPF_F_USER_STACK))
            .unwrap_or(-1),
        caller: read::<u64>(regs.sp(), 0).unwrap_or(0),
    }
}
