//! The probe plan: which runtime functions to probe in this binary, and at which file offsets.

use mapleak_common::Config;
use serde::Serialize;

use super::{
    BuildInfo, GoElf, GoVersion, InspectError, VersionSource, dwarf,
    elf::FuncSym,
    gccontroller, gccost, gcdata, identify, limiter, offsets,
    offsets::{GcControllerFields, GcCostFields, OffsetTable},
    prologue, symbols,
};
use crate::catalogue::{self, Placement, ProbeGroup, ProbeSpec, WhenMissing};
use crate::gofacts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MapImpl {
    Classic,
    Swiss,
}

impl MapImpl {
    pub fn as_str(self) -> &'static str {
        match self {
            MapImpl::Classic => "classic",
            MapImpl::Swiss => "swiss",
        }
    }
}

/// Where the struct offsets given to the kernel programs came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetsSource {
    /// The binary's own DWARF.
    Dwarf,
    /// mapleak's per-version table (stripped binaries).
    Table,
}

/// Where a probed function was found. Its address always comes from `.gopclntab`, the table
/// the Go runtime itself relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolSource {
    /// `.symtab` lists it at the same address.
    Symtab,
    /// Only `.gopclntab` has it (stripped binaries), or `.symtab` disagreed and was ignored.
    Pclntab,
}

/// One function of the catalogue, placed. Serialized with its catalogue row's symbol, group,
/// placement and whether it is on by default, so that a reader of `inspect --format json` knows
/// every address a trace will put a breakpoint at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeSite {
    #[serde(flatten, serialize_with = "spec_of")]
    pub spec: &'static ProbeSpec,
    pub source: SymbolSource,
    pub address: u64,
    pub size: u64,
    /// File offset of the function's entry.
    pub file_offset: u64,
    /// Bytes from the entry to the first instruction after the stack-check prologue.
    pub post_prologue: u64,
    /// File offset where the uprobe goes: `file_offset + post_prologue`.
    pub attach_offset: u64,
    /// Offsets of every RET from the entry (for exit probes; never uretprobes on Go).
    pub ret_offsets: Vec<u64>,
}

/// Everything `trace` needs to know about a target binary.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub path: String,
    pub go_version: String,
    /// Where `go_version` came from: `.go.buildinfo`, `runtime.buildVersion`, the version
    /// string in `.rodata`, or `--go-version`.
    pub go_version_source: VersionSource,
    pub map_impl: MapImpl,
    pub pie: bool,
    pub dynamic: bool,
    pub symtab: bool,
    pub offsets: OffsetsSource,
    pub build: BuildInfo,
    /// Every probe this binary can have, in catalogue order. In the JSON, those of the default
    /// groups are `probes`, and each opt-in group's are `<group>_probes`.
    #[serde(flatten, serialize_with = "by_group")]
    pub probes: Vec<ProbeSite>,
    /// Link-time address of `runtime.memstats.numgc` (load bias not applied).
    pub numgc_address: Option<u64>,
    /// Lowest loadable segment address, to compute the load bias at run time.
    pub first_load_vaddr: u64,
    /// Go < 1.22 only: link-time addresses of `runtime.work.pauseStart` (the runtime's stop
    /// time) and, before 1.21, `runtime.gcphase` (which tells GC stops apart).
    pub pause_start_address: Option<u64>,
    pub gcphase_address: Option<u64>,
    /// Link-time address of `runtime.gcController` (load bias not applied), whose `heapMarked`
    /// user space reads as the live heap (the bytes the last GC marked) and whose `totalAlloc`
    /// as the heap bytes allocated since start.
    pub gc_controller_address: Option<u64>,
    /// Offset of `heapMarked` in `runtime.gcControllerState`.
    pub heap_marked_offset: Option<u64>,
    /// Offset of `totalAlloc` in `runtime.gcControllerState`.
    pub total_alloc_offset: Option<u64>,
    /// Offsets of every `gcControllerState` field user space reads: the two above, and the
    /// runtime's heap accounting (in use, free, released, the goal's inputs, GOGC, GOMEMLIMIT).
    pub gc_controller_fields: GcControllerFields,
    /// Link-time addresses of `runtime.work` and `runtime.gcCPULimiter`, and the offsets in
    /// them the start-the-world probe reads each GC cycle's cost at.
    pub work_address: Option<u64>,
    pub gc_cpu_limiter_address: Option<u64>,
    pub gc_cost_fields: GcCostFields,
    /// The probe's reads of each cycle's cost, without addresses; `None` when an offset is
    /// unknown.
    #[serde(skip)]
    pub gc_cost_layout: Option<mapleak_common::GcCostLayout>,
    /// Link-time address of `runtime.gcCPULimiter.enabled` (load bias not applied): an assist
    /// that starts while it is set returns without paying.
    pub limiter_enabled_address: Option<u64>,
    /// What mapleak cannot observe in this binary, and why.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub version: GoVersion,
    #[serde(skip)]
    pub config: Config,
}

impl ProbeSite {
    pub fn symbol(&self) -> &'static str {
        self.spec.symbol
    }

    pub fn group(&self) -> ProbeGroup {
        self.spec.group
    }
}

fn spec_of<S: serde::Serializer>(spec: &&'static ProbeSpec, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let placement = match spec.placement {
        Placement::Entry(_) => "entry",
        Placement::Rets(_) => "rets",
        Placement::EntryAndRets { .. } => "entry_and_rets",
    };
    let mut map = s.serialize_map(Some(4))?;
    map.serialize_entry("symbol", spec.symbol)?;
    map.serialize_entry("group", &spec.group)?;
    map.serialize_entry("placement", placement)?;
    map.serialize_entry("default", &spec.group.opt_in().is_none())?;
    map.end()
}

/// The JSON list a group's sites are in: the names predate the catalogue, and tools read them.
fn list_name(group: ProbeGroup) -> &'static str {
    match group {
        ProbeGroup::Growth | ProbeGroup::Gc | ProbeGroup::Assist => "probes",
        ProbeGroup::Create => "create_probes",
        ProbeGroup::Assign => "assign_probes",
        ProbeGroup::Evacuate => "evacuate_probes",
    }
}

/// Every list, empty or not, in group order.
fn by_group<S: serde::Serializer>(sites: &[ProbeSite], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut names: Vec<&str> = ProbeGroup::ALL.into_iter().map(list_name).collect();
    names.dedup();
    let mut map = s.serialize_map(Some(names.len()))?;
    for name in names {
        let list: Vec<&ProbeSite> = sites
            .iter()
            .filter(|site| list_name(site.group()) == name)
            .collect();
        map.serialize_entry(name, &list)?;
    }
    map.end()
}

impl Serialize for BuildInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.settings.len()))?;
        for (k, v) in &self.settings {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

const GC_MARK_TERMINATION: &str = "runtime.gcMarkTermination";
/// Where the GC's globals are found in binaries without `.symtab` (see `gcdata`).
const GC_START: &str = "runtime.gcStart";
const GC_MARK_DONE: &str = "runtime.gcMarkDone";
const GC_ASSIST_ALLOC: &str = "runtime.gcAssistAlloc";

pub fn inspect_file(path: &str) -> Result<Inspection, InspectError> {
    inspect_file_as(path, None)
}

/// [`inspect_file`], with the Go version given by the user (`--go-version`) when not `None`.
pub fn inspect_file_as(path: &str, go_version: Option<&str>) -> Result<Inspection, InspectError> {
    let file = super::file::MappedFile::open(path)?;
    inspect_bytes_as(path, file.bytes(), go_version)
}

pub fn inspect_bytes(path: &str, data: &[u8]) -> Result<Inspection, InspectError> {
    inspect_bytes_as(path, data, None)
}

/// [`inspect_bytes`], with the Go version given by the user (`--go-version`) when not `None`.
pub fn inspect_bytes_as(
    path: &str,
    data: &[u8],
    go_version: Option<&str>,
) -> Result<Inspection, InspectError> {
    let elf = GoElf::parse(path, data)?;
    let identify::Identity {
        version,
        source: go_version_source,
        build,
        map_impl,
        notes: identity_notes,
    } = identify::identify(&elf, go_version)?;
    let mut names: Vec<&str> = ProbeGroup::ALL
        .into_iter()
        .flat_map(|group| catalogue::specs(map_impl, group))
        .map(|spec| spec.symbol)
        .collect();
    names.extend([GC_MARK_TERMINATION, GC_START, GC_MARK_DONE]);
    let symbols::Resolved {
        functions: found,
        notes: mut symbol_notes,
    } = symbols::resolve(&elf, &names)?;
    let mut notes = identity_notes;
    notes.append(&mut symbol_notes);
    let probes = place_all(&elf, &found, map_impl, &mut notes)?;
    let numgc_address = lookup(&found, GC_MARK_TERMINATION)
        .and_then(|f| gcdata::numgc_address(elf.code(f.address, f.size)?, f.address));
    let (pause_start_address, gcphase_address) = old_gc_data(&elf, &found, &version, &mut notes);
    let (config, offsets, gc_controller, gc_cost_fields) =
        struct_offsets(&elf, &version, map_impl, &mut notes);
    let gc_code = [GC_START, GC_MARK_DONE, GC_MARK_TERMINATION].map(|name| {
        let f = lookup(&found, name)?;
        Some((elf.code(f.address, f.size)?, f.address))
    });
    let limiter_address = limiter::address(
        &elf,
        lookup(&found, GC_ASSIST_ALLOC)
            .and_then(|f| Some((elf.code(f.address, f.size)?, f.address))),
        &mut notes,
    );
    let gc_cost = gccost::plan(
        &elf,
        &version,
        gc_code
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|c| c.try_into().ok()),
        &gc_controller,
        &gc_cost_fields,
        limiter_address,
    );
    notes.extend(gc_cost.notes.iter().cloned());
    if numgc_address.is_none() {
        notes.push(format!(
            "GC cycles are not numbered: memstats.numgc was not found in {GC_MARK_TERMINATION}"
        ));
    }
    let limiter_enabled_address = limiter_enabled(limiter_address, &probes, &mut notes);
    let gc_controller_address = gccontroller::address(&elf);
    if gc_controller_address.is_none() {
        notes.push(format!(
            "the live heap is not known: {} was found neither in .symtab nor in the code of the runtime.gc* functions",
            gccontroller::SYMBOL
        ));
    }
    if gc_controller.heap_marked.is_none() {
        notes.push(format!(
            "the live heap is not known: gcControllerState.heapMarked is in neither the binary's DWARF nor mapleak's {version} table"
        ));
    }
    if gc_controller.total_alloc.is_none() {
        notes.push(format!(
            "the heap allocated is not known: gcControllerState.totalAlloc is in neither the binary's DWARF nor mapleak's {version} table"
        ));
    }
    let unknown: Vec<&str> = gc_controller
        .fields()
        .into_iter()
        .filter(|(_, offset)| offset.is_none())
        .map(|(field, _)| field)
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "the runtime's heap accounting (in use, free, released, goal, GOGC, GOMEMLIMIT) is not known: {} of gcControllerState are in neither the binary's DWARF nor mapleak's {version} table",
            unknown.join(", ")
        ));
    }
    Ok(Inspection {
        path: path.to_owned(),
        go_version: version.raw.clone(),
        go_version_source,
        map_impl,
        pie: elf.is_pie(),
        dynamic: elf.is_dynamic(),
        symtab: elf.has_symtab(),
        build,
        probes,
        offsets,
        numgc_address,
        first_load_vaddr: elf.first_load_vaddr(),
        pause_start_address,
        gcphase_address,
        gc_controller_address,
        heap_marked_offset: gc_controller.heap_marked,
        total_alloc_offset: gc_controller.total_alloc,
        gc_controller_fields: gc_controller,
        work_address: gc_cost.work_address,
        gc_cpu_limiter_address: gc_cost.limiter_address,
        gc_cost_fields,
        gc_cost_layout: gc_cost.layout,
        limiter_enabled_address,
        notes,
        config,
        version,
    })
}

/// DWARF's offsets where it has them, else the table's; pushes onto `differ` each one where both
/// are known and disagree.
fn prefer<T: OffsetTable>(table: T, found: T, differ: &mut Vec<&'static str>) -> T {
    let mut out = table;
    for ((field, table), (_, found)) in table.fields().into_iter().zip(found.fields()) {
        if found.zip(table).is_some_and(|(f, t)| f != t) {
            differ.push(field);
        }
        if let Some(value) = out.field_mut(field) {
            *value = found.or(table);
        }
    }
    out
}

/// Offsets from the binary's DWARF where it has them (checked against the table: a difference is
/// worth knowing), else from the per-version table; `gcController`'s and the GC cost's last, for
/// user space and the start-the-world probe.
fn struct_offsets(
    elf: &GoElf,
    version: &GoVersion,
    map_impl: MapImpl,
    notes: &mut Vec<String>,
) -> (Config, OffsetsSource, GcControllerFields, GcCostFields) {
    let table = offsets::config();
    let gc_controller = GcControllerFields::table(version);
    let gc_cost = GcCostFields::table(version);
    match dwarf::struct_offsets(elf, version.minor, map_impl) {
        Ok(Some(found)) => {
            let (config, mut differ) = found.apply(table);
            let gc_controller = prefer(gc_controller, found.gc_controller(), &mut differ);
            let gc_cost = prefer(gc_cost, found.gc_cost(), &mut differ);
            if !differ.is_empty() {
                notes.push(format!(
                    "struct offsets from DWARF differ from mapleak's {version} table for {}; using DWARF's",
                    differ.join(", ")
                ));
            }
            (config, OffsetsSource::Dwarf, gc_controller, gc_cost)
        }
        Ok(None) => (table, OffsetsSource::Table, gc_controller, gc_cost),
        Err(e) => {
            notes.push(format!("{e}; using mapleak's {version} offsets"));
            (table, OffsetsSource::Table, gc_controller, gc_cost)
        }
    }
}

/// Before 1.22 no argument carries the runtime's stop time, and before 1.21 none says why the
/// world stopped: both come from runtime globals, from `.symtab` (with the per-version offset of
/// `pauseStart`) or else from the GC's own code.
fn old_gc_data(
    elf: &GoElf,
    found: &Found,
    version: &GoVersion,
    notes: &mut Vec<String>,
) -> (Option<u64>, Option<u64>) {
    if gofacts::WORLDSTOP_IN_START.holds(version.minor) {
        return (None, None);
    }
    let code = |name: &str| {
        let f = lookup(found, name)?;
        Some((elf.code(f.address, f.size)?, f.address))
    };
    let pause_start = elf
        .data_symbol("runtime.work")
        .zip(offsets::work_pause_start(version))
        .map(|(work, off)| work + off)
        .or_else(|| {
            let ((start, start_at), (done, done_at)) = code(GC_START).zip(code(GC_MARK_DONE))?;
            gcdata::pause_start_address(start, start_at, done, done_at)
        });
    if pause_start.is_none() {
        notes.push(format!(
            "GC pauses are timed by the probes, not the runtime's clock ({version} passes no stop time and runtime.work.pauseStart was found neither in .symtab nor in {GC_START} and {GC_MARK_DONE})"
        ));
    }
    let gcphase = if gofacts::REASON_IN_STOP.holds(version.minor) {
        None
    } else {
        let found = elf.data_symbol("runtime.gcphase").or_else(|| {
            let ((start, start_at), (term, term_at)) =
                code(GC_START).zip(code(GC_MARK_TERMINATION))?;
            gcdata::gcphase_address(start, start_at, term, term_at)
        });
        if found.is_none() {
            notes.push(format!(
                "GC stops are not told apart from other stops ({version} passes no stop reason and runtime.gcphase was found neither in .symtab nor in {GC_START} and {GC_MARK_TERMINATION})"
            ));
        }
        found
    };
    (pause_start, gcphase)
}

/// Where the assist probes read whether the GC CPU limiter is on, when they are planned.
fn limiter_enabled(
    limiter_address: Option<u64>,
    probes: &[ProbeSite],
    notes: &mut Vec<String>,
) -> Option<u64> {
    if !probes.iter().any(|p| p.group() == ProbeGroup::Assist) {
        return None;
    }
    let found = limiter_address.map(|a| a + limiter::ENABLED_OFFSET);
    if found.is_none() {
        notes.push(format!(
            "assists cut short by the GC CPU limiter are not told apart: {} was found neither in .symtab nor in the code of {GC_ASSIST_ALLOC} and the runtime.gc* functions",
            limiter::SYMBOL
        ));
    }
    found
}

type Found<'n> = [(&'n str, FuncSym, SymbolSource)];

fn lookup(found: &Found, symbol: &str) -> Option<FuncSym> {
    found
        .iter()
        .find(|(n, ..)| *n == symbol)
        .map(|(_, f, _)| *f)
}

/// Every catalogue probe this binary has, group by group, each group as it wants a missing
/// function handled.
fn place_all(
    elf: &GoElf,
    found: &Found,
    map_impl: MapImpl,
    notes: &mut Vec<String>,
) -> Result<Vec<ProbeSite>, InspectError> {
    let mut probes = Vec::new();
    for group in ProbeGroup::ALL {
        let placed = catalogue::specs(map_impl, group).map(|spec| place(elf, found, spec));
        match group.when_missing() {
            WhenMissing::Refuse => probes.extend(placed.collect::<Result<Vec<_>, _>>()?),
            WhenMissing::Note(lost) => {
                for site in placed {
                    match site {
                        Ok(site) => probes.push(site),
                        Err(e) => notes.push(format!("{lost}: {e}")),
                    }
                }
            }
            WhenMissing::DropGroup => {
                probes.extend(placed.collect::<Result<Vec<_>, _>>().unwrap_or_default());
            }
            WhenMissing::Skip => probes.extend(placed.filter_map(Result::ok)),
        }
    }
    Ok(probes)
}

fn place(elf: &GoElf, found: &Found, spec: &'static ProbeSpec) -> Result<ProbeSite, InspectError> {
    let symbol = spec.symbol;
    let (_, sym, source) =
        *found
            .iter()
            .find(|(n, ..)| *n == symbol)
            .ok_or_else(|| InspectError::MissingSymbol {
                symbol: symbol.to_owned(),
            })?;
    let bad = |why: String| InspectError::BadFunction {
        symbol: symbol.to_owned(),
        why,
    };
    let file_offset = elf
        .file_offset(sym.address)
        .ok_or_else(|| bad(format!("address {:#x} is in no segment", sym.address)))?;
    let code = elf
        .code(sym.address, sym.size)
        .ok_or_else(|| bad("its code lies outside the file".into()))?;
    let layout = prologue::analyze(code, sym.address).map_err(bad)?;
    if matches!(spec.placement, Placement::Rets(_)) && layout.rets.is_empty() {
        return Err(bad("no RET instruction was found".into()));
    }
    Ok(ProbeSite {
        spec,
        source,
        address: sym.address,
        size: sym.size,
        file_offset,
        post_prologue: layout.post_prologue,
        attach_offset: file_offset + layout.post_prologue,
        ret_offsets: layout.rets,
    })
}

#[cfg(test)]
mod tests;
