//! The parts of an ELF file mapleak needs: sections, segments, symbols, code bytes.

use object::{Object, ObjectKind, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

use super::InspectError;

/// A parsed Go executable borrowing its bytes.
pub struct GoElf<'data> {
    pub path: String,
    data: &'data [u8],
    file: object::File<'data>,
}

/// A function symbol: where it is and how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuncSym {
    pub address: u64,
    pub size: u64,
}

impl<'data> GoElf<'data> {
    pub fn parse(path: &str, data: &'data [u8]) -> Result<Self, InspectError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(InspectError::NotElf(path.to_owned()));
        }
        let file = object::File::parse(data).map_err(|e| InspectError::CorruptElf {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(InspectError::UnsupportedArch(format!(
                "{:?}",
                file.architecture()
            )));
        }
        // A section or segment whose bytes run past the end of the file: cut short in a copy.
        let len = data.len() as u64;
        let outside = file
            .sections()
            .filter_map(|s| {
                s.file_range()
                    .map(|r| (s.name().unwrap_or("?").to_owned(), r))
            })
            .chain(
                file.segments()
                    .map(|s| ("a segment".to_owned(), s.file_range())),
            )
            .find(|(_, (off, size))| off.checked_add(*size).is_none_or(|end| end > len));
        if let Some((what, (off, size))) = outside {
            return Err(InspectError::CorruptElf {
                path: path.to_owned(),
                why: format!(
                    "{what} ends at byte {} of a {len}-byte file",
                    off.saturating_add(size)
                ),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            data,
            file,
        })
    }

    /// Position-independent executable: code addresses move by a load bias at run time.
    pub fn is_pie(&self) -> bool {
        self.file.kind() == ObjectKind::Dynamic
    }

    /// Dynamically linked (cgo, or `-linkmode=external`): has a program interpreter.
    pub fn is_dynamic(&self) -> bool {
        self.file.section_by_name(".interp").is_some()
    }

    pub fn has_symtab(&self) -> bool {
        self.file.symbols().next().is_some()
    }

    /// A section's bytes, if present and stored in the file.
    pub fn section(&self, name: &str) -> Option<&'data [u8]> {
        self.file.section_by_name(name)?.data().ok()
    }

    /// The parsed file, for readers that need more than one section's bytes (e.g. DWARF).
    pub fn object(&self) -> &object::File<'data> {
        &self.file
    }

    /// The whole file, for scans that must work without section headers.
    pub fn bytes(&self) -> &'data [u8] {
        self.data
    }

    /// Looks up function symbols by exact name in `.symtab`, one pass over the table.
    pub fn functions<'n>(&self, names: &[&'n str]) -> Vec<(&'n str, FuncSym)> {
        let mut found = Vec::new();
        for sym in self.file.symbols() {
            if sym.kind() != SymbolKind::Text {
                continue;
            }
            let Ok(name) = sym.name() else { continue };
            if let Some(wanted) = names.iter().find(|n| **n == name) {
                found.push((
                    *wanted,
                    FuncSym {
                        address: sym.address(),
                        size: sym.size(),
                    },
                ));
            }
        }
        found
    }

    /// Address of a data (or bss) symbol in `.symtab`.
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        self.file
            .symbols()
            .find(|s| s.kind() == SymbolKind::Data && s.name() == Ok(name))
            .map(|s| s.address())
    }

    /// The file's bytes from link-time `address` to the end of the section holding it.
    pub fn data_at(&self, address: u64) -> Option<&'data [u8]> {
        self.file.sections().find_map(|s| {
            // Unallocated sections (symbols, DWARF) claim address 0 and would match by accident.
            if s.address() == 0 {
                return None;
            }
            let off = address.checked_sub(s.address())?;
            if off >= s.size() {
                return None;
            }
            // NOBITS sections have no bytes in the file; `get` refuses them.
            s.data().ok()?.get(usize::try_from(off).ok()?..)
        })
    }

    /// The Go build ID from `.note.go.buildid` (an ELF note named "Go", type 4), if present.
    pub fn go_build_id(&self) -> Option<String> {
        let note = self.section(".note.go.buildid")?;
        let word = |at: usize| -> Option<usize> {
            Some(u32::from_le_bytes(note.get(at..at + 4)?.try_into().ok()?) as usize)
        };
        let (name_size, desc_size, kind) = (word(0)?, word(4)?, word(8)?);
        let name_end = 12 + name_size.div_ceil(4) * 4;
        if kind != 4 || note.get(12..12 + name_size)? != b"Go\0" {
            return None;
        }
        let desc = note.get(name_end..name_end.checked_add(desc_size)?)?;
        std::str::from_utf8(desc).ok().map(str::to_owned)
    }

    /// The executable segment: link-time start and end, and its offset in the file.
    pub fn text_segment(&self) -> Option<(u64, u64, u64)> {
        const PF_X: u32 = 1;
        self.file.segments().find_map(|s| match s.flags() {
            object::SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0 => {
                Some((s.address(), s.address() + s.size(), s.file_range().0))
            }
            _ => None,
        })
    }

    /// Link-time address of the lowest loadable segment (0 for PIE).
    pub fn first_load_vaddr(&self) -> u64 {
        self.file.segments().map(|s| s.address()).min().unwrap_or(0)
    }

    /// File offset of a virtual address inside a loaded segment with file backing.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        self.file.segments().find_map(|seg| {
            let (off, len) = seg.file_range();
            let start = seg.address();
            (address >= start && address - start < len).then(|| address - start + off)
        })
    }

    /// `len` bytes of code at a virtual address, bounds-checked against the file.
    pub fn code(&self, address: u64, len: u64) -> Option<&'data [u8]> {
        let off = usize::try_from(self.file_offset(address)?).ok()?;
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(off..end)
    }
}
