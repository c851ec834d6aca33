//! Calls the kernel programs are pairing, entry to RET, forgotten when their group is attached
//! again: a RET missed while the group was detached leaves its entry's state behind, and a RET
//! after the re-attach whose entry was missed would be paired with it, timing a call that
//! never was (seconds long, across the detached stretch).

use aya::maps::{HashMap, Map};

use mapleak_common::maps;

use super::Loaded;
use crate::catalogue::ProbeGroup;

/// Empties one kernel map; the map's value type is the instantiation's.
type Clear = fn(&mut Map);

/// The kernel maps holding a group's open calls, each with the clear for its value size.
fn maps_of(group: ProbeGroup) -> &'static [(&'static str, Clear)] {
    match group {
        // `assist.rs`: an assist's state by goroutine (9 words); the goroutine a thread's g0
        // marks for (1 word).
        ProbeGroup::Assist => &[
            (maps::ASSISTING, clear::<9>),
            (maps::MARKING_FOR, clear::<1>),
        ],
        ProbeGroup::Growth
        | ProbeGroup::Gc
        | ProbeGroup::Create
        | ProbeGroup::Assign
        | ProbeGroup::Evacuate => &[],
    }
}

fn clear<const N: usize>(map: &mut Map) {
    let Ok(mut map) = HashMap::<_, u64, [u64; N]>::try_from(map) else {
        return;
    };
    let keys: Vec<u64> = map.keys().filter_map(Result::ok).collect();
    for key in keys {
        // Gone already (its RET came meanwhile) is as good as removed.
        let _ = map.remove(&key);
    }
}

impl Loaded {
    /// Forgets `group`'s open calls; called while its probes are detached, so none is opened
    /// meanwhile.
    pub(super) fn forget_open_calls(&mut self, group: ProbeGroup) {
        for &(name, clear) in maps_of(group) {
            if let Some(map) = self.ebpf.map_mut(name) {
                clear(map);
            }
        }
    }
}
