//! The Go builds the matrix covers and what the runtime's rules predict for each.

use std::sync::LazyLock;

use mapleak_common::go_versions::tested;

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

/// Bytes of a classic `map[int]int` bucket: 8 tophash bytes, 8 int keys, 8 int values and the
/// overflow pointer.
pub const CLASSIC_BUCKET_BYTES: u64 = 144;

/// Buckets in the array each growth of a classic `map[int]int` allocates, to B = 1, 2 … 15:
/// 2^B, plus 2^(B-4) overflow buckets from B = 4, rounded up to fill the malloc size class
/// (makeBucketArray + roundupsize).
pub const CLASSIC_FILL_BUCKETS: [u64; 15] = [
    2, 4, 8, 18, 37, 71, 142, 284, 568, 1137, 2218, 4380, 8704, 17408, 34816,
];

/// Bytes a classic `map[int]int` allocates growing from empty to B = `to_b`.
pub const fn classic_fill_bytes(to_b: usize) -> u64 {
    let mut bytes = 0;
    let mut b = 0;
    while b < to_b {
        bytes += CLASSIC_BUCKET_BYTES * CLASSIC_FILL_BUCKETS[b];
        b += 1;
    }
    bytes
}

/// Classic, load factor 6.5 (1.19, 1.22+): grows at 8, 13, 26 … 53 248 entries, B 0 → 14.
const CLASSIC_13: FillExpectation = FillExpectation {
    grow_events: 14,
    bytes: classic_fill_bytes(14),
    map_impl: "classic",
};
/// Classic on Go 1.21, load factor 6.0: grows at 8, 12, 24 … 98 304 entries, one more grow,
/// to B = 15.
const CLASSIC_12: FillExpectation = FillExpectation {
    grow_events: 15,
    bytes: classic_fill_bytes(15),
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
    bytes: swiss_fill_bytes(127),
    map_impl: "swiss",
};

/// Groups a Swiss fill with `splits` splits allocates: everything but the splits is fixed by the
/// rules.
pub const fn swiss_fill_groups(splits: u64) -> u64 {
    1 + 2 + (4 + 8 + 16 + 32 + 64 + 128) + splits * 256
}

/// Bytes of a Swiss `map[int]int` fill with `splits` splits (136-byte groups).
pub const fn swiss_fill_bytes(splits: u64) -> u64 {
    136 * swiss_fill_groups(splits)
}

/// Checks a Swiss map filled from empty past one full table (a `maps.top` row) whose groups
/// are `group_bytes` long: one small group, one table, six doublings, then splits — each one
/// table more (so splits = tables − 1) — and the bytes of exactly those. Returns the splits.
///
/// A table holds at most 7/8 of its 1024 slots, so a directory too shallow for that at an even
/// spread of the keys must deepen everywhere: `min_splits` is one less than its tables at the
/// first depth that fits. An unlucky hash seed splits a few tables more.
pub fn check_swiss_fill(row: &serde_json::Value, min_splits: u64, group_bytes: u64) -> u64 {
    let kinds = |kind: &str| {
        row["growths"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["kind"] == kind)
            .count() as u64
    };
    assert_eq!(
        (kinds("small"), kinds("table"), kinds("grow")),
        (1, 1, 6),
        "{row}"
    );
    let splits = kinds("split");
    assert_eq!(splits + 1, row["tables"].as_u64().unwrap(), "{row}");
    assert!(
        (min_splits..=min_splits + 4).contains(&splits),
        "{splits} splits: {row}"
    );
    assert_eq!(row["grow_events"], 8 + splits, "{row}");
    assert_eq!(
        row["bytes"],
        group_bytes * swiss_fill_groups(splits),
        "{row}"
    );
    splits
}

/// Every tested Go (go-versions.txt) with what its runtime's rules predict, and the classic
/// twin of those that carry both map implementations.
pub static MATRIX: LazyLock<Vec<GoConfig>> = LazyLock::new(|| {
    let mut matrix = Vec::new();
    for g in tested() {
        let expect = match g.minor() {
            19..=20 | 22..=23 => CLASSIC_13,
            21 => CLASSIC_12,
            24..=27 => SWISS,
            m => panic!("Go 1.{m}'s map rules are not known here: see docs/new-go-version.md"),
        };
        matrix.push(GoConfig {
            go: g.version,
            noswissmap: false,
            expect,
        });
        if g.noswissmap {
            matrix.push(GoConfig {
                go: g.version,
                noswissmap: true,
                expect: CLASSIC_13,
            });
        }
    }
    matrix
});

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
        // go-runtime.md §1.5: the last growth to B = 14 allocates 17 408 buckets, 2 506 752 B.
        assert_eq!(CLASSIC_FILL_BUCKETS[13] * CLASSIC_BUCKET_BYTES, 2_506_752);
        assert_eq!(CLASSIC_13.bytes, 5_037_264);
        assert_eq!(CLASSIC_12.bytes, 10_050_768);
        assert_eq!(SWISS.bytes, 32_767 * 136);
    }
}
