//! The Go builds the matrix covers and what the runtime's rules predict for each.

use crate::GoBuild;

/// How a fixture is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Normal,
    /// `-ldflags=-s -w`: no `.symtab`, no DWARF — what distributions ship.
    Stripped,
    Pie,
    /// Links libc through cgo: a dynamically linked executable.
    Cgo,
}

impl Mode {
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Mode::Normal => &[],
            Mode::Stripped => &["-ldflags=-s -w"],
            Mode::Pie => &["-buildmode=pie"],
            Mode::Cgo => &["-tags=cgo_fixture"],
        }
    }
}

/// One Go toolchain configuration of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct GoConfig {
    pub go: &'static str,
    pub noswissmap: bool,
    pub expect: FillExpectation,
}

/// Growth of one `map[int]int` filled from empty to 100 000 entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillExpectation {
    pub grow_events: u64,
    pub bytes: u64,
    pub map_impl: &'static str,
}

/// Classic, load factor 6.5 (1.19, 1.22+): grows at 8, 13, 26 … 53 248 entries, B 0 → 14.
/// Bucket counts are 2^B, plus 2^(B-4) overflow buckets from B = 4, rounded up to the malloc
/// size class (makeBucketArray); 144-byte buckets.
const CLASSIC_13: FillExpectation = FillExpectation {
    grow_events: 14,
    bytes: 144 * (2 + 4 + 8 + 18 + 37 + 71 + 142 + 284 + 568 + 1137 + 2218 + 4380 + 8704 + 17408),
    map_impl: "classic",
};
/// Classic on Go 1.21, load factor 6.0: one more grow, to B = 15 (34 816 buckets).
const CLASSIC_12: FillExpectation = FillExpectation {
    grow_events: 15,
    bytes: CLASSIC_13.bytes + 144 * 34816,
    map_impl: "classic",
};
/// Swiss: growToSmall (1 group) + growToTable (2) + six doublings 16 → 1024 slots (4 + 8 + … +
/// 128 groups) + 127 splits into two 1024-slot tables (256 groups each); 136-byte groups.
///
/// The number of splits is the typical one: each map has a random hash seed, and a table splits
/// when it reaches 7/8 of 1024 slots, so an unlucky seed splits one table more. See
/// [`swiss_fill_bytes`] for what holds for every seed.
pub const SWISS: FillExpectation = FillExpectation {
    grow_events: 1 + 1 + 6 + 127,
    bytes: 136 * (1 + 2 + (4 + 8 + 16 + 32 + 64 + 128) + 127 * 256),
    map_impl: "swiss",
};

/// Bytes of a Swiss fill with `splits` splits: everything but the splits is fixed by the rules.
pub const fn swiss_fill_bytes(splits: u64) -> u64 {
    136 * (1 + 2 + (4 + 8 + 16 + 32 + 64 + 128) + splits * 256)
}

const fn go(go: &'static str, expect: FillExpectation) -> GoConfig {
    GoConfig {
        go,
        noswissmap: false,
        expect,
    }
}

const fn noswiss(go: &'static str) -> GoConfig {
    GoConfig {
        go,
        noswissmap: true,
        expect: CLASSIC_13,
    }
}

pub const MATRIX: &[GoConfig] = &[
    go("1.19", CLASSIC_13),
    go("1.21.13", CLASSIC_12),
    go("1.22.10", CLASSIC_13),
    go("1.23.9", CLASSIC_13),
    go("1.24.11", SWISS),
    noswiss("1.24.11"),
    go("1.25.5", SWISS),
    noswiss("1.25.5"),
    go("1.26.6", SWISS),
    go("1.27.3", SWISS),
];

impl GoConfig {
    /// The `x` of `1.x`.
    pub fn minor(&self) -> u32 {
        self.go
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("versions are 1.x[.y]")
    }

    pub fn build(&self, mode: Mode) -> GoBuild<'static> {
        self.fixture("mapgrow", mode)
    }

    /// Fixture `name` built by this configuration.
    pub fn fixture(&self, name: &'static str, mode: Mode) -> GoBuild<'static> {
        GoBuild {
            name,
            go: self.go,
            flags: mode.flags(),
            env: if self.noswissmap {
                &[("GOEXPERIMENT", "noswissmap")]
            } else {
                &[]
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_match_the_numbers_seen_in_the_runtime_docs() {
        assert_eq!(CLASSIC_13.bytes, 5_037_264);
        assert_eq!(CLASSIC_12.bytes, 10_050_768);
        assert_eq!(SWISS.bytes, 32_767 * 136);
    }
}
