//! Runtime struct offsets read from the target's own DWARF.
//!
//! The table in `offsets.rs` is what mapleak knows about released Go versions; a binary that
//! carries DWARF can say for itself where `hmap.B` or `maps.table.capacity` live, which catches
//! patched toolchains and releases newer than the table. Go's linker names every type DIE
//! after its Go type (`runtime.hmap`, `internal/abi.Type`) and writes member offsets as
//! constants, so one pass over `.debug_info` that stops only at `DW_TAG_structure_type`
//! entries is enough. `-ldflags=-w` (or `-s -w`) builds have no DWARF: the table is all
//! there is for them.

use std::borrow::Cow;

use gimli::{
    Abbreviations, AttributeValue, DebugAbbrev, DebugAbbrevOffset, DebugInfo, DebugLineStr,
    DebugStr, EndianSlice, EntriesRaw, LittleEndian, Reader,
};
use mapleak_common::Config;
use object::{CompressionFormat, Object, ObjectSection};

use super::{
    GoElf, InspectError, MapImpl,
    offsets::{GcControllerFields, GcCostFields, OffsetTable as _},
};

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// Go's debug sections are at most tens of MiB even for the largest programs; a header that
/// claims more than this is corrupt, not big.
const MAX_SECTION_BYTES: u64 = 1 << 30;

/// DEFLATE cannot expand input by more than about 1032:1, so a bigger claimed size is a lie.
const MAX_INFLATE_RATIO: u64 = 1100;

/// One slot per offset mapleak can read from DWARF: the struct stays in step with `Config`
/// because both are spelled by the same list. `user` offsets are read by user space itself
/// (with `process_vm_readv`), so they have a slot but no `Config` field.
macro_rules! dwarf_offsets {
    (config: [$($field:ident),* $(,)?], user: [$($user:ident),* $(,)?] $(,)?) => {
        /// Offsets found in the binary's DWARF, named after the `Config` fields they feed (or,
        /// for user-space offsets, after what they locate).
        /// `None`: the member was not found (absent in this Go version, or no such struct).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct DwarfOffsets {
            $(pub $field: Option<u16>,)*
            $(pub $user: Option<u16>,)*
            /// The fields this Go version and map implementation rely on.
            expected: Vec<&'static str>,
        }

        const SLOTS: &[Slot] = &[
            $(Slot {
                field: stringify!($field),
                config: Some(|c| &mut c.$field),
                get: |d| d.$field,
                set: |d| &mut d.$field,
            },)*
            $(Slot {
                field: stringify!($user),
                config: None,
                get: |d| d.$user,
                set: |d| &mut d.$user,
            },)*
        ];
    };
}

dwarf_offsets!(
    config: [
        hmap_count,
        hmap_flags,
        hmap_b,
        hmap_noverflow,
        hmap_oldbuckets,
        hmap_hash0,
        maptype_bucket,
        maptype_key_size,
        maptype_value_size,
        type_size,
        type_ptr_bytes,
        maptype_key,
        maptype_elem,
        maptype_group_size,
        swiss_map_used,
        swiss_map_dir_len,
        swiss_map_global_depth,
        swiss_map_seed,
        swiss_table_capacity,
        swiss_table_local_depth,
    ],
    user: [
        gc_percent,
        memory_limit,
        gc_percent_heap_goal,
        sweep_dist_min_trigger,
        triggered,
        last_heap_goal,
        heap_marked,
        heap_in_use,
        heap_released,
        heap_free,
        total_alloc,
        total_free,
        mapped_ready,
        assist_time,
        dedicated_mark_time,
        fractional_mark_time,
        idle_mark_time,
        work_cycles,
        work_stwprocs,
        work_maxprocs,
        work_t_sweep_term,
        work_t_mark,
        work_t_mark_term,
        work_t_end,
        limiter_enabled,
        limiter_last_enabled_cycle,
    ],
);

struct Slot {
    field: &'static str,
    config: Option<fn(&mut Config) -> &mut u16>,
    get: fn(&DwarfOffsets) -> Option<u16>,
    set: fn(&mut DwarfOffsets) -> &mut Option<u16>,
}

fn slot(field: &str) -> Option<&'static Slot> {
    SLOTS.iter().find(|s| s.field == field)
}

impl DwarfOffsets {
    /// `base` with every offset DWARF found put in, and the `Config` fields where DWARF and
    /// `base` disagreed.
    pub fn apply(&self, base: Config) -> (Config, Vec<&'static str>) {
        let mut config = base;
        let mut differ = Vec::new();
        for slot in SLOTS {
            if let (Some(found), Some(field)) = ((slot.get)(self), slot.config) {
                let value = field(&mut config);
                if *value != found {
                    differ.push(slot.field);
                    *value = found;
                }
            }
        }
        (config, differ)
    }

    /// The fields this Go version and map implementation need that DWARF lacked.
    pub fn missing(&self) -> Vec<&'static str> {
        self.expected
            .iter()
            .copied()
            .filter(|field| slot(field).is_some_and(|s| (s.get)(self).is_none()))
            .collect()
    }

    /// The `gcController` offsets DWARF supplied.
    pub fn gc_controller(&self) -> GcControllerFields {
        let mut out = GcControllerFields::default();
        for &(_, field) in GcControllerFields::MEMBERS {
            if let (Some(slot), Some(value)) = (slot(field), out.field_mut(field)) {
                *value = (slot.get)(self).map(u64::from);
            }
        }
        out
    }

    /// The `workType` and `gcCPULimiterState` offsets DWARF supplied.
    pub fn gc_cost(&self) -> GcCostFields {
        let mut out = GcCostFields::default();
        for &(_, _, field) in GcCostFields::MEMBERS {
            if let (Some(slot), Some(value)) = (slot(field), out.field_mut(field)) {
                *value = (slot.get)(self).map(u64::from);
            }
        }
        out
    }

    /// How many offsets DWARF supplied.
    pub fn found(&self) -> usize {
        SLOTS.iter().filter(|s| (s.get)(self).is_some()).count()
    }
}

/// A struct to look for and which of its members feed which slot.
struct Wanted {
    name: &'static str,
    /// (DWARF member name, `DwarfOffsets` field)
    members: &'static [(&'static str, &'static str)],
}

/// What user space reads from `gcController`: the runtime's own heap accounting (the live heap,
/// the heap in use, free and released, the goal's inputs, GOGC and GOMEMLIMIT) and `totalAlloc`,
/// the heap bytes allocated since start.
const GC_CONTROLLER: Wanted = Wanted {
    name: "runtime.gcControllerState",
    members: GcControllerFields::MEMBERS,
};

/// What the start-the-world probe reads of a GC cycle's cost besides `gcController`: the
/// cycle count, the P counts and phase clocks gctrace computes pause CPU from, and the CPU
/// limiter's state.
const WORK: Wanted = Wanted {
    name: "runtime.workType",
    members: &[
        ("cycles", "work_cycles"),
        ("stwprocs", "work_stwprocs"),
        ("maxprocs", "work_maxprocs"),
        ("tSweepTerm", "work_t_sweep_term"),
        ("tMark", "work_t_mark"),
        ("tMarkTerm", "work_t_mark_term"),
        ("tEnd", "work_t_end"),
    ],
};

const LIMITER: Wanted = Wanted {
    name: "runtime.gcCPULimiterState",
    members: &[
        ("enabled", "limiter_enabled"),
        ("lastEnabledCycle", "limiter_last_enabled_cycle"),
    ],
};

const HMAP: Wanted = Wanted {
    name: "runtime.hmap",
    members: &[
        ("count", "hmap_count"),
        ("flags", "hmap_flags"),
        ("B", "hmap_b"),
        ("noverflow", "hmap_noverflow"),
        ("oldbuckets", "hmap_oldbuckets"),
        ("hash0", "hmap_hash0"),
    ],
};

/// Before `internal/abi` (go1.19, go1.20) the runtime spelled its types in lower case.
const RUNTIME_TYPE: Wanted = Wanted {
    name: "runtime._type",
    members: &[("size", "type_size"), ("ptrdata", "type_ptr_bytes")],
};

const ABI_TYPE: Wanted = Wanted {
    name: "internal/abi.Type",
    members: &[("Size_", "type_size"), ("PtrBytes", "type_ptr_bytes")],
};

const RUNTIME_MAPTYPE_MEMBERS: &[(&str, &str)] = &[
    ("key", "maptype_key"),
    ("elem", "maptype_elem"),
    ("bucket", "maptype_bucket"),
    ("keysize", "maptype_key_size"),
    ("elemsize", "maptype_value_size"),
];

const ABI_CLASSIC_MAPTYPE_MEMBERS: &[(&str, &str)] = &[
    ("Key", "maptype_key"),
    ("Elem", "maptype_elem"),
    ("Bucket", "maptype_bucket"),
    ("KeySize", "maptype_key_size"),
    ("ValueSize", "maptype_value_size"),
];

const SWISS_MAPTYPE_MEMBERS: &[(&str, &str)] = &[
    ("Key", "maptype_key"),
    ("Elem", "maptype_elem"),
    ("GroupSize", "maptype_group_size"),
];

const SWISS_MAP: Wanted = Wanted {
    name: "internal/runtime/maps.Map",
    members: &[
        ("used", "swiss_map_used"),
        ("dirLen", "swiss_map_dir_len"),
        ("globalDepth", "swiss_map_global_depth"),
        ("seed", "swiss_map_seed"),
    ],
};

const SWISS_TABLE: Wanted = Wanted {
    name: "internal/runtime/maps.table",
    members: &[
        ("capacity", "swiss_table_capacity"),
        ("localDepth", "swiss_table_local_depth"),
    ],
};

/// The structs to read for a Go minor version and map implementation. Chosen by version, not
/// by what DWARF happens to contain: `internal/abi.MapType` is the classic map type in
/// go1.21–go1.23 and the Swiss one from go1.26 on, with different members at the same offsets.
fn wanted(go_minor: u32, map_impl: MapImpl) -> Vec<Wanted> {
    let abi_type = if go_minor <= 20 {
        RUNTIME_TYPE
    } else {
        ABI_TYPE
    };
    let mut list = vec![GC_CONTROLLER, WORK, LIMITER, abi_type];
    let map_type = match (map_impl, go_minor) {
        (MapImpl::Classic, ..=20) => Some(("runtime.maptype", RUNTIME_MAPTYPE_MEMBERS)),
        (MapImpl::Classic, 21..=23) => Some(("internal/abi.MapType", ABI_CLASSIC_MAPTYPE_MEMBERS)),
        (MapImpl::Classic, 24..=25) => {
            Some(("internal/abi.OldMapType", ABI_CLASSIC_MAPTYPE_MEMBERS))
        }
        // go1.26 removed the classic implementation.
        (MapImpl::Classic, _) => None,
        (MapImpl::Swiss, 24..=25) => Some(("internal/abi.SwissMapType", SWISS_MAPTYPE_MEMBERS)),
        (MapImpl::Swiss, 26..) => Some(("internal/abi.MapType", SWISS_MAPTYPE_MEMBERS)),
        (MapImpl::Swiss, _) => None,
    };
    if let Some((name, members)) = map_type {
        list.push(Wanted { name, members });
    }
    match map_impl {
        MapImpl::Swiss => list.extend([SWISS_MAP, SWISS_TABLE]),
        MapImpl::Classic => list.push(HMAP),
    }
    list
}

/// The uncompressed DWARF sections the scan reads; absent ones are empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sections<'a> {
    pub info: &'a [u8],
    pub abbrev: &'a [u8],
    /// Targets of `DW_FORM_strp`; Go writes names inline, other linkers might not.
    pub str: &'a [u8],
    pub line_str: &'a [u8],
}

/// Offsets of the runtime structs mapleak reads, from the binary's DWARF.
///
/// `Ok(None)`: the binary has no DWARF. `Err`: it has DWARF that cannot be read. A struct or
/// member that is simply not there leaves its field `None` (see [`DwarfOffsets::missing`]).
pub fn struct_offsets(
    elf: &GoElf,
    go_minor: u32,
    map_impl: MapImpl,
) -> Result<Option<DwarfOffsets>, InspectError> {
    let file = elf.object();
    let Some(info) = section_data(file, ".debug_info")? else {
        return Ok(None);
    };
    if info.is_empty() {
        return Ok(None);
    }
    let abbrev = section_data(file, ".debug_abbrev")?
        .ok_or_else(|| corrupt(".debug_info without .debug_abbrev"))?;
    let str = section_data(file, ".debug_str")?.unwrap_or_default();
    let line_str = section_data(file, ".debug_line_str")?.unwrap_or_default();
    let sections = Sections {
        info: &info,
        abbrev: &abbrev,
        str: &str,
        line_str: &line_str,
    };
    offsets_from_sections(&sections, go_minor, map_impl).map(Some)
}

/// [`struct_offsets`] on sections already in memory and uncompressed.
pub fn offsets_from_sections(
    sections: &Sections,
    go_minor: u32,
    map_impl: MapImpl,
) -> Result<DwarfOffsets, InspectError> {
    let wanted = wanted(go_minor, map_impl);
    let mut offsets = DwarfOffsets {
        expected: wanted
            .iter()
            .flat_map(|w| w.members.iter().map(|&(_, field)| field))
            .collect(),
        ..DwarfOffsets::default()
    };
    scan(sections, &wanted, &mut offsets).map_err(|e| corrupt(&format!(".debug_info: {e}")))?;
    Ok(offsets)
}

fn corrupt(why: &str) -> InspectError {
    InspectError::CorruptDwarf(why.to_owned())
}

/// A section's bytes, inflated if the linker compressed it: go1.19 and later write
/// `SHF_COMPRESSED` `.debug_*` sections, older linkers GNU `.zdebug_*` ones, and
/// `section_by_name` finds either.
fn section_data<'d>(
    file: &object::File<'d>,
    name: &str,
) -> Result<Option<Cow<'d, [u8]>>, InspectError> {
    let Some(section) = file.section_by_name(name) else {
        return Ok(None);
    };
    let compressed = section
        .compressed_data()
        .map_err(|e| corrupt(&format!("{name}: {e}")))?;
    match compressed.format {
        CompressionFormat::None => Ok(Some(Cow::Borrowed(compressed.data))),
        CompressionFormat::Zlib => inflate(compressed.data, compressed.uncompressed_size)
            .map(|data| Some(Cow::Owned(data)))
            .map_err(|why| corrupt(&format!("{name}: {why}"))),
        other => Err(corrupt(&format!(
            "{name} uses {other:?} compression, which mapleak cannot read"
        ))),
    }
}

/// Inflates a zlib stream whose size the section header announced; the size is checked
/// before it is allocated.
fn inflate(data: &[u8], size: u64) -> Result<Vec<u8>, String> {
    let bound = (data.len() as u64)
        .saturating_mul(MAX_INFLATE_RATIO)
        .min(MAX_SECTION_BYTES);
    if size > bound {
        return Err(format!(
            "claims {size} bytes uncompressed from {} compressed",
            data.len()
        ));
    }
    let size = usize::try_from(size).map_err(|_| "size does not fit in memory".to_owned())?;
    let mut out = vec![0u8; size];
    let written = miniz_oxide::inflate::decompress_slice_iter_to_slice(
        &mut out,
        std::iter::once(data),
        true,
        false,
    )
    .map_err(|status| format!("zlib stream does not inflate ({status:?})"))?;
    if written != size {
        return Err(format!("inflates to {written} bytes, header says {size}"));
    }
    Ok(out)
}

/// Walks the DIEs of every unit once, reading attributes only of structure types, until every
/// wanted struct has been seen (Go puts the runtime's types in the first unit, so this usually
/// stops early).
fn scan(
    sections: &Sections,
    wanted: &[Wanted],
    out: &mut DwarfOffsets,
) -> Result<(), gimli::Error> {
    let debug_info = DebugInfo::new(sections.info, LittleEndian);
    let debug_abbrev = DebugAbbrev::new(sections.abbrev, LittleEndian);
    let strings = Strings {
        str: DebugStr::new(sections.str, LittleEndian),
        line_str: DebugLineStr::new(sections.line_str, LittleEndian),
    };
    let mut seen = vec![false; wanted.len()];
    let mut abbrev_cache: Vec<(DebugAbbrevOffset, Abbreviations)> = Vec::new();
    let mut units = debug_info.units();
    while let Some(header) = units.next()? {
        let at = header.debug_abbrev_offset();
        // Go's linker shares one abbreviation table between all units.
        let index = match abbrev_cache.iter().position(|(o, _)| *o == at) {
            Some(i) => i,
            None => {
                abbrev_cache.push((at, debug_abbrev.abbreviations(at)?));
                abbrev_cache.len() - 1
            }
        };
        let abbrevs = &abbrev_cache[index].1;
        let mut entries = header.entries_raw(abbrevs, None)?;
        while !entries.is_empty() {
            let depth = entries.next_depth();
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            if abbrev.tag() != gimli::DW_TAG_structure_type {
                entries.skip_attributes(abbrev.attributes())?;
                continue;
            }
            let mut which = None;
            for spec in abbrev.attributes() {
                let attr = entries.read_attribute(*spec)?;
                if attr.name() == gimli::DW_AT_name && which.is_none() {
                    let name = strings.get(attr.value());
                    which = wanted
                        .iter()
                        .position(|w| name == Some(w.name.as_bytes()))
                        .filter(|&i| !seen[i]);
                }
            }
            let Some(i) = which else { continue };
            if !abbrev.has_children() {
                continue;
            }
            read_members(&mut entries, depth, &strings, &wanted[i], out)?;
            seen[i] = true;
            if seen.iter().all(|&s| s) {
                return Ok(());
            }
        }
    }
    Ok(())
}

struct Strings<'a> {
    str: DebugStr<Slice<'a>>,
    line_str: DebugLineStr<Slice<'a>>,
}

impl<'a> Strings<'a> {
    /// A name attribute's bytes, borrowed from the section: no allocation per DIE.
    fn get(&self, value: AttributeValue<Slice<'a>>) -> Option<&'a [u8]> {
        match value {
            AttributeValue::String(s) => Some(s.slice()),
            AttributeValue::DebugStrRef(o) => self.str.get_str(o).ok().map(|s| s.slice()),
            AttributeValue::DebugLineStrRef(o) => self.line_str.get_str(o).ok().map(|s| s.slice()),
            _ => None,
        }
    }
}

/// Reads the member children of the struct entry just read (at `depth`), recording the
/// offsets of the wanted ones.
fn read_members(
    entries: &mut EntriesRaw<'_, Slice<'_>>,
    depth: isize,
    strings: &Strings,
    wanted: &Wanted,
    out: &mut DwarfOffsets,
) -> Result<(), gimli::Error> {
    while !entries.is_empty() {
        let child_depth = entries.next_depth();
        let Some(abbrev) = entries.read_abbreviation()? else {
            if entries.next_depth() <= depth {
                break;
            }
            continue;
        };
        if abbrev.tag() != gimli::DW_TAG_member || child_depth != depth + 1 {
            entries.skip_attributes(abbrev.attributes())?;
            continue;
        }
        let mut name = None;
        let mut offset = None;
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec)?;
            match attr.name() {
                gimli::DW_AT_name => name = strings.get(attr.value()),
                gimli::DW_AT_data_member_location => offset = member_offset(attr.value()),
                _ => {}
            }
        }
        let (Some(name), Some(offset)) = (name, offset) else {
            continue;
        };
        let Some(&(_, field)) = wanted.members.iter().find(|(m, _)| m.as_bytes() == name) else {
            continue;
        };
        if let (Some(slot), Ok(offset)) = (slot(field), u16::try_from(offset)) {
            let value = (slot.set)(out);
            value.get_or_insert(offset);
        }
    }
    Ok(())
}

/// `DW_AT_data_member_location` as a byte offset: a constant (what Go writes), or the
/// `DW_OP_plus_uconst N` expression older producers use.
fn member_offset(value: AttributeValue<Slice>) -> Option<u64> {
    match value {
        AttributeValue::Exprloc(expr) => {
            let mut ops = expr.0;
            if ops.read_u8().ok()? != gimli::DW_OP_plus_uconst.0 {
                return None;
            }
            let offset = ops.read_uleb128().ok()?;
            ops.is_empty().then_some(offset)
        }
        AttributeValue::Udata(n) => Some(n),
        AttributeValue::Data1(n) => Some(n.into()),
        AttributeValue::Data2(n) => Some(n.into()),
        AttributeValue::Data4(n) => Some(n.into()),
        AttributeValue::Data8(n) => Some(n),
        AttributeValue::Sdata(n) => u64::try_from(n).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{GoVersion, buildinfo, offsets, testgo::fixture};

    fn version_of(elf: &GoElf) -> GoVersion {
        let info = elf.section(".go.buildinfo").expect(".go.buildinfo");
        let build = buildinfo::parse(info).expect("build info");
        GoVersion::parse(&build.go_version).expect("Go version")
    }

    /// The version and DWARF offsets of the map fixture `go` builds; `None` where that Go is
    /// missing and may be (see `testgo::unavailable`).
    fn fixture_dwarf(
        go: &str,
        tag: &str,
        env: &[(&str, &str)],
        map_impl: MapImpl,
    ) -> Option<(GoVersion, DwarfOffsets)> {
        let exe = fixture(go, tag, &[], env)?;
        let data = std::fs::read(&exe).expect("read fixture");
        let elf = GoElf::parse(&exe.display().to_string(), &data).expect("parse fixture");
        let version = version_of(&elf);
        let offsets = struct_offsets(&elf, version.minor, map_impl)
            .expect("readable DWARF")
            .expect("fixture has DWARF");
        Some((version, offsets))
    }

    #[test]
    fn dwarf_of_every_installed_go_confirms_the_offsets_table() {
        let mut failures = Vec::new();
        for (go, map_impl, tag, env) in crate::inspect::testgo::builds() {
            // `None` only where a missing toolchain may be skipped (not under `cargo xtask test`).
            let Some((version, offsets)) = fixture_dwarf(go, tag, env, map_impl) else {
                continue;
            };
            let missing = offsets.missing();
            let table = offsets::config();
            let (config, mut differ) = offsets.apply(table);
            let want = offsets::GcControllerFields::table(&version);
            let found = offsets.gc_controller();
            for ((field, table), (_, dwarf)) in want.fields().into_iter().zip(found.fields()) {
                if table.is_none() || dwarf != table {
                    differ.push(field);
                }
            }
            let want_cost = offsets::GcCostFields::table(&version);
            let found_cost = offsets.gc_cost();
            for ((field, table), (_, dwarf)) in
                want_cost.fields().into_iter().zip(found_cost.fields())
            {
                if table.is_none() || dwarf != table {
                    differ.push(field);
                }
            }
            eprintln!(
                "{}{tag}: {} offsets from DWARF, missing {missing:?}, differ {differ:?}",
                version.raw,
                offsets.found()
            );
            if !missing.is_empty() || !differ.is_empty() {
                failures.push(format!(
                    "{}{tag}: missing {missing:?}, differ {differ:?}\n  table {table:?}, \
                     {want:?}\n  dwarf {config:?}, {found:?}",
                    version.raw
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// `cargo xtask offsets`: the per-release table (`offsets/releases.txt`) from the DWARF of
    /// a fixture built by each installed Go, written to `$MAPLEAK_OFFSETS_OUT`.
    #[test]
    #[ignore = "run by cargo xtask offsets"]
    fn regenerate_the_offsets_table() {
        let Some(out) = std::env::var_os("MAPLEAK_OFFSETS_OUT") else {
            panic!("MAPLEAK_OFFSETS_OUT names the file to write");
        };
        let mut text = String::from(offsets::RELEASES_HEADER);
        for (go, map_impl, tag, env) in crate::inspect::testgo::builds() {
            // The runtime's structs do not depend on the map implementation.
            if !tag.is_empty() {
                continue;
            }
            let (version, offsets) = fixture_dwarf(go, tag, env, map_impl)
                .unwrap_or_else(|| panic!("Go {go} is installed"));
            let fields = offsets.gc_controller().fields().into_iter();
            for (field, offset) in fields.chain(offsets.gc_cost().fields()) {
                let offset =
                    offset.unwrap_or_else(|| panic!("{}: no {field} in DWARF", version.raw));
                text.push_str(&format!("1.{}\t{field}\t{offset:#x}\n", version.minor));
            }
        }
        std::fs::write(&out, text).expect("write the table");
    }

    fn newest_installed() -> Option<&'static str> {
        crate::inspect::testgo::versions()
            .into_iter()
            .rev()
            .find(|v| crate::inspect::testgo::go_bin(v).exists())
    }

    #[test]
    fn dwarf_absent_in_a_stripped_build() {
        let Some(go) = newest_installed() else {
            crate::inspect::testgo::unavailable("no Go is installed");
            return;
        };
        let Some(exe) = fixture(go, "-stripped", &["-ldflags=-s -w"], &[]) else {
            return;
        };
        let data = std::fs::read(&exe).expect("read fixture");
        let elf = GoElf::parse("stripped", &data).expect("parse fixture");
        let minor = version_of(&elf).minor;
        // No DWARF to read, whichever structs are wanted.
        for map_impl in [MapImpl::Classic, MapImpl::Swiss] {
            assert_eq!(struct_offsets(&elf, minor, map_impl).unwrap(), None);
        }
    }

    /// ULEB128, as both member forms encode the offset.
    fn uleb128(mut n: u16) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A tiny DWARF 4 unit: `runtime.hmap { count@0, flags@8 }` (after a decoy `runtime.m` with a
    /// `flags` member), a `runtime.gcControllerState`
    /// (its `totalAlloc` past 255, so a two-byte offset), and an `internal/abi.Type`; some
    /// members are `DW_OP_plus_uconst` expressions, as older producers write them.
    fn synthetic() -> (Vec<u8>, Vec<u8>) {
        // code, tag, has children, (attribute, form)…, 0, 0
        #[rustfmt::skip]
        let abbrev = vec![
            // compile_unit, no attributes
            1, 0x11, 1, 0, 0,
            // structure_type: name (string)
            2, 0x13, 1, 0x03, 0x08, 0, 0,
            // member: name (string), data_member_location (udata)
            3, 0x0d, 0, 0x03, 0x08, 0x38, 0x0f, 0, 0,
            // member: name (string), data_member_location (exprloc)
            4, 0x0d, 0, 0x03, 0x08, 0x38, 0x18, 0, 0,
            0,
        ];
        let mut dies = vec![1];
        let mut strukt = |name: &str, members: &[(&str, u16, bool)]| {
            dies.push(2);
            dies.extend(name.as_bytes());
            dies.push(0);
            for &(member, offset, expr) in members {
                dies.push(if expr { 4 } else { 3 });
                dies.extend(member.as_bytes());
                dies.push(0);
                let uleb = uleb128(offset);
                if expr {
                    dies.push(u8::try_from(1 + uleb.len()).unwrap());
                    dies.push(0x23);
                }
                dies.extend(uleb);
            }
            dies.push(0);
        };
        strukt("runtime.m", &[("flags", 7, false)]);
        strukt("runtime.hmap", &[("count", 0, false), ("flags", 8, false)]);
        strukt(
            "runtime.gcControllerState",
            &[
                ("heapLive", 104, false),
                ("heapMarked", 152, false),
                ("totalAlloc", 296, true),
            ],
        );
        strukt(
            "internal/abi.Type",
            &[("Size_", 0, false), ("PtrBytes", 8, true)],
        );
        dies.push(0);
        let mut info = Vec::new();
        let len = u32::try_from(dies.len() + 7).unwrap();
        info.extend(len.to_le_bytes());
        info.extend(4u16.to_le_bytes());
        info.extend(0u32.to_le_bytes());
        info.push(8);
        info.extend(dies);
        (info, abbrev)
    }

    #[test]
    fn dwarf_wanted_members_all_have_slots() {
        for minor in 19..=30 {
            for map_impl in [MapImpl::Classic, MapImpl::Swiss] {
                for w in wanted(minor, map_impl) {
                    for (member, field) in w.members {
                        assert!(slot(field).is_some(), "{}.{member} feeds {field}", w.name);
                    }
                }
            }
        }
    }

    #[test]
    fn dwarf_gc_cost_members_are_wanted() {
        for &(strukt, member, field) in GcCostFields::MEMBERS {
            let wanted = [WORK, LIMITER];
            let w = wanted.iter().find(|w| w.name == strukt).expect(strukt);
            assert!(w.members.contains(&(member, field)), "{strukt}.{member}");
        }
    }

    #[test]
    fn dwarf_synthetic_unit_is_read() {
        let (info, abbrev) = synthetic();
        let sections = Sections {
            info: &info,
            abbrev: &abbrev,
            ..Sections::default()
        };
        let found = offsets_from_sections(&sections, 21, MapImpl::Classic).unwrap();
        assert_eq!(found.hmap_flags, Some(8));
        assert_eq!(found.type_size, Some(0));
        assert_eq!(found.type_ptr_bytes, Some(8));
        assert_eq!(found.hmap_b, None);
        assert!(found.missing().contains(&"hmap_b"));
        assert_eq!(found.heap_marked, Some(152));
        assert_eq!(found.total_alloc, Some(296));
        let mut base = Config {
            hmap_flags: 16,
            ..Config::default()
        };
        base.type_ptr_bytes = 8;
        // heap_marked and total_alloc feed no `Config` field, so they can neither differ nor be
        // applied.
        let (config, differ) = found.apply(base);
        assert_eq!(differ, vec!["hmap_flags"]);
        assert_eq!(config.hmap_flags, 8);
    }

    /// Cheap deterministic noise for the corruption tests.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Flips bytes and truncates; every outcome is fine except a panic or a runaway.
    fn mangle_and_scan(info: &[u8], abbrev: &[u8], rounds: usize, seed: u64) -> usize {
        let mut state = seed;
        let mut errors = 0;
        for round in 0..rounds {
            let mut info = info.to_vec();
            let mut abbrev = abbrev.to_vec();
            for _ in 0..1 + round % 4 {
                let r = xorshift(&mut state);
                let target = if r & 1 == 0 { &mut info } else { &mut abbrev };
                if target.is_empty() {
                    continue;
                }
                let at = (r >> 8) as usize % target.len();
                target[at] ^= (r >> 40) as u8 | 1;
            }
            if round % 5 == 4 {
                let cut = xorshift(&mut state) as usize % (info.len() + 1);
                info.truncate(cut);
            }
            let sections = Sections {
                info: &info,
                abbrev: &abbrev,
                ..Sections::default()
            };
            let versions = [
                (19, MapImpl::Classic),
                (23, MapImpl::Classic),
                (25, MapImpl::Swiss),
                (27, MapImpl::Swiss),
            ];
            for (minor, map_impl) in versions {
                if offsets_from_sections(&sections, minor, map_impl).is_err() {
                    errors += 1;
                }
            }
        }
        errors
    }

    #[test]
    fn dwarf_corrupt_synthetic_sections_never_panic() {
        let (info, abbrev) = synthetic();
        // Every single-byte change, then random multi-byte ones.
        for at in 0..info.len() + abbrev.len() {
            for flip in [0x01, 0x80, 0xff] {
                let (mut i, mut a) = (info.clone(), abbrev.clone());
                if at < i.len() {
                    i[at] ^= flip;
                } else {
                    a[at - info.len()] ^= flip;
                }
                let sections = Sections {
                    info: &i,
                    abbrev: &a,
                    ..Sections::default()
                };
                let _ = offsets_from_sections(&sections, 21, MapImpl::Classic);
            }
        }
        let errors = mangle_and_scan(&info, &abbrev, 2000, 0x9e37_79b9_7f4a_7c15);
        assert!(errors > 0, "corruption went unnoticed every time");
    }

    #[test]
    fn dwarf_corrupt_real_sections_never_panic() {
        let Some(go) = newest_installed() else {
            crate::inspect::testgo::unavailable("no Go is installed");
            return;
        };
        let Some(exe) = fixture(go, "", &[], &[]) else {
            return;
        };
        let data = std::fs::read(&exe).expect("read fixture");
        let elf = GoElf::parse("fixture", &data).expect("parse fixture");
        let file = elf.object();
        let info = section_data(file, ".debug_info").unwrap().unwrap();
        let abbrev = section_data(file, ".debug_abbrev").unwrap().unwrap();
        mangle_and_scan(&info, &abbrev, 60, 0x2545_f491_4f6c_dd1d);
    }

    /// `MAPLEAK_DWARF_BENCH=/path/to/big/go/exe cargo test --release -p mapleak dwarf_timing --
    /// --ignored --nocapture`: how long the lookup takes, with the early stop and without it.
    #[test]
    #[ignore = "needs a big Go binary named by MAPLEAK_DWARF_BENCH"]
    fn dwarf_timing() {
        let Some(path) = std::env::var_os("MAPLEAK_DWARF_BENCH") else {
            eprintln!("MAPLEAK_DWARF_BENCH is not set");
            return;
        };
        let data = std::fs::read(&path).expect("read benchmark binary");
        let elf = GoElf::parse("bench", &data).expect("parse benchmark binary");
        let version = version_of(&elf);
        let map_impl = if version.at_least(24) {
            MapImpl::Swiss
        } else {
            MapImpl::Classic
        };
        let start = std::time::Instant::now();
        let offsets = struct_offsets(&elf, version.minor, map_impl)
            .unwrap()
            .unwrap();
        let total = start.elapsed();
        let file = elf.object();
        let start = std::time::Instant::now();
        let info = section_data(file, ".debug_info").unwrap().unwrap();
        let abbrev = section_data(file, ".debug_abbrev").unwrap().unwrap();
        let inflate = start.elapsed();
        let sections = Sections {
            info: &info,
            abbrev: &abbrev,
            ..Sections::default()
        };
        // A struct that does not exist forces the walk over every unit.
        let absent = [Wanted {
            name: "no/such.type",
            members: &[],
        }];
        let start = std::time::Instant::now();
        scan(&sections, &absent, &mut DwarfOffsets::default()).unwrap();
        let full = start.elapsed();
        eprintln!(
            "{}: {} MB file, .debug_info {} MB: struct_offsets {total:?} ({} found, missing {:?}); \
             inflate {inflate:?}; full walk {full:?}",
            version.raw,
            data.len() >> 20,
            info.len() >> 20,
            offsets.found(),
            offsets.missing(),
        );
    }

    #[test]
    fn dwarf_inflate_rejects_lies_and_garbage() {
        assert!(inflate(&[0x78, 0x9c, 1, 2, 3], 10).is_err());
        assert!(inflate(&[0x78, 0x9c], 1 << 40).is_err());
        assert!(inflate(&[], 0).is_err());
        // zlib of "abc", with a wrong claimed size either way.
        let abc = [
            0x78, 0x9c, 0x4b, 0x4c, 0x4a, 0x06, 0x00, 0x02, 0x4d, 0x01, 0x27,
        ];
        assert_eq!(inflate(&abc, 3).unwrap(), b"abc");
        assert!(inflate(&abc, 2).is_err());
        assert!(inflate(&abc, 4).is_err());
    }
}
