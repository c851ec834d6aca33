//! Harness for mapleak's integration tests: builds Go fixtures from `tests/fixtures`, runs them,
//! attaches the real `mapleak` binary (real eBPF, so the tests run as root), and parses its JSON.

pub mod fixture;
pub mod tracer;
pub mod versions;

pub use fixture::{Fixture, GoBuild, Output, build};
pub use tracer::{Tracer, mapleak_bin};

/// The JSON lines a trace printed: every `interval` object, then the one `summary`.
pub struct Report {
    pub intervals: Vec<serde_json::Value>,
    pub summary: serde_json::Value,
}

impl Report {
    /// Rows of `maps.top` for the map at `addr` (hex, as the fixture printed it).
    pub fn map(&self, addr: &str) -> Option<&serde_json::Value> {
        self.summary["maps"]["top"]
            .as_array()?
            .iter()
            .find(|row| row["map"] == addr)
    }

    pub fn u64(&self, path: &[&str]) -> u64 {
        let mut v = &self.summary;
        for key in path {
            v = &v[*key];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("summary has no number at {path:?}: {}", self.summary))
    }
}

/// Fails the test unless it runs as root: the integration tier loads real eBPF programs.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the integration tests load eBPF programs and must run as root (use `cargo xtask test`)"
    );
}
