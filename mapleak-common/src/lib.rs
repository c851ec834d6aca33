//! Types shared by the kernel programs and user space.
//!
//! Every type is `#[repr(C)]`, made of fixed-width integers with explicit padding, and its size is
//! asserted at compile time, so that both sides agree on the bytes without any unsafe cast of
//! untrusted data on the user side (user space decodes with length checks and `read_unaligned`).
#![no_std]

pub mod config;
pub mod event;
// Read by user space and the tools only; the kernel programs have no use for it.
#[cfg(not(target_arch = "bpf"))]
pub mod go_versions;
pub mod maps;
pub mod probe;

pub use config::{Config, GcCostLayout, HMAP_WORDS, SWISS_MAP_WORDS, SWISS_TABLE_WORDS};
pub use event::{
    AssistEvent, CREATE_MAKEMAP, CREATE_MAKEMAP_SMALL, ClassicGrowEvent, CreateEvent,
    EvacuatedEvent, EventHeader, EventKind, ExecEvent, Frames, GC_COST_CONTROLLER, GC_COST_LIMITER,
    GC_COST_WORK, GcCost, MAX_FRAMES, MEM_MADVISE, MEM_MMAP, MEM_MUNMAP, MemEvent, STW_RETURN,
    STW_START, STW_STOP, StackRef, StwEvent, SwissGrowEvent, SwissOp, WithFrames,
};
pub use probe::{ProbeId, ProgramKind};
