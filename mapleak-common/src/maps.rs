//! The kernel's maps user space reads, by name, and the layouts of their values: one place, so
//! that a rename on either side fails a test (`every_named_map_is_in_the_object`) instead of
//! leaving user space reading nothing.

/// The ring buffer of events.
pub const EVENTS: &str = "EVENTS";
/// Hits per probe (per CPU, indexed by `ProbeId::slot`).
pub const HITS: &str = "HITS";
/// Lost events and failed reads (per CPU).
pub const COUNTERS: &str = "COUNTERS";
/// Inserts and updates per map address (the `assign` probes; per CPU).
pub const ASSIGNS: &str = "ASSIGNS";
/// Probes being detached (1) by `ProbeId` slot: their programs return at once, so that a link
/// still firing while the kernel drops it costs the target no more than the trap.
pub const PROBES_OFF: &str = "PROBES_OFF";
/// Each map's open evacuation (the `evacuate` probes): [`Evacuation`] by map address.
pub const EVACUATING: &str = "EVACUATING";
/// Assists in flight by goroutine, and the goroutine each system-stack assist marks for: both
/// cleared whenever the assist group is attached again.
pub const ASSISTING: &str = "ASSISTING";
pub const MARKING_FOR: &str = "MARKING_FOR";

/// What the evacuate probes saw of one map's current growth.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evacuation {
    /// The old bucket array being evacuated.
    pub old_buckets: u64,
    /// The first and the last `evacuate` call seen for it, and how many.
    pub first_ns: u64,
    pub last_ns: u64,
    pub calls: u64,
}

const _: () = assert!(core::mem::size_of::<Evacuation>() == 32);

impl Evacuation {
    /// The first `evacuate` call seen for the old array `old_buckets`.
    #[inline(always)]
    pub const fn starting(old_buckets: u64, now: u64) -> Self {
        Self {
            old_buckets,
            first_ns: now,
            last_ns: now,
            calls: 1,
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `Evacuation` is `repr(C)`, four u64s, no padding.
unsafe impl aya::Pod for Evacuation {}
