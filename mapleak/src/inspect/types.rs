//! Go type names from the binary's own type descriptors, so that a report can say
//! `map[string]*main.Session` where it would otherwise say "key 16 B, value 8 B".
//!
//! Every map growth names its map's type descriptor (`hmap`'s `maptype`, Swiss maps'
//! `SwissMapType`), which starts with an `abi.Type` (identical from Go 1.19 to 1.27): `Kind_`
//! at byte 23, and `Str` at 40, an offset from `moduledata.types` to an `abi.Name` (a flags
//! byte, a uvarint length, the bytes). Types and names are read-only data in the file, so a
//! stripped binary answers as well: `moduledata` survives stripping.

use super::{GoElf, symbolize::MODULEDATA_SECTIONS, symbols};

/// `abi.Map` in `Kind_ & KindMask`.
const KIND_MAP: u8 = 21;
const KIND_MASK: u8 = (1 << 5) - 1;
const TYPE_KIND: usize = 23;
const TYPE_TFLAG: usize = 20;
const TYPE_STR: usize = 40;
/// `abi.TFlagExtraStar`: the name is stored with a `*` in front, for its pointer type.
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// Longer names are cut: they are for people, on one line.
const MAX_NAME: usize = 200;

/// Names the map types of one binary.
pub struct TypeNames<'a> {
    elf: &'a GoElf<'a>,
    /// `moduledata.types` .. `etypes`, link-time addresses.
    types: (u64, u64),
}

impl<'a> TypeNames<'a> {
    /// From `runtime.types` / `runtime.etypes` in `.symtab`, else from the module data found
    /// through `.gopclntab` (stripped binaries). `None` when neither is there.
    pub fn for_elf(elf: &'a GoElf<'a>, minor: u32) -> Option<Self> {
        let symbols = elf
            .data_symbol("runtime.types")
            .zip(elf.data_symbol("runtime.etypes"));
        let types = symbols.or_else(|| {
            let table = symbols::pclntab(elf).ok()?;
            MODULEDATA_SECTIONS
                .iter()
                .filter_map(|name| elf.section(name))
                .find_map(|module| table.moduledata_types(module, minor))
        })?;
        (types.0 < types.1).then_some(Self { elf, types })
    }

    /// The name of the map type whose descriptor is at link-time address `addr`, e.g.
    /// `map[string]int`; `None` unless `addr` is a map type descriptor with a readable name.
    pub fn map_name(&self, addr: u64) -> Option<String> {
        let (types, etypes) = self.types;
        if !(types..etypes).contains(&addr) {
            return None;
        }
        let t = self.elf.data_at(addr)?;
        if t.get(TYPE_KIND)? & KIND_MASK != KIND_MAP {
            return None;
        }
        let str_off = i32::from_le_bytes(t.get(TYPE_STR..TYPE_STR + 4)?.try_into().ok()?);
        let at = types.checked_add_signed(str_off.into())?;
        let name = read_name(self.elf.data_at(at)?)?;
        let name = if t.get(TYPE_TFLAG)? & TFLAG_EXTRA_STAR != 0 {
            name.strip_prefix('*')?
        } else {
            name
        };
        name.starts_with("map[").then(|| name.to_owned())
    }
}

/// An `abi.Name`: flags byte, uvarint length, bytes (Go 1.17+).
fn read_name(b: &[u8]) -> Option<&str> {
    let (mut len, mut shift, mut i) = (0usize, 0u32, 1usize);
    loop {
        let byte = *b.get(i)?;
        i += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    if len == 0 || len > MAX_NAME {
        return None;
    }
    std::str::from_utf8(b.get(i..i + len)?).ok()
}

#[cfg(test)]
mod tests;
