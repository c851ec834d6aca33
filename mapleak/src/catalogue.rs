//! The probe catalogue: every probe on a function of the target, in one table. The plan places
//! what it lists, the loader attaches it, the session enables its groups, the governor switches
//! them and `inspect` shows them; nothing else names a probe's function or group.

mod group;

use Placement::{Entry, EntryAndRets, Rets};
use ProbeGroup::{Assign, Assist, Create, Evacuate, Gc, Growth};
pub use group::{ProbeGroup, WhenMissing};
use mapleak_common::ProbeId;

use crate::inspect::MapImpl;

/// Where on its function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// After the stack-check prologue, where the arguments are in their registers.
    Entry(ProbeId),
    /// On every RET instruction (never a uretprobe: those crash Go programs).
    Rets(ProbeId),
    /// Both, as two programs; the RETs only where the function has any.
    EntryAndRets { entry: ProbeId, rets: ProbeId },
}

/// Which map implementation a probed function belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maps {
    Classic,
    Swiss,
    Any,
}

impl Maps {
    pub fn covers(self, map_impl: MapImpl) -> bool {
        match self {
            Maps::Any => true,
            Maps::Classic => map_impl == MapImpl::Classic,
            Maps::Swiss => map_impl == MapImpl::Swiss,
        }
    }
}

/// One probed function of the target. Whether it is attached by default is its group's to say
/// ([`ProbeGroup::opt_in`]): a group is switched as one.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    /// As `.gopclntab` names it.
    pub symbol: &'static str,
    pub group: ProbeGroup,
    pub placement: Placement,
    pub maps: Maps,
}

/// Where on a function one program goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Entry,
    Rets,
}

impl ProbeSpec {
    /// The programs this function gets, and where each goes.
    pub fn probes(&self) -> impl Iterator<Item = (ProbeId, At)> {
        let (entry, rets) = match self.placement {
            Placement::Entry(id) => (Some(id), None),
            Placement::Rets(id) => (None, Some(id)),
            Placement::EntryAndRets { entry, rets } => (Some(entry), Some(rets)),
        };
        let entry = entry.map(|id| (id, At::Entry));
        let rets = rets.map(|id| (id, At::Rets));
        entry.into_iter().chain(rets)
    }
}

const fn at(
    symbol: &'static str,
    group: ProbeGroup,
    placement: Placement,
    maps: Maps,
) -> ProbeSpec {
    ProbeSpec {
        symbol,
        group,
        placement,
        maps,
    }
}

/// Every probe on the target, group by group in the order the plan lists them.
#[rustfmt::skip]
pub const CATALOGUE: &[ProbeSpec] = &[
    // Growth only, never a per-insert path.
    at("runtime.hashGrow",                         Growth, Entry(ProbeId::HashGrow),         Maps::Classic),
    at("internal/runtime/maps.(*Map).growToSmall", Growth, Entry(ProbeId::SwissGrowToSmall), Maps::Swiss),
    at("internal/runtime/maps.(*Map).growToTable", Growth, Entry(ProbeId::SwissGrowToTable), Maps::Swiss),
    at("internal/runtime/maps.(*table).rehash",    Growth, Entry(ProbeId::SwissRehash),      Maps::Swiss),
    at("runtime.stopTheWorldWithSema",             Gc,     Entry(ProbeId::StopTheWorld),     Maps::Any),
    // Its RETs end the pause as the runtime sees it.
    at("runtime.startTheWorldWithSema",            Gc,
       EntryAndRets { entry: ProbeId::StartTheWorld, rets: ProbeId::StartTheWorldReturn },   Maps::Any),
    // A goroutine made to mark before its allocation returns: entry to RET is what it waited.
    // The other three run inside an assist and split that wait: marking (the runtime's own
    // assist time), mark termination, parked.
    at("runtime.gcAssistAlloc",                    Assist,
       EntryAndRets { entry: ProbeId::AssistAlloc, rets: ProbeId::AssistAllocReturn },       Maps::Any),
    at("runtime.gcAssistAlloc1",                   Assist,
       EntryAndRets { entry: ProbeId::AssistWork, rets: ProbeId::AssistWorkReturn },         Maps::Any),
    at("runtime.gcMarkDone",                       Assist,
       EntryAndRets { entry: ProbeId::AssistMarkDone, rets: ProbeId::AssistMarkDoneReturn }, Maps::Any),
    at("runtime.gcParkAssist",                     Assist,
       EntryAndRets { entry: ProbeId::AssistPark, rets: ProbeId::AssistParkReturn },         Maps::Any),
    // Both map implementations keep these two entry points, which the compiler calls for every
    // map it cannot build inline; the map is their result.
    at("runtime.makemap",             Create,   Rets(ProbeId::MakeMapReturn),       Maps::Any),
    at("runtime.makemap_small",       Create,   Rets(ProbeId::MakeMapSmallReturn),  Maps::Any),
    // The generic entry point and the key-specialised ones the compiler picks.
    at("runtime.mapassign",           Assign,   Entry(ProbeId::MapAssign),          Maps::Any),
    at("runtime.mapassign_fast32",    Assign,   Entry(ProbeId::MapAssignFast32),    Maps::Any),
    at("runtime.mapassign_fast64",    Assign,   Entry(ProbeId::MapAssignFast64),    Maps::Any),
    at("runtime.mapassign_fast64ptr", Assign,   Entry(ProbeId::MapAssignFast64Ptr), Maps::Any),
    at("runtime.mapassign_faststr",   Assign,   Entry(ProbeId::MapAssignFastStr),   Maps::Any),
    // One old bucket moved per call; Swiss maps rehash a table in one go.
    at("runtime.evacuate",            Evacuate, Entry(ProbeId::Evacuate),           Maps::Classic),
    at("runtime.evacuate_fast32",     Evacuate, Entry(ProbeId::EvacuateFast32),     Maps::Classic),
    at("runtime.evacuate_fast64",     Evacuate, Entry(ProbeId::EvacuateFast64),     Maps::Classic),
    at("runtime.evacuate_faststr",    Evacuate, Entry(ProbeId::EvacuateFastStr),    Maps::Classic),
];

/// The catalogue's probes for a binary with `map_impl` maps, in `group`.
pub fn specs(map_impl: MapImpl, group: ProbeGroup) -> impl Iterator<Item = &'static ProbeSpec> {
    CATALOGUE
        .iter()
        .filter(move |s| s.group == group && s.maps.covers(map_impl))
}

/// A system call traced at its exit (whose probe counts the hits), with the program that keeps
/// its arguments at entry.
pub struct Syscall {
    pub exit: ProbeId,
    pub call: &'static str,
    pub enter_program: &'static str,
}

#[rustfmt::skip]
pub const SYSCALLS: &[Syscall] = &[
    Syscall { exit: ProbeId::Mmap,    call: "mmap",    enter_program: "mem_enter_mmap" },
    Syscall { exit: ProbeId::Munmap,  call: "munmap",  enter_program: "mem_enter_munmap" },
    Syscall { exit: ProbeId::Madvise, call: "madvise", enter_program: "mem_enter_madvise" },
];

#[cfg(test)]
mod tests;
