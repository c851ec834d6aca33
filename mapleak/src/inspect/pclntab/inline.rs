//! Where funcdata (the inline trees among it) lives: at offsets from `moduledata.gofunc`.
//!
//! gofunc is the address of the linker's `go:func.*` symbol (`go.func.*` before 1.20): in
//! `.rodata` up to Go 1.25, inside `.gopclntab` from 1.26. Stripped binaries have no symbol
//! for it, but `runtime.firstmoduledata` records it, and that survives stripping.

use super::{
    MD_FTAB, MD_FTAB_LEN, MD_FUNCNAMETAB, MD_MAXPC, MD_MINPC, MD_PCHEADER, MD_TEXT, Pclntab,
    word_at,
};
use crate::gofacts;

impl<'a> Pclntab<'a> {
    /// The same table, able to read funcdata: `gofunc` holds the bytes from the address
    /// `moduledata.gofunc` to the end of the section containing it. Needed for inlined frames
    /// in [`Pclntab::symbolize`].
    pub fn with_gofunc(mut self, gofunc: &'a [u8]) -> Self {
        self.gofunc = gofunc;
        self
    }

    /// Whether [`Pclntab::with_gofunc`] gave this table its funcdata.
    pub fn has_gofunc(&self) -> bool {
        !self.gofunc.is_empty()
    }

    /// `moduledata.gofunc` of this table's module, given the bytes of the section that holds
    /// `runtime.firstmoduledata` (`.go.module` in Go 1.26+, `.noptrdata` before) and the Go
    /// minor version, which decides the field's place.
    pub fn moduledata_gofunc(&self, module: &[u8], minor: u32) -> Option<u64> {
        let words = self.moduledata(module)?;
        let gofunc_word = gofacts::MODULEDATA_GOFUNC_WORD.at(minor)?;
        // `rodata` precedes `gofunc` in every layout and go:func.* lies after its start:
        // a cheap check that the version picked the right word.
        let gofunc = words(gofunc_word)?;
        (words(gofunc_word - 1)?.wrapping_sub(1) < gofunc).then_some(gofunc)
    }

    /// `moduledata.types` and `etypes` of this table's module: the type descriptors, which
    /// every `abi.Type.Str` name offset counts from.
    pub fn moduledata_types(&self, module: &[u8], minor: u32) -> Option<(u64, u64)> {
        let words = self.moduledata(module)?;
        let (types, etypes) = gofacts::MODULEDATA_TYPES_WORDS.at(minor)?;
        let range = (words(types)?, words(etypes)?);
        (range.0 != 0 && range.0 < range.1).then_some(range)
    }

    /// The words of `runtime.firstmoduledata` in `module`, recognised by pointers that agree
    /// with this table's layout (names and functab at the header's offsets from the header
    /// pointer, functab length, PC range), so the table's own address need not be known.
    fn moduledata<'m>(&self, module: &'m [u8]) -> Option<impl Fn(usize) -> Option<u64> + 'm> {
        let p = self.ptr_size;
        let first = u64::from(self.entry_off(0)?);
        let last = u64::from(self.entry_off(self.nfunc)?);
        let start = (0..module.len() / p).find(|&w| {
            let word = |i: usize| word_at(module, (w + i) * p, p);
            let matches = || -> Option<bool> {
                let header = word(MD_PCHEADER)?;
                if header == 0
                    || word(MD_FUNCNAMETAB)? != header.checked_add(self.funcname_offset)?
                    || word(MD_FTAB)? != header.checked_add(self.pcln_offset)?
                    || word(MD_FTAB_LEN)? != self.nfunc as u64 + 1
                {
                    return Some(false);
                }
                let text = word(MD_TEXT)?;
                Some(
                    text.checked_add(first)? == word(MD_MINPC)?
                        && text.checked_add(last)? == word(MD_MAXPC)?,
                )
            };
            matches() == Some(true)
        })?;
        Some(move |i: usize| word_at(module, (start + i) * p, p))
    }
}
