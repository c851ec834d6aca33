//! The target's address space as a bound on what a growth can claim: a growth read from
//! garbage (a freed header, say) claims petabytes, a real one fits in the process.
//!
//! The bound is as old as its last reading, and a process maps more as it runs: a growth
//! larger than the bound but newer than its reading asks for a fresh one before it is refused.

/// Reads the bound now: (bytes, kernel monotonic clock at the reading, read before the bytes).
pub type SpaceSource = Box<dyn FnMut() -> Option<(u64, u64)> + Send>;

pub struct AddressBound {
    bytes: u64,
    read_ns: u64,
    source: Option<SpaceSource>,
}

impl Default for AddressBound {
    fn default() -> Self {
        Self {
            bytes: u64::MAX,
            read_ns: 0,
            source: None,
        }
    }
}

impl AddressBound {
    pub fn set(&mut self, bytes: u64, read_ns: u64) {
        self.bytes = bytes;
        self.read_ns = read_ns;
    }

    pub fn set_source(&mut self, source: SpaceSource) {
        self.source = Some(source);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `bytes` allocated at `ts_ns` fit in the address space the process had then.
    pub fn holds(&mut self, bytes: u64, ts_ns: u64) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        // Read after the growth: the process had no more then.
        if ts_ns <= self.read_ns {
            return false;
        }
        if let Some((now, at)) = self.source.as_mut().and_then(|read| read()) {
            self.set(now, at);
        }
        bytes <= self.bytes
    }
}
