//! What changes between Go releases, in one place: each fact with the releases it was verified
//! on (go-runtime.md, the DWARF of each release's binaries, the runtime's source). Outside its
//! range a fact is unknown — [`Fact::at`] says `None` — never carried over from the nearest
//! release.
//!
//! mapleak supports exactly the releases every fact covers ([`SUPPORTED`]): raising
//! [`NEWEST`] for a new Go fails `every_fact_covers_every_supported_release` for each fact not
//! yet checked on it, which is the list of what to verify (docs/new-go-version.md). Struct
//! offsets live in `inspect/offsets.rs`, per release too, checked against DWARF by
//! `cargo xtask offsets`.

/// Go 1.x releases `oldest..=newest`, with a value that holds on each.
#[derive(Clone, Copy, Debug)]
pub struct Fact<T: 'static> {
    pub name: &'static str,
    spans: &'static [(u32, u32, T)],
}

impl<T: Copy> Fact<T> {
    const fn new(name: &'static str, spans: &'static [(u32, u32, T)]) -> Self {
        Self { name, spans }
    }

    /// The value for Go 1.`minor`, if verified there.
    pub fn at(&self, minor: u32) -> Option<T> {
        self.spans
            .iter()
            .find(|(oldest, newest, _)| (*oldest..=*newest).contains(&minor))
            .map(|&(_, _, value)| value)
    }
}

impl Fact<bool> {
    /// Whether the fact holds on Go 1.`minor`; `false` where it was not verified, which a
    /// supported release never is.
    pub fn holds(&self, minor: u32) -> bool {
        self.at(minor).unwrap_or(false)
    }
}

/// The oldest and newest Go 1.x that mapleak traces.
pub const OLDEST: u32 = 19;
pub const NEWEST: u32 = 27;
pub const SUPPORTED: (u32, u32) = (OLDEST, NEWEST);

/// `loadFactorNum` of classic maps (over `loadFactorDen` 2): 12 in Go 1.21, an
/// integer-truncation slip, 13 elsewhere.
pub const CLASSIC_LOAD_FACTOR_NUM: Fact<u64> = Fact::new(
    "classic map load factor",
    &[(19, 20, 13), (21, 21, 12), (22, 27, 13)],
);

/// Malloc headers for pointerful objects over 512 B (unless `GOEXPERIMENT=noallocheaders`).
pub const MALLOC_HEADERS: Fact<bool> =
    Fact::new("malloc headers", &[(19, 21, false), (22, 27, true)]);

/// Swiss maps are the default implementation (unless `GOEXPERIMENT=noswissmap`, 1.24–1.25).
pub const SWISS_BY_DEFAULT: Fact<bool> =
    Fact::new("Swiss maps by default", &[(19, 23, false), (24, 27, true)]);

/// `stopTheWorldWithSema(reason)`: the stop's reason in AL. Before, GC stops are told apart
/// by the `gcphase` change across them.
pub const REASON_IN_STOP: Fact<bool> =
    Fact::new("stop reason in AL", &[(19, 20, false), (21, 27, true)]);

/// `startTheWorldWithSema(now, w worldStop)`: RCX holds when stopping began. Before,
/// `work.pauseStart` does.
pub const WORLDSTOP_IN_START: Fact<bool> = Fact::new(
    "stop time in startTheWorldWithSema's RCX",
    &[(19, 21, false), (22, 27, true)],
);

/// `runtime.stwReason`'s names, by value.
pub const STW_REASONS: Fact<&[&str]> = Fact::new(
    "stwReason names",
    &[
        // No reason is passed: every stop reads as 0.
        (19, 20, &["unknown"]),
        (
            21,
            27,
            &[
                "unknown",
                "GC mark termination",
                "GC sweep termination",
                "write heap dump",
                "goroutine profile",
                "goroutine profile cleanup",
                "all goroutines stack trace",
                "read mem stats",
                "AllThreadsSyscall",
                "GOMAXPROCS",
                "start trace",
                "stop trace",
                "CountPagesInUse (test)",
                "ReadMetricsSlow (test)",
                "ReadMemStatsSlow (test)",
                "PageCachePagesLeaked (test)",
                "ResetDebugLog (test)",
            ],
        ),
    ],
);

/// Words of `runtime.moduledata` before `types` and `etypes`: after `end, gcdata, gcbss`,
/// which follow the section bounds (with `covctrs, ecovctrs` from 1.20); 1.27 put
/// `typedesclen` between the two.
pub const MODULEDATA_TYPES_WORDS: Fact<(usize, usize)> = Fact::new(
    "moduledata.types",
    &[(19, 19, (35, 36)), (20, 26, (37, 38)), (27, 27, (37, 39))],
);

/// Words of `runtime.moduledata` before the pointer-sized `gofunc`: 38 in 1.18–1.19; 1.20
/// added `covctrs, ecovctrs`; 1.27 added `typedesclen` after `types` and `itaboffset,
/// itabsize` after `etypes`.
pub const MODULEDATA_GOFUNC_WORD: Fact<usize> = Fact::new(
    "moduledata.gofunc",
    &[(19, 19, 38), (20, 26, 40), (27, 27, 43)],
);

/// The memory limit's heap goal keeps 3 % of the limit (at least 1 MiB) as headroom; before
/// 1.21, 1 MiB.
pub const LIMIT_HEADROOM_PERCENT: Fact<u64> =
    Fact::new("memory-limit goal headroom", &[(19, 20, 0), (21, 27, 3)]);

/// The scavenger returns only chunks that stayed sparse through a whole GC cycle.
pub const SCAVENGER_WAITS_A_CYCLE: Fact<bool> = Fact::new(
    "scavenger returns chunks sparse for a cycle",
    &[(19, 20, false), (21, 27, true)],
);

/// The `clear` builtin empties a map and keeps its buckets.
pub const CLEAR_BUILTIN: Fact<bool> =
    Fact::new("the clear builtin", &[(19, 20, false), (21, 27, true)]);

/// Every fact, for the coverage test.
#[cfg(test)]
fn coverage() -> Vec<(&'static str, Vec<u32>)> {
    /// The releases exactly one span covers: an overlap is as wrong as a gap.
    fn minors<T: Copy>(f: &Fact<T>) -> (&'static str, Vec<u32>) {
        let spans = |m: u32| f.spans.iter().filter(|s| (s.0..=s.1).contains(&m)).count();
        (
            f.name,
            (OLDEST..=NEWEST).filter(|&m| spans(m) == 1).collect(),
        )
    }
    vec![
        minors(&CLASSIC_LOAD_FACTOR_NUM),
        minors(&MALLOC_HEADERS),
        minors(&SWISS_BY_DEFAULT),
        minors(&REASON_IN_STOP),
        minors(&WORLDSTOP_IN_START),
        minors(&STW_REASONS),
        minors(&MODULEDATA_TYPES_WORDS),
        minors(&MODULEDATA_GOFUNC_WORD),
        minors(&LIMIT_HEADROOM_PERCENT),
        minors(&SCAVENGER_WAITS_A_CYCLE),
        minors(&CLEAR_BUILTIN),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_covers_every_supported_release() {
        let all: Vec<u32> = (OLDEST..=NEWEST).collect();
        let gaps: Vec<String> = coverage()
            .into_iter()
            .filter(|(_, minors)| *minors != all)
            .map(|(name, minors)| format!("{name} (verified on {minors:?})"))
            .collect();
        assert!(
            gaps.is_empty(),
            "not verified on every supported Go: {}",
            gaps.join(", ")
        );
    }

    #[test]
    fn nothing_is_known_past_the_newest_verified_release() {
        assert_eq!(CLASSIC_LOAD_FACTOR_NUM.at(NEWEST + 1), None);
        assert_eq!(MODULEDATA_GOFUNC_WORD.at(NEWEST + 1), None);
        assert!(!REASON_IN_STOP.holds(NEWEST + 1));
        assert_eq!(CLASSIC_LOAD_FACTOR_NUM.at(21), Some(12));
    }
}
