//! Probe identities: the index of each probe in the kernel's per-CPU hit counters.

/// Which probe fired. The value indexes the `HITS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeId {
    HashGrow = 0,
    SwissGrowToSmall = 1,
    SwissGrowToTable = 2,
    SwissRehash = 3,
    StopTheWorld = 4,
    StartTheWorld = 5,
    /// Every RET of `startTheWorldWithSema` (attached with [`ProbeId::StartTheWorld`]).
    StartTheWorldReturn = 6,
    /// System-call tracepoints (hits count the target's calls only).
    Mmap = 7,
    Munmap = 8,
    Madvise = 9,
    /// A no-op function in mapleak itself, probed at start-up to measure what one hit costs.
    Calibrate = 10,
    /// Every RET of `runtime.makemap` and of `runtime.makemap_small` (opt-in: creation is a
    /// hot path in some programs).
    MakeMapReturn = 11,
    MakeMapSmallReturn = 12,
    /// `runtime.mapassign` and its key-specialised siblings (opt-in: one hit per insert or
    /// update; counted per map in the kernel, no event).
    MapAssign = 13,
    MapAssignFast32 = 14,
    MapAssignFast64 = 15,
    MapAssignFast64Ptr = 16,
    MapAssignFastStr = 17,
    /// Classic `runtime.evacuate` and its siblings (opt-in: one hit per old bucket moved).
    Evacuate = 18,
    EvacuateFast32 = 19,
    EvacuateFast64 = 20,
    EvacuateFastStr = 21,
    /// The `sched_process_exec` tracepoint (hits count the target's execs only).
    Exec = 22,
}

impl ProbeId {
    /// Number of slots in the `HITS` array; larger than today's probe count so that new probes
    /// need no map resize.
    pub const SLOTS: u32 = 32;

    /// Name of the eBPF program that implements the probe.
    pub const fn program(self) -> &'static str {
        match self {
            ProbeId::HashGrow => "classic_hash_grow",
            ProbeId::SwissGrowToSmall => "swiss_grow_to_small",
            ProbeId::SwissGrowToTable => "swiss_grow_to_table",
            ProbeId::SwissRehash => "swiss_rehash",
            ProbeId::StopTheWorld => "gc_stop_the_world",
            ProbeId::StartTheWorld => "gc_start_the_world",
            ProbeId::StartTheWorldReturn => "gc_start_the_world_ret",
            ProbeId::Mmap => "mem_exit_mmap",
            ProbeId::Munmap => "mem_exit_munmap",
            ProbeId::Madvise => "mem_exit_madvise",
            ProbeId::Calibrate => "calibrate",
            ProbeId::MakeMapReturn => "create_makemap_ret",
            ProbeId::MakeMapSmallReturn => "create_makemap_small_ret",
            ProbeId::MapAssign => "assign",
            ProbeId::MapAssignFast32 => "assign_fast32",
            ProbeId::MapAssignFast64 => "assign_fast64",
            ProbeId::MapAssignFast64Ptr => "assign_fast64ptr",
            ProbeId::MapAssignFastStr => "assign_faststr",
            ProbeId::Evacuate => "evacuate",
            ProbeId::EvacuateFast32 => "evacuate_fast32",
            ProbeId::EvacuateFast64 => "evacuate_fast64",
            ProbeId::EvacuateFastStr => "evacuate_faststr",
            ProbeId::Exec => "proc_exec",
        }
    }
}

/// Index of the ring-buffer reserve-failure counter in the `COUNTERS` per-CPU array.
pub const COUNTER_LOST: u32 = 0;
/// Index of the counter of probe reads that failed (target memory unreadable).
pub const COUNTER_READ_ERRORS: u32 = 1;
pub const COUNTER_SLOTS: u32 = 2;
