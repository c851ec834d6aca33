//! Reading Go runtime state from a uprobe: ABIInternal registers and user memory.

use aya_ebpf::{
    bindings::pt_regs,
    cty::c_void,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::map,
    maps::{PerCpuArray, ring_buf::RingBufEntry},
    programs::ProbeContext,
};
use mapleak_common::{EventHeader, MAX_FRAMES, WithFrames, probe::COUNTER_LOST};

use crate::maps::{EVENTS, wakeup};

/// Go's register ABI on amd64 passes integer arguments in RAX, RBX, RCX, RDI, RSI, R8..R11 — not
/// the C ABI that `ProbeContext::arg` assumes.
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

    /// R14: the current goroutine's `g` in ABIInternal code.
    #[inline(always)]
    pub fn g(&self) -> u64 {
        self.0.r14
    }

    #[inline(always)]
    pub fn ip(&self) -> u64 {
        self.0.rip
    }

    #[inline(always)]
    pub fn fp(&self) -> u64 {
        self.0.rbp
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
pub fn header(kind: u32) -> EventHeader {
    header_for(kind, bpf_get_current_pid_tgid() as u32)
}

/// A header for thread `tid`, when the caller already has it.
#[inline(always)]
pub fn header_for(kind: u32, tid: u32) -> EventHeader {
    EventHeader {
        kind,
        tid,
        // SAFETY: plain helper call with no arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// A header stamped `ts_ns`, when the caller has read the clock already (a clock read is not
/// cheap under virtualisation).
#[inline(always)]
pub fn header_at(kind: u32, ts_ns: u64) -> EventHeader {
    EventHeader {
        kind,
        tid: bpf_get_current_pid_tgid() as u32,
        ts_ns,
    }
}

/// Where the walk of a probe's user stack starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StackTop {
    /// After the prologue: RBP still holds the runtime caller's frame, so the walk reaches the
    /// user code that called into the runtime and misses only the probed function's return into
    /// that runtime caller, which no report needs.
    PostPrologue,
    /// At a RET the frame is popped: RBP is the caller's caller's frame, so the return address
    /// at the stack top (into the caller) comes first.
    Ret,
}

/// Sends `event` with the user stack behind it.
#[inline(always)]
pub fn submit_with_frames<T: 'static>(event: T, regs: &GoRegs, top: StackTop) -> Result<(), u32> {
    let entry = reserve_with_frames(event, regs, top).ok_or(COUNTER_LOST)?;
    entry.submit(wakeup());
    Ok(())
}

/// Words of stack the walk reads at once: most Go frames are smaller, so that one read covers
/// several of them, and a read of user memory costs the same whether it takes 16 bytes or 256.
const CHUNK_WORDS: usize = 32;

/// The stack words last read, per CPU (too large for the BPF stack).
#[map]
static STACK_CHUNK: PerCpuArray<[u64; CHUNK_WORDS]> = PerCpuArray::with_max_entries(1, 0);

/// Stack words read into the chunk: the window `[base, base + 8 × len)` of user memory.
struct Window {
    words: *mut [u64; CHUNK_WORDS],
    base: u64,
    len: u64,
}

impl Window {
    /// The two words at `addr` (a frame: saved RBP, return address), reading a new window
    /// from there when they lie outside this one.
    #[inline(always)]
    fn word_pair(&mut self, addr: u64) -> Option<(u64, u64)> {
        let off = addr.wrapping_sub(self.base);
        if !off.is_multiple_of(8) || off / 8 + 1 >= self.len {
            self.load(addr);
        }
        let i = (addr.wrapping_sub(self.base) / 8) as usize;
        if self.len < 2 || i + 1 >= CHUNK_WORDS || (i as u64) + 1 >= self.len {
            return None;
        }
        // SAFETY: `words` points at this CPU's chunk; both indices are below CHUNK_WORDS.
        unsafe { Some(((*self.words)[i], (*self.words)[i + 1])) }
    }

    /// Reads the window at `addr`: the whole chunk, or, where that would run past the end of
    /// the mapping (a thread's stack top), the two words of one frame.
    #[inline(always)]
    fn load(&mut self, addr: u64) {
        self.base = addr;
        self.len = 0;
        if addr == 0 {
            return;
        }
        // SAFETY: bpf_probe_read_user validates the address and fails instead of faulting; the
        // destination is this CPU's chunk, of the size given.
        unsafe {
            if generated::bpf_probe_read_user(
                self.words as *mut c_void,
                (CHUNK_WORDS * 8) as u32,
                addr as *const c_void,
            ) == 0
            {
                self.len = CHUNK_WORDS as u64;
            } else if generated::bpf_probe_read_user(
                self.words as *mut c_void,
                16,
                addr as *const c_void,
            ) == 0
            {
                self.len = 2;
            }
        }
    }
}

/// Reserves a record for `event` and walks the user stack by frame pointers straight into it,
/// a chunk of stack per read: the kernel's stack helpers cost about three times as much on the
/// same stack (`bpf_get_stackid` also hashes it into a map; `bpf_get_stack` was measured at
/// 1.8× on the churn workload).
#[inline(always)]
pub fn reserve_with_frames<T: 'static>(
    event: T,
    regs: &GoRegs,
    top: StackTop,
) -> Option<RingBufEntry<WithFrames<T>>> {
    let words = STACK_CHUNK.get_ptr_mut(0)?;
    let mut entry = EVENTS.reserve::<WithFrames<T>>(0)?;
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reserved, writable record; every index below is bounded
    // by MAX_FRAMES.
    unsafe {
        core::ptr::addr_of_mut!((*record).event).write(event);
        let frames = &mut (*record).frames;
        frames.pcs[0] = regs.ip();
        let mut depth = 1;
        let mut window = Window {
            words,
            base: 0,
            len: 0,
        };
        if top == StackTop::Ret {
            // The return address at the stack top, and the caller's frame just above it: one
            // read usually holds both.
            frames.pcs[1] = window.word_pair(regs.sp()).map_or(0, |(ret, _)| ret);
            depth = 2;
        }
        let mut fp = regs.fp();
        while depth < MAX_FRAMES {
            // A frame is [saved RBP, return address]; callers' frames lie higher on the stack.
            let Some((next, ret)) = window.word_pair(fp) else {
                break;
            };
            if ret == 0 {
                break;
            }
            frames.pcs[depth] = ret;
            depth += 1;
            if next <= fp {
                break;
            }
            fp = next;
        }
        frames.depth = depth as u64;
    }
    Some(entry)
}
