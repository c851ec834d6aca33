//! Which Go built a binary, when `.go.buildinfo` may be missing.
//!
//! Some release builds drop the build information (a JavaScript bundler's, for one), but no Go
//! program can drop `.gopclntab` and its module data: the runtime walks them. Such a binary is
//! recognised by those, and its version recovered from what the runtime itself keeps:
//!
//! 1. `.go.buildinfo`, when there is one;
//! 2. `runtime.buildVersion`, a Go string header in data that `runtime.schedinit` reads (and
//!    sets to `"unknown"` when empty, which keeps it in every binary): `CMPQ X+8(SB), $0` and
//!    `MOVQ $7, X+8(SB)` find it without symbols;
//! 3. else the one version string the linker embeds, NUL-bounded in `.rodata`.
//!
//! Whatever the source, the version must agree with what the layout implies: the table's magic
//! (Go 1.18–1.19 or 1.20+), the funcID of wrappers (the last FuncID constant, which grew in
//! 1.22 and 1.25) and the map implementation's functions (Swiss from 1.24, classic until 1.25).
//! `--go-version` overrides a missing or unwanted version, within the same bounds.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};
use object::{Object, ObjectSection};
use serde::Serialize;

use super::{
    BuildInfo, GoElf, GoVersion, InspectError, MapImpl, buildinfo, pclntab::Pclntab, symbols,
};
use crate::gofacts;

/// Where the Go version came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum VersionSource {
    /// `.go.buildinfo`.
    #[serde(rename = "buildinfo")]
    BuildInfo,
    /// The runtime's own `runtime.buildVersion` string.
    #[serde(rename = "runtime.buildVersion")]
    BuildVersion,
    /// The one Go version string in `.rodata`.
    #[serde(rename = "version string")]
    VersionString,
    /// `--go-version`.
    #[serde(rename = "--go-version")]
    Flag,
}

impl VersionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionSource::BuildInfo => ".go.buildinfo",
            VersionSource::BuildVersion => "runtime.buildVersion",
            VersionSource::VersionString => "the version string in .rodata",
            VersionSource::Flag => "--go-version",
        }
    }
}

/// The Go release and build settings of a binary, and where they came from.
pub struct Identity {
    pub version: GoVersion,
    pub source: VersionSource,
    pub build: BuildInfo,
    pub map_impl: MapImpl,
    pub notes: Vec<String>,
}

/// What the binary's layout says about its Go release: minors `lo..=hi`, and the map
/// implementation when only one is present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub lo: u32,
    pub hi: u32,
    pub map_impl: Option<MapImpl>,
    /// Why, one clause per bound.
    pub why: Vec<String>,
}

const CLASSIC_GROW: &str = "runtime.hashGrow";
const SWISS_GROW: &str = "internal/runtime/maps.(*Map).growToSmall";
const SCHEDINIT: &str = "runtime.schedinit";

impl Layout {
    pub fn of(table: &Pclntab) -> Self {
        let mut layout = Layout {
            lo: 18,
            hi: u32::MAX,
            map_impl: None,
            why: Vec::new(),
        };
        let mut bound = |lo: u32, hi: u32, why: String| {
            layout.lo = layout.lo.max(lo);
            layout.hi = layout.hi.min(hi);
            layout.why.push(why);
        };
        if table.has_start_line() {
            bound(
                20,
                u32::MAX,
                "its function table is go1.20+'s (magic 0xfffffff1)".into(),
            );
        } else {
            bound(
                18,
                19,
                "its function table is go1.18–1.19's (magic 0xfffffff0)".into(),
            );
        }
        match table.wrapper_func_id() {
            Some(21) => bound(0, 21, "wrappers have funcID 21 (before go1.22)".into()),
            Some(22) => bound(22, 24, "wrappers have funcID 22 (go1.22–1.24)".into()),
            Some(23) => bound(25, u32::MAX, "wrappers have funcID 23 (go1.25+)".into()),
            _ => {}
        }
        let has = |name: &str| !table.functions(&[name]).is_empty();
        let (classic, swiss) = (has(CLASSIC_GROW), has(SWISS_GROW));
        if swiss {
            bound(24, u32::MAX, "it has Swiss maps (go1.24+)".into());
        }
        if classic {
            bound(0, 25, "it has classic maps (before go1.26)".into());
        }
        layout.map_impl = match (classic, swiss) {
            (true, false) => Some(MapImpl::Classic),
            (false, true) => Some(MapImpl::Swiss),
            _ => None,
        };
        layout
    }

    pub fn admits(&self, v: &GoVersion) -> bool {
        v.major == 1 && (self.lo..=self.hi).contains(&v.minor)
    }

    fn range(&self) -> String {
        match self.hi {
            u32::MAX => format!("go1.{} or later", self.lo),
            hi if hi == self.lo => format!("go1.{hi}"),
            hi => format!("go1.{}–go1.{hi}", self.lo),
        }
    }

    /// "go1.22–go1.24: wrappers have funcID 22 (go1.22–1.24), …"
    pub fn describe(&self) -> String {
        format!("{} ({})", self.range(), self.why.join("; "))
    }
}

/// A version as the user gives it: `1.26.5` or `go1.26.5`.
pub fn parse_flag(s: &str) -> Option<GoVersion> {
    let s = s.trim();
    let with_go = if s.starts_with("go") {
        s.to_owned()
    } else {
        format!("go{s}")
    };
    is_version_string(&with_go)
        .then(|| GoVersion::parse(&with_go))
        .flatten()
}

/// A candidate version and where it came from, with the `X:` experiments it lists.
struct Candidate {
    raw: String,
    source: VersionSource,
    build: BuildInfo,
}

pub fn identify(elf: &GoElf, go_version: Option<&str>) -> Result<Identity, InspectError> {
    let mut notes = Vec::new();
    let mut candidates = Vec::new();
    match read_buildinfo(elf) {
        Ok(build) => candidates.push(Candidate {
            raw: build.go_version.clone(),
            source: VersionSource::BuildInfo,
            build,
        }),
        Err(InspectError::NotGo(_)) => {}
        Err(e @ InspectError::UnsupportedGo(_)) => return Err(e),
        Err(e) => notes.push(format!("{e}: it is ignored")),
    }
    let table = match symbols::pclntab(elf) {
        Ok(table) => table,
        Err(InspectError::NoSymbols(_)) if candidates.is_empty() => {
            return Err(InspectError::NotGo(elf.path.clone()));
        }
        Err(e) => return Err(e),
    };
    if candidates.is_empty() && !symbols::has_moduledata(elf, &table) {
        return Err(InspectError::NotGo(elf.path.clone()));
    }
    let layout = Layout::of(&table);
    if candidates.is_empty() {
        candidates.extend(build_version(elf, &table).map(|raw| Candidate {
            build: build_from_version(&raw),
            raw,
            source: VersionSource::BuildVersion,
        }));
        candidates.extend(version_string(elf).map(|raw| Candidate {
            build: build_from_version(&raw),
            raw,
            source: VersionSource::VersionString,
        }));
    }
    let mut chosen = None;
    for c in candidates {
        let Some(version) = GoVersion::parse(&c.raw) else {
            notes.push(format!(
                "{} says {:?}, which is no Go version: it is ignored",
                c.source.as_str(),
                c.raw
            ));
            continue;
        };
        if go_version.is_none() && !version.is_supported() {
            // Refused whatever the layout says: mapleak has no rules for that release.
            return Err(InspectError::UnsupportedGo(version.raw.clone()));
        }
        if !layout.admits(&version) {
            notes.push(format!(
                "{} says {version}, but the binary's layout says {}: it is ignored",
                c.source.as_str(),
                layout.describe()
            ));
            continue;
        }
        chosen = Some((version, c.source, c.build));
        break;
    }
    let (version, source, build) = match go_version {
        Some(flag) => {
            let version = parse_flag(flag).ok_or_else(|| {
                InspectError::BadGoVersion(format!("{flag:?} is not a Go version such as 1.26.5"))
            })?;
            if !layout.admits(&version) {
                return Err(InspectError::BadGoVersion(format!(
                    "--go-version {version} contradicts the binary's layout, which says {}",
                    layout.describe()
                )));
            }
            if let Some((found, source, _)) = &chosen
                && found.raw != version.raw
            {
                notes.push(format!(
                    "{} says {found}; --go-version {version} is used instead",
                    source.as_str()
                ));
            }
            // Build settings still come from the binary, whatever version the user names.
            let build = chosen.map(|(_, _, b)| b).unwrap_or_default();
            (version, VersionSource::Flag, build)
        }
        None => chosen.ok_or_else(|| InspectError::UnknownGoVersion {
            path: elf.path.clone(),
            layout: layout.describe(),
        })?,
    };
    if !version.is_supported() {
        return Err(InspectError::UnsupportedGo(version.raw.clone()));
    }
    let by_version =
        if gofacts::SWISS_BY_DEFAULT.holds(version.minor) && !build.has_experiment("noswissmap") {
            MapImpl::Swiss
        } else {
            MapImpl::Classic
        };
    // The functions present are what the probes go on: they decide when the version's rules
    // and the binary disagree (a --go-version without the experiment the build used).
    let map_impl = layout.map_impl.unwrap_or(by_version);
    if source != VersionSource::BuildInfo && build.main_module.is_none() {
        notes.push(
            "the main module is not known (no .go.buildinfo): findings name the first frame outside the standard library".into(),
        );
    }
    Ok(Identity {
        version,
        source,
        build,
        map_impl,
        notes,
    })
}

/// Build settings from a `runtime.buildVersion` string: `go1.24.11 X:noswissmap` names the
/// experiments that differ from the release's defaults.
fn build_from_version(raw: &str) -> BuildInfo {
    let mut build = BuildInfo {
        go_version: raw.split_whitespace().next().unwrap_or_default().to_owned(),
        ..Default::default()
    };
    if let Some(experiments) = raw.split_whitespace().find_map(|w| w.strip_prefix("X:")) {
        build
            .settings
            .push(("GOEXPERIMENT".to_owned(), experiments.to_owned()));
    }
    build
}

/// `.go.buildinfo` by section name, else by scanning for its magic (binaries without section
/// headers still carry it, 16-byte aligned, in a data segment). `NotGo` when there is none.
pub fn read_buildinfo(elf: &GoElf) -> Result<BuildInfo, InspectError> {
    if let Some(section) = elf.section(".go.buildinfo") {
        return buildinfo::parse(section);
    }
    let bytes = elf.bytes();
    let magic = b"\xff Go buildinf:";
    (0..bytes.len().saturating_sub(magic.len()))
        .step_by(16)
        .find(|&i| &bytes[i..i + magic.len()] == magic)
        .map(|i| buildinfo::parse(&bytes[i..]))
        .unwrap_or_else(|| Err(InspectError::NotGo(elf.path.clone())))
}

/// The longest version string mapleak reads (`go1.24.11 X:noswissmap,…`).
const MAX_VERSION_LEN: u64 = 128;

/// `runtime.buildVersion`, through the code of `runtime.schedinit`.
fn build_version(elf: &GoElf, table: &Pclntab) -> Option<String> {
    let (_, f) = table.functions(&[SCHEDINIT]).into_iter().next()?;
    let header = build_version_header(elf.code(f.address, f.size)?, f.address)?;
    let words = elf.code(header, 16)?;
    let ptr = u64::from_le_bytes(words[..8].try_into().ok()?);
    let len = u64::from_le_bytes(words[8..].try_into().ok()?);
    if len == 0 || len > MAX_VERSION_LEN {
        return None;
    }
    let text = std::str::from_utf8(elf.code(ptr, len)?).ok()?;
    Some(text.to_owned())
}

/// Address of `runtime.buildVersion`'s string header in `schedinit`: the length word is
/// compared with 0 and set to 7 (`"unknown"`).
pub fn build_version_header(code: &[u8], address: u64) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let (mut compared, mut set) = (Vec::new(), Vec::new());
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.code() == Code::INVALID {
            return None;
        }
        if !insn.is_ip_rel_memory_operand()
            || insn.op0_kind() != OpKind::Memory
            || insn.memory_size().size() != 8
            || !matches!(
                insn.op1_kind(),
                OpKind::Immediate8to64 | OpKind::Immediate32to64
            )
        {
            continue;
        }
        let target = insn.ip_rel_memory_address();
        match (insn.mnemonic(), insn.immediate(1)) {
            (Mnemonic::Cmp, 0) => compared.push(target),
            (Mnemonic::Mov, 7) => set.push(target),
            _ => {}
        }
    }
    let mut found: Vec<u64> = set.into_iter().filter(|t| compared.contains(t)).collect();
    found.sort_unstable();
    found.dedup();
    (found.len() == 1).then(|| found[0].wrapping_sub(8))
}

/// The one `go1.N[.P][rcK|betaK][ X:…]` string in `.rodata` (the whole file when there are no
/// section headers) with no printable character on either side: the linker packs strings
/// without separators, but what sits next to this one is binary data or padding, whereas a
/// version inside text (`fips140only_go1.26.go`) is not bounded so. `None` when there are none
/// or they disagree.
fn version_string(elf: &GoElf) -> Option<String> {
    let data = elf
        .object()
        .section_by_name(".rodata")
        .and_then(|s| s.data().ok())
        .unwrap_or(elf.bytes());
    let printable = |b: u8| (0x20..0x7f).contains(&b);
    let mut found: Vec<&str> = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&data[at..], b"go1.") {
        let start = at + i;
        at = start + 1;
        if start > 0 && printable(data[start - 1]) {
            continue;
        }
        let Some(len) = data[start..]
            .iter()
            .take(MAX_VERSION_LEN as usize + 1)
            .position(|&b| !printable(b))
        else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&data[start..start + len]) else {
            continue;
        };
        if is_version_string(text) && !found.contains(&text) {
            found.push(text);
        }
    }
    (found.len() == 1).then(|| found[0].to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `go1.26.5`, `go1.22rc1`, `go1.24.11 X:noswissmap`: what `runtime.Version()` returns.
fn is_version_string(s: &str) -> bool {
    let (version, experiments) = match s.split_once(' ') {
        Some((v, x)) => (v, Some(x)),
        None => (s, None),
    };
    let Some(rest) = version.strip_prefix("go1.") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (minor, tail) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let tail_ok = tail.is_empty()
        || tail.strip_prefix('.').is_some_and(digits)
        || tail.strip_prefix("rc").is_some_and(digits)
        || tail.strip_prefix("beta").is_some_and(digits);
    let experiments_ok = experiments.is_none_or(|x| {
        x.strip_prefix("X:").is_some_and(|list| {
            !list.is_empty()
                && list
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b',')
        })
    });
    digits(minor) && tail_ok && experiments_ok
}

#[cfg(test)]
mod tests;
