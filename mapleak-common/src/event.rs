//! Events the kernel programs write into the ring buffer.

/// Stable numeric kind carried in every [`EventHeader`]. Never renumber a kind.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `runtime.hashGrow` of a classic (pre-Swiss) map.
    ClassicGrow = 1,
    /// `growToSmall`, `growToTable` or `(*table).rehash` of a Swiss map (Go 1.24+).
    SwissGrow = 2,
    /// `runtime.stopTheWorldWithSema` or `runtime.startTheWorldWithSema`.
    Stw = 3,
    /// A completed mmap, munmap or madvise of the target.
    Mem = 4,
    /// `runtime.makemap` or `runtime.makemap_small` returned a new map (opt-in probe).
    Create = 5,
    /// A classic map's old bucket array was seen for the last time (opt-in probe).
    Evacuated = 6,
    /// The traced process executed a new program (`sched_process_exec`).
    Exec = 7,
    /// A goroutine returned from `runtime.gcAssistAlloc`.
    Assist = 8,
}

impl TryFrom<u32> for EventKind {
    type Error = u32;

    fn try_from(raw: u32) -> Result<Self, u32> {
        match raw {
            1 => Ok(Self::ClassicGrow),
            2 => Ok(Self::SwissGrow),
            3 => Ok(Self::Stw),
            4 => Ok(Self::Mem),
            5 => Ok(Self::Create),
            6 => Ok(Self::Evacuated),
            7 => Ok(Self::Exec),
            8 => Ok(Self::Assist),
            other => Err(other),
        }
    }
}

/// Common prefix of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] value.
    pub kind: u32,
    /// Thread id (kernel pid) that hit the probe.
    pub tid: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, the clock Go's `nanotime()` reads.
    pub ts_ns: u64,
}

/// A classic map is about to grow: read at the first instruction after `runtime.hashGrow`'s
/// stack-check prologue, where `h.B` and `h.count` still hold the values that triggered the grow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassicGrowEvent {
    pub header: EventHeader,
    /// Address of the `runtime.hmap`.
    pub map: u64,
    /// Address of the map's type descriptor (`*maptype`).
    pub map_type: u64,
    /// `h.count`: live entries when the grow was triggered.
    pub count: u64,
    /// `t.Bucket.Size_`: bytes of one bucket.
    pub bucket_size: u64,
    /// `t.Bucket.PtrBytes`: non-zero when buckets hold pointers (decides malloc headers).
    pub bucket_ptr_bytes: u64,
    /// `h.hash0`, zero-extended: the map's hash seed (see [`SwissGrowEvent::seed`]).
    pub seed: u64,
    /// `h.B` before the grow.
    pub b: u8,
    /// `h.flags` before the grow.
    pub flags: u8,
    /// `h.noverflow` before the grow.
    pub noverflow: u16,
    /// `t.KeySize` and `t.ValueSize`: slot sizes.
    pub key_size: u8,
    pub value_size: u8,
    pub _pad: [u8; 2],
    pub site: StackRef,
}

/// Where a growth came from: a user stack (frame pointers) and the return address the walk
/// cannot see, because the probe fires before the probed function has pushed its frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StackRef {
    /// User space's number for the record's [`Frames`]; negative when it has none. The kernel
    /// leaves it 0.
    pub stack_id: i64,
}

/// Innermost frames the probes walk: the call site and its callers well beyond it, at a bounded
/// cost per hit (one read of user memory a frame).
pub const MAX_FRAMES: usize = 16;

/// The user stack behind a record that has a [`StackRef`], innermost first: the probed pc, then
/// return addresses by frame pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frames {
    /// How many of `pcs` are set (at most [`MAX_FRAMES`]).
    pub depth: u64,
    pub pcs: [u64; MAX_FRAMES],
}

/// A record as the kernel writes it: the event, then the frames of its stack.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WithFrames<T> {
    pub event: T,
    pub frames: Frames,
}

/// Which Swiss-map growth function fired ([`SwissGrowEvent::op`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwissOp {
    /// `(*Map).growToSmall`: first insert, one group.
    GrowToSmall = 1,
    /// `(*Map).growToTable`: ninth insert, a 16-slot table.
    GrowToTable = 2,
    /// `(*table).rehash`: the table doubles, or splits at 1024 slots.
    Rehash = 3,
}

impl TryFrom<u8> for SwissOp {
    type Error = u8;

    fn try_from(raw: u8) -> Result<Self, u8> {
        match raw {
            1 => Ok(Self::GrowToSmall),
            2 => Ok(Self::GrowToTable),
            3 => Ok(Self::Rehash),
            other => Err(other),
        }
    }
}

/// A Swiss map is about to grow, read after the prologue of the growth function.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwissGrowEvent {
    pub header: EventHeader,
    /// Address of the `internal/runtime/maps.Map`.
    pub map: u64,
    /// The table being rehashed (0 for growToSmall/growToTable).
    pub table: u64,
    /// Address of the map type descriptor.
    pub map_type: u64,
    /// `typ.GroupSize`: bytes of one 8-slot group.
    pub group_size: u64,
    /// `m.used`: entries in the map.
    pub used: u64,
    /// `m.dirLen`: directory entries (0 for a small map).
    pub dir_len: u64,
    /// `m.seed`: the map's hash seed, drawn by every `make` and again by `clear` and by the
    /// delete of its last entry; it tells a new map at a freed map's address from the old one.
    pub seed: u64,
    /// `typ.Key.Size_` and `typ.Elem.Size_`.
    pub key_size: u32,
    pub elem_size: u32,
    /// `t.capacity` of the rehashed table (0 otherwise).
    pub table_capacity: u16,
    /// A [`SwissOp`] value.
    pub op: u8,
    /// `t.localDepth` and `m.globalDepth`: decide whether a split doubles the directory.
    pub local_depth: u8,
    pub global_depth: u8,
    pub _pad: [u8; 3],
    pub site: StackRef,
}

const _: () = assert!(core::mem::size_of::<SwissGrowEvent>() == 16 + 56 + 16 + 8);
const _: () = assert!(core::mem::align_of::<SwissGrowEvent>() == 8);
/// [`StwEvent::op`]: which side of a stop-the-world fired.
pub const STW_STOP: u8 = 1;
pub const STW_START: u8 = 2;
/// At a RET of `startTheWorldWithSema`: RAX holds the runtime's own `now`, the pause's end.
pub const STW_RETURN: u8 = 3;

/// The world is about to stop, or to restart. The arguments differ between Go releases, so the
/// kernel sends the raw argument registers and user space reads them by version.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StwEvent {
    pub header: EventHeader,
    /// Return address: which runtime function stopped or started the world.
    pub caller: u64,
    /// RAX, RBX, RCX at the probe: the stop reason (1.21+), or `now` and the `worldStop`
    /// (1.22+) at a start.
    pub args: [u64; 3],
    /// `runtime.work.pauseStart` (Go < 1.22, where no argument carries the stop time; 0 when
    /// unknown).
    pub pause_start: u64,
    /// `runtime.work.pauseNS`, the cycle's stop time so far (Go < 1.22; 0 when unknown).
    pub pause_ns: u64,
    /// `runtime.memstats.numgc` when the probe fired (`u32::MAX` when unknown).
    pub numgc: u32,
    /// `runtime.gcphase` (`u32::MAX` when unknown): tells GC stops apart on Go < 1.21.
    pub gcphase: u32,
    /// [`STW_STOP`], [`STW_START`] or [`STW_RETURN`].
    pub op: u8,
    pub _pad: [u8; 7],
    /// At a start only: the cost of the GC cycle that ended last, when it could be read.
    pub cost: GcCost,
}

const _: () = assert!(core::mem::size_of::<StwEvent>() == 16 + 32 + 16 + 8 + 8 + 128);

/// [`GcCost::read`]: which parts were read.
pub const GC_COST_WORK: u32 = 1;
pub const GC_COST_CONTROLLER: u32 = 2;
pub const GC_COST_LIMITER: u32 = 4;

/// The runtime's own accounting of the last GC cycle, read at the entry of
/// `startTheWorldWithSema` while the world is still stopped, and only when `work.cycles` equals
/// `memstats.numgc`: from the end of a cycle's mark termination until the next cycle's
/// sweep-termination stop (which counts `work.cycles` up before zeroing the mark times), these
/// figures are that cycle's. Raw values: user space checks them before believing any.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcCost {
    /// [`GC_COST_WORK`] | [`GC_COST_CONTROLLER`] | [`GC_COST_LIMITER`]: the parts read whole.
    pub read: u32,
    /// `work.cycles`.
    pub cycles: u32,
    /// `work.stwprocs` and `work.maxprocs`.
    pub stwprocs: i32,
    pub maxprocs: i32,
    /// `work.tSweepTerm`, `tMark`, `tMarkTerm`, `tEnd` (`nanotime()`).
    pub t_sweep_term: i64,
    pub t_mark: i64,
    pub t_mark_term: i64,
    pub t_end: i64,
    /// `gcController.assistTime`, `dedicatedMarkTime`, `fractionalMarkTime`, `idleMarkTime`.
    pub assist_ns: i64,
    pub dedicated_ns: i64,
    pub fractional_ns: i64,
    pub idle_ns: i64,
    /// `gcController.lastHeapGoal`, `heapMarked`, `totalAlloc`, `memoryLimit`, `gcPercent`.
    pub heap_goal: u64,
    pub heap_marked: u64,
    pub total_alloc: u64,
    pub memory_limit: i64,
    pub gc_percent: i32,
    /// `gcCPULimiter.lastEnabledCycle` and `.enabled`.
    pub limiter_last_enabled_cycle: u32,
    pub limiter_enabled: u8,
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<GcCost>() == 128);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 16);
const _: () = assert!(core::mem::align_of::<EventHeader>() == 8);
const _: () = assert!(core::mem::size_of::<ClassicGrowEvent>() == 16 + 48 + 8 + 8);
const _: () = assert!(core::mem::align_of::<ClassicGrowEvent>() == 8);

/// [`MemEvent::op`]: which system call.
pub const MEM_MMAP: u8 = 1;
pub const MEM_MUNMAP: u8 = 2;
pub const MEM_MADVISE: u8 = 3;

/// A memory-mapping system call of the target, emitted when it returns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemEvent {
    pub header: EventHeader,
    /// The address asked for (munmap, madvise) or obtained (mmap's result).
    pub addr: u64,
    pub len: u64,
    /// The system call's return value (negative errno on failure).
    pub ret: i64,
    /// mmap's `prot` and `flags`; madvise's `advice` in `prot`.
    pub prot: u32,
    pub flags: u32,
    /// [`MEM_MMAP`], [`MEM_MUNMAP`] or [`MEM_MADVISE`].
    pub op: u8,
    pub _pad: [u8; 7],
}

const _: () = assert!(core::mem::size_of::<MemEvent>() == 16 + 24 + 8 + 8);

/// [`CreateEvent::op`]: which constructor returned.
pub const CREATE_MAKEMAP: u8 = 1;
pub const CREATE_MAKEMAP_SMALL: u8 = 2;

/// A map was made: read at a RET of `runtime.makemap` / `makemap_small`, where RAX holds the
/// new map (both implementations; never a uretprobe).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateEvent {
    pub header: EventHeader,
    /// Address of the new `hmap` / `maps.Map`.
    pub map: u64,
    /// [`CREATE_MAKEMAP`] or [`CREATE_MAKEMAP_SMALL`].
    pub op: u8,
    pub _pad: [u8; 7],
    pub site: StackRef,
}

const _: () = assert!(core::mem::size_of::<CreateEvent>() == 16 + 16 + 8);

/// One growth's evacuation of a classic map, from the opt-in `runtime.evacuate*` probes: sent
/// when the map's old bucket array changes (the next growth) or user space asks at the end.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvacuatedEvent {
    pub header: EventHeader,
    pub map: u64,
    /// The old bucket array being evacuated (identifies the growth).
    pub old_buckets: u64,
    /// First and last `evacuate` call seen for it, and how many.
    pub first_ns: u64,
    pub last_ns: u64,
    pub calls: u64,
}

const _: () = assert!(core::mem::size_of::<EvacuatedEvent>() == 16 + 40);

/// The traced process replaced its image: what follows in the ring is not the traced program's.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecEvent {
    pub header: EventHeader,
}

const _: () = assert!(core::mem::size_of::<ExecEvent>() == 16);

/// One mark assist, sent at a RET of `runtime.gcAssistAlloc` with the goroutine's user stack
/// (walked at the RET: the same frames as at entry, and the runtime caller the entry walk
/// cannot see). Times are the kernel's monotonic clock, the one Go's `nanotime()` reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssistEvent {
    pub header: EventHeader,
    /// The goroutine (its `g`), which the entry and the RET were paired by.
    pub goroutine: u64,
    /// From after the entry prologue to the RET: everything the allocation waited for.
    pub duration_ns: u64,
    /// Of that, marking in `runtime.gcAssistAlloc1` (what the runtime counts as assist time),
    /// inside `runtime.gcMarkDone` (mark termination, which the runtime counts as pause when
    /// the stop runs here) and parked in `runtime.gcParkAssist`.
    pub work_ns: u64,
    pub mark_done_ns: u64,
    pub parked_ns: u64,
    /// `gcCPULimiter.enabled` was set at entry: the call returned without paying its debt.
    pub limiter: u8,
    pub _pad: [u8; 7],
    pub site: StackRef,
}

const _: () = assert!(core::mem::size_of::<AssistEvent>() == 16 + 40 + 8 + 8);
const _: () = assert!(core::mem::align_of::<AssistEvent>() == 8);
