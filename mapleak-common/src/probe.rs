//! Probe identities: the index of each probe in the kernel's per-CPU hit counters, and the
//! kernel program behind it.

/// How a program reaches the kernel, which decides how user space loads and attaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// A uprobe, built twice: `NAME` for a perf-event uprobe and `NAME_m` for `uprobe.multi`.
    Uprobe,
    /// A tracepoint, attached once and never switched.
    TracePoint,
}

/// Declares [`ProbeId`] from one row per probe, and [`ProbeId::ALL`], [`ProbeId::program`] and
/// [`ProbeId::kind`] from the same rows, so that no list can leave a probe out.
macro_rules! probe_ids {
    ($($(#[$doc:meta])* $id:ident = $slot:literal, $kind:ident $program:literal;)*) => {
        /// Which probe fired. The value indexes the `HITS` per-CPU array.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProbeId {
            $($(#[$doc])* $id = $slot,)*
        }

        impl ProbeId {
            /// Every probe, in slot order.
            pub const ALL: &'static [ProbeId] = &[$(ProbeId::$id),*];

            /// Name of the eBPF program that implements the probe (for a uprobe, the perf-event
            /// build; the `uprobe.multi` one adds `_m`).
            pub const fn program(self) -> &'static str {
                match self {
                    $(ProbeId::$id => $program,)*
                }
            }

            pub const fn kind(self) -> ProgramKind {
                match self {
                    $(ProbeId::$id => ProgramKind::$kind,)*
                }
            }
        }
    };
}

probe_ids! {
    HashGrow = 0, Uprobe "classic_hash_grow";
    SwissGrowToSmall = 1, Uprobe "swiss_grow_to_small";
    SwissGrowToTable = 2, Uprobe "swiss_grow_to_table";
    SwissRehash = 3, Uprobe "swiss_rehash";
    StopTheWorld = 4, Uprobe "gc_stop_the_world";
    StartTheWorld = 5, Uprobe "gc_start_the_world";
    /// Every RET of `startTheWorldWithSema` (attached with [`ProbeId::StartTheWorld`]).
    StartTheWorldReturn = 6, Uprobe "gc_start_the_world_ret";
    /// System-call tracepoints (hits count the target's calls only).
    Mmap = 7, TracePoint "mem_exit_mmap";
    Munmap = 8, TracePoint "mem_exit_munmap";
    Madvise = 9, TracePoint "mem_exit_madvise";
    /// A no-op function in mapleak itself, probed at start-up to measure what one hit costs.
    Calibrate = 10, Uprobe "calibrate";
    /// Every RET of `runtime.makemap` and of `runtime.makemap_small` (opt-in: creation is a
    /// hot path in some programs).
    MakeMapReturn = 11, Uprobe "create_makemap_ret";
    MakeMapSmallReturn = 12, Uprobe "create_makemap_small_ret";
    /// `runtime.mapassign` and its key-specialised siblings (opt-in: one hit per insert or
    /// update; counted per map in the kernel, no event).
    MapAssign = 13, Uprobe "assign";
    MapAssignFast32 = 14, Uprobe "assign_fast32";
    MapAssignFast64 = 15, Uprobe "assign_fast64";
    MapAssignFast64Ptr = 16, Uprobe "assign_fast64ptr";
    MapAssignFastStr = 17, Uprobe "assign_faststr";
    /// Classic `runtime.evacuate` and its siblings (opt-in: one hit per old bucket moved).
    Evacuate = 18, Uprobe "evacuate";
    EvacuateFast32 = 19, Uprobe "evacuate_fast32";
    EvacuateFast64 = 20, Uprobe "evacuate_fast64";
    EvacuateFastStr = 21, Uprobe "evacuate_faststr";
    /// The `sched_process_exec` tracepoint (hits count the target's execs only).
    Exec = 22, TracePoint "proc_exec";
    /// `runtime.gcAssistAlloc` after its prologue and at every RET: a goroutine's mark assist,
    /// keyed by the goroutine (it can change threads while it assists).
    AssistAlloc = 23, Uprobe "assist_alloc";
    AssistAllocReturn = 24, Uprobe "assist_alloc_ret";
    /// `runtime.gcMarkDone` on an assisting goroutine: mark termination run inside an assist.
    AssistMarkDone = 25, Uprobe "assist_mark_done";
    AssistMarkDoneReturn = 26, Uprobe "assist_mark_done_ret";
    /// `runtime.gcParkAssist` on an assisting goroutine: parked until credit or the cycle's end.
    AssistPark = 27, Uprobe "assist_park";
    AssistParkReturn = 28, Uprobe "assist_park_ret";
    /// `runtime.gcAssistAlloc1`, on the system stack of the assisting goroutine's thread: the
    /// window the runtime itself times as assist (`/cpu/classes/gc/mark/assist`).
    AssistWork = 29, Uprobe "assist_work";
    AssistWorkReturn = 30, Uprobe "assist_work_ret";
}

impl ProbeId {
    /// Number of slots in the `HITS` array; larger than today's probe count so that new probes
    /// need no map resize.
    pub const SLOTS: u32 = 32;
}

// A probe beyond the `HITS` array would count nowhere; a gap or a repeated slot would make two
// probes share or skip a counter.
const _: () = {
    let mut i = 0;
    while i < ProbeId::ALL.len() {
        assert!((ProbeId::ALL[i] as u32) < ProbeId::SLOTS);
        assert!(ProbeId::ALL[i] as usize == i);
        i += 1;
    }
};

/// Index of the ring-buffer reserve-failure counter in the `COUNTERS` per-CPU array.
pub const COUNTER_LOST: u32 = 0;
/// Index of the counter of probe reads that failed (target memory unreadable).
pub const COUNTER_READ_ERRORS: u32 = 1;
pub const COUNTER_SLOTS: u32 = 2;
