//! Reads the target's memory at each interval: the live size of the maps that grew (deletes
//! never shrink a Go map, so a map emptied by deletes keeps its capacity) and the runtime's own
//! heap accounting (`gcController`: the live heap, the heap in use, free and released, the
//! goal's inputs, GOGC and GOMEMLIMIT), beside what /proc says is resident.
//!
//! Only process_vm_readv, which fails cleanly on unmapped memory; every value read is checked
//! against what the growth events said, or against the runtime's own invariants and the size of
//! the address space, before it is believed.

use mapleak_common::Config;

use super::target::{self, ImageId};
use crate::{
    aggregate::{
        Aggregator, LiveMap, MapState,
        classic::{self, GoRules},
        heap::{self, Implausible, RuntimeHeap},
        memory::HeapSample,
        sizing,
        swiss::{GROUP_SLOTS, MAX_TABLE_CAPACITY},
    },
    inspect::{MapImpl, offsets::GcControllerFields},
};

/// Maps read per interval, the ones with most bytes grown first.
const MAPS_PER_READ: usize = 256;
/// A directory longer than this is garbage (2^20 tables would be a billion slots).
const MAX_DIR_LEN: u64 = 1 << 20;
/// `maps.Map.dirPtr` sits right before `dirLen` in every Swiss release (1.24–1.27).
const DIR_PTR_BEFORE_DIR_LEN: u16 = 8;
/// `maps.table` header bytes read: used, capacity, growthLeft, localDepth.
const TABLE_HEADER: usize = 8;
/// Readings of `gcController` taken before one torn by the runtime's unlocked updates counts as
/// a failure: the runtime's own reader spins until they agree, and they agree within a few
/// instructions.
const HEAP_READ_TRIES: usize = 4;
/// The x86-64 user address space, for when /proc does not say how large the target's is.
const USER_SPACE: u64 = 1 << 47;

/// Where the runtime's accounting lives in the target.
#[derive(Clone, Copy, Debug)]
pub struct GcController {
    /// Run-time address of `runtime.gcController`.
    pub address: u64,
    pub fields: GcControllerFields,
    /// The goal's headroom under a memory limit changed in go1.21.
    pub go_minor: u32,
}

pub struct LiveReader {
    pid: u32,
    /// Addresses come from this image: nothing is read once the target runs another.
    image: ImageId,
    config: Config,
    map_impl: MapImpl,
    rules: GoRules,
    gc_controller: Option<GcController>,
}

impl LiveReader {
    pub fn new(
        pid: u32,
        image: ImageId,
        config: Config,
        map_impl: MapImpl,
        rules: GoRules,
        gc_controller: Option<GcController>,
    ) -> Self {
        Self {
            pid,
            image,
            config,
            map_impl,
            rules,
            gc_controller,
        }
    }

    /// Samples what is resident, the runtime's accounting and the live maps into `agg`.
    pub fn sample(&self, agg: &mut Aggregator) {
        if !self.image.runs_in(self.pid) {
            return;
        }
        let ts_ns = target::monotonic_ns();
        let resident = target::rollup(self.pid);
        if let Some(r) = resident {
            agg.memory_mut().sample_resident(r);
        }
        // Nothing in the process can be larger than its address space: a bound that rejects
        // a garbage read (a freed header, say) claiming petabytes.
        let space = match target::address_bound(self.pid) {
            Some((bytes, at)) => {
                agg.set_address_space(bytes, at);
                bytes
            }
            None => u64::MAX,
        };
        if let Some(gc) = self.gc_controller {
            let last = agg.memory().heap().map(|s| s.heap);
            match self.read_heap(&gc, last.as_ref()) {
                Some(Ok(heap)) => agg.memory_mut().sample_heap(HeapSample {
                    ts_ns,
                    heap,
                    goal: heap.goal(gc.go_minor),
                    resident,
                }),
                // A runtime not started yet has nothing to read, and a process that exited or
                // executed another program meanwhile has no heap to misread.
                Some(Err(Implausible::NotStarted)) => {}
                Some(Err(_)) if self.image.runs_in(self.pid) => agg.memory_mut().heap_read_failed(),
                Some(Err(_)) => {}
                // Only the live heap is placed: read it alone, as it always was.
                None => {
                    if let Some(bytes) = gc
                        .fields
                        .heap_marked
                        .and_then(|off| self.read_u64(gc.address + off))
                        .filter(|&b| b <= space)
                    {
                        agg.memory_mut().sample_heap_marked(bytes);
                    }
                }
            }
        }
        let reads: Vec<(u64, Option<LiveMap>)> = agg
            .top_maps(MAPS_PER_READ)
            .into_iter()
            .map(|m| (m.id.addr, self.read_map(m).filter(|l| l.bytes <= space)))
            .collect();
        for (addr, live) in reads {
            agg.set_live(addr, live);
        }
    }

    /// A classic map's `oldbuckets` now (0 once evacuation is done).
    pub fn old_buckets(&self, map: u64) -> Option<u64> {
        if !self.image.runs_in(self.pid) {
            return None;
        }
        self.read_u64(map + u64::from(self.config.hmap_oldbuckets))
    }

    /// One believed reading of `gcController`; `None` when the layout does not place all of it.
    fn read_heap(
        &self,
        gc: &GcController,
        last: Option<&RuntimeHeap>,
    ) -> Option<Result<RuntimeHeap, Implausible>> {
        let (start, len) = heap::span(&gc.fields)?;
        let space = target::address_space(self.pid).unwrap_or(USER_SPACE);
        let mut result = Err(Implausible::Unread);
        for _ in 0..HEAP_READ_TRIES {
            let Some(bytes) = self.read_vec(gc.address + start, len) else {
                return Some(Err(Implausible::Unread));
            };
            result = RuntimeHeap::parse(&bytes, start, &gc.fields)
                .and_then(|h| h.check(last, space).map(|()| h));
            if result != Err(Implausible::Inconsistent) {
                break;
            }
        }
        Some(result)
    }

    fn read_map(&self, m: &MapState) -> Option<LiveMap> {
        let (entries, capacity, bytes) = match self.map_impl {
            MapImpl::Swiss => self.read_swiss(m)?,
            MapImpl::Classic => self.read_classic(m)?,
        };
        Some(LiveMap {
            entries,
            capacity,
            bytes,
        })
    }

    fn read_classic(&self, m: &MapState) -> Option<(u64, u64, u64)> {
        let c = &self.config;
        let count = self.read_u64(m.id.addr + u64::from(c.hmap_count))?;
        let b = self.read::<1>(m.id.addr + u64::from(c.hmap_b))?[0];
        // B never shrinks: a smaller one means the address holds something else now.
        if m.b.is_some_and(|seen| b < seen) || b >= 48 {
            return None;
        }
        // Another seed is another map, unless it is this one emptied (clear, or its last
        // delete), which draws a new seed and keeps its buckets: then B is as it was.
        let seed = u32::from_le_bytes(self.read::<4>(m.id.addr + u64::from(c.hmap_hash0))?);
        if u64::from(seed) != m.seed && m.b != Some(b) {
            return None;
        }
        let capacity = classic::capacity(b);
        // Growth keeps count within the load factor of 2^B buckets (+1 for the insert that
        // triggers the next growth).
        let limit = (self.rules.load_factor_num * (1u64 << b) / 2).max(8) + 1;
        if count > limit {
            return None;
        }
        let bytes = sizing::classic_array_bytes(&self.rules, &m.id, b)?;
        Some((count, capacity, bytes))
    }

    fn read_swiss(&self, m: &MapState) -> Option<(u64, u64, u64)> {
        let c = &self.config;
        let used = self.read_u64(m.id.addr + u64::from(c.swiss_map_used))?;
        let dir_len = self.read_u64(m.id.addr + u64::from(c.swiss_map_dir_len))?;
        // As for classic maps: another seed is another map, unless this one was emptied in
        // place (its directory as it was; its tables are checked against its capacity below).
        let reseeded = self.read_u64(m.id.addr + u64::from(c.swiss_map_seed))? != m.seed;
        if reseeded && dir_len != m.dir_len {
            return None;
        }
        if dir_len == 0 {
            // A small map: one group, or none yet.
            return (used <= GROUP_SLOTS).then_some((used, GROUP_SLOTS, m.id.unit_size));
        }
        if dir_len > MAX_DIR_LEN || !dir_len.is_power_of_two() || dir_len < m.dir_len {
            return None;
        }
        let global_depth = self.read::<1>(m.id.addr + u64::from(c.swiss_map_global_depth))?[0];
        if 1u64.checked_shl(u32::from(global_depth)) != Some(dir_len) {
            return None;
        }
        let dir_ptr =
            self.read_u64(m.id.addr + u64::from(c.swiss_map_dir_len - DIR_PTR_BEFORE_DIR_LEN))?;
        let dir = self.read_vec(dir_ptr, dir_len as usize * 8)?;
        let (entries, _) = dir.as_chunks::<8>();
        let mut tables: Vec<u64> = entries.iter().map(|p| u64::from_le_bytes(*p)).collect();
        // A table of local depth d fills 2^(global - d) consecutive directory entries.
        tables.dedup();
        let mut capacity = 0u64;
        for table in tables {
            let header = self.read::<TABLE_HEADER>(table)?;
            let at = |off: u16| usize::from(off);
            let cap = u64::from(u16::from_le_bytes([
                header[at(c.swiss_table_capacity)],
                header[at(c.swiss_table_capacity) + 1],
            ]));
            let local_depth = header[at(c.swiss_table_local_depth)];
            if !cap.is_power_of_two()
                || !(GROUP_SLOTS..=MAX_TABLE_CAPACITY).contains(&cap)
                || local_depth > global_depth
            {
                return None;
            }
            capacity += cap;
        }
        if used > capacity || (reseeded && capacity != m.capacity) {
            return None;
        }
        Some((used, capacity, capacity / GROUP_SLOTS * m.id.unit_size))
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        target::read_u64(self.pid, addr)
    }

    fn read<const N: usize>(&self, addr: u64) -> Option<[u8; N]> {
        target::read_array(self.pid, addr)
    }

    fn read_vec(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        target::read_memory(self.pid, addr, len)
    }
}
