//! Harness for mapleak's integration tests: builds Go fixtures from `tests/fixtures`, runs them,
//! attaches the real `mapleak` binary (real eBPF, so the tests run as root), and parses its JSON.

pub mod fixture;
pub mod gctrace;
pub mod text;
pub mod tracer;
pub mod versions;

pub use fixture::{Fixture, GoBuild, Output, build, strip};
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

/// Failures of a test that checks many cases, all reported at the end instead of at the first.
#[derive(Default)]
pub struct Failures {
    what: &'static str,
    failed: Vec<String>,
    cases: usize,
}

impl Failures {
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
            ..Default::default()
        }
    }

    /// Runs one case; a panic inside it is recorded with the case's name and the run goes on.
    pub fn check(&mut self, name: &str, case: impl FnOnce()) {
        self.cases += 1;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)) {
            Ok(()) => eprintln!("{}: {name}: ok", self.what),
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("{}: {name}: FAILED", self.what);
                self.failed.push(format!("{name}: {why}"));
            }
        }
    }

    /// Fails the test if any case failed, listing them all.
    pub fn assert_none(self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failed.len(),
            self.cases,
            self.failed.join("\n")
        );
    }
}
