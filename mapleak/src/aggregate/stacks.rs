//! User stacks by number: each distinct stack the probes walked is kept once, and records refer
//! to it by [`StackRef::stack_id`](mapleak_common::StackRef).

use rustc_hash::FxHashMap as HashMap;

/// Distinct stacks kept; beyond, new stacks go without one (and are counted), as a kernel stack
/// map does when full.
pub const MAX_STACKS: usize = 65_536;

#[derive(Default)]
pub struct StackTable {
    /// Keyed by the record's frame bytes, so a stack seen before costs a hash and no allocation.
    ids: HashMap<Box<[u8]>, i64>,
    stacks: Vec<Box<[u64]>>,
    pub dropped: u64,
}

impl StackTable {
    /// The number of the stack whose pcs are `bytes` (little-endian u64s); -1 for none.
    pub fn intern(&mut self, bytes: &[u8]) -> i64 {
        if bytes.is_empty() {
            return -1;
        }
        if let Some(&id) = self.ids.get(bytes) {
            return id;
        }
        if self.stacks.len() >= MAX_STACKS {
            self.dropped += 1;
            return -1;
        }
        let id = self.stacks.len() as i64;
        let pcs = bytes
            .as_chunks::<8>()
            .0
            .iter()
            .map(|c| u64::from_le_bytes(*c))
            .collect();
        self.stacks.push(pcs);
        self.ids.insert(bytes.into(), id);
        id
    }

    pub fn get(&self, id: i64) -> Option<&[u64]> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.stacks.get(i))
            .map(|s| &s[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(pcs: &[u64]) -> Vec<u8> {
        pcs.iter().flat_map(|pc| pc.to_le_bytes()).collect()
    }

    #[test]
    fn a_stack_is_numbered_once() {
        let mut t = StackTable::default();
        let a = t.intern(&bytes(&[0x401000, 0x402000]));
        let b = t.intern(&bytes(&[0x401000, 0x403000]));
        assert_eq!((a, b), (0, 1));
        assert_eq!(t.intern(&bytes(&[0x401000, 0x402000])), a);
        assert_eq!(t.get(b), Some(&[0x401000, 0x403000][..]));
        assert_eq!(t.intern(&[]), -1);
        assert_eq!(t.get(-1), None);
    }

    #[test]
    fn a_full_table_counts_the_stacks_it_could_not_keep() {
        let mut t = StackTable::default();
        for pc in 0..MAX_STACKS as u64 {
            t.intern(&bytes(&[pc]));
        }
        assert_eq!(t.intern(&bytes(&[u64::MAX])), -1);
        assert_eq!(t.dropped, 1);
        // A stack kept before still has its number.
        assert_eq!(t.intern(&bytes(&[7])), 7);
    }
}
