//! Function lookup by name, from `.gopclntab`: every Go binary keeps it because the runtime
//! itself walks it (stripped distro packages included), so it is the authority on where a
//! function starts. `.symtab`, when there is one, is only checked against it: a symbol table
//! that puts a function elsewhere (corrupt or hostile) would put a probe inside an instruction.

use object::{Object, ObjectSection};

use super::{GoElf, InspectError, SymbolSource, elf::FuncSym, pclntab::Pclntab};

/// Where `runtime.firstmoduledata` lives: its own section from Go 1.26, `.noptrdata` before.
const MODULEDATA_SECTIONS: [&str; 2] = [".go.module", ".noptrdata"];

/// Functions found by name in `.gopclntab`, each with [`SymbolSource::Symtab`] when `.symtab`
/// lists it at the same place too; and a note for each function `.symtab` disagrees on.
pub struct Resolved<'n> {
    pub functions: Vec<(&'n str, FuncSym, SymbolSource)>,
    pub notes: Vec<String>,
}

pub fn resolve<'n>(elf: &GoElf, names: &[&'n str]) -> Result<Resolved<'n>, InspectError> {
    let table = pclntab(elf)?;
    let listed = if elf.has_symtab() {
        elf.functions(names)
    } else {
        Vec::new()
    };
    let mut notes = Vec::new();
    let functions = table
        .functions(names)
        .into_iter()
        .map(|(name, f)| {
            let listed_at: Vec<u64> = listed
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, s)| s.address)
                .collect();
            let source = if listed_at.is_empty() {
                SymbolSource::Pclntab
            } else if listed_at.contains(&f.address) {
                SymbolSource::Symtab
            } else {
                let at: Vec<String> = listed_at.iter().map(|a| format!("{a:#x}")).collect();
                notes.push(format!(
                    ".symtab puts {name} at {} but .gopclntab at {:#x}: .symtab is ignored for it",
                    at.join(", "),
                    f.address
                ));
                SymbolSource::Pclntab
            };
            (name, f, source)
        })
        .collect();
    Ok(Resolved { functions, notes })
}

/// The binary's `.gopclntab`, with functions placed at their link-time addresses.
pub fn pclntab<'d>(elf: &GoElf<'d>) -> Result<Pclntab<'d>, InspectError> {
    let file = elf.object();
    let (address, data) =
        find_pclntab(elf).ok_or_else(|| InspectError::NoSymbols(elf.path.clone()))?;
    let text = file
        .section_by_name(".text")
        .map(|s| s.address())
        .ok_or_else(|| InspectError::NoSymbols(elf.path.clone()))?;
    let table = Pclntab::parse(data, text)?;
    if table.header_text_start().is_some() {
        return Ok(table);
    }
    // Go 1.26+ stopped recording runtime.text, and an externally linked binary's .text starts
    // with C code: take runtime.text from the module data when it is there.
    let text = MODULEDATA_SECTIONS.iter().find_map(|name| {
        let module = file.section_by_name(name)?;
        table.moduledata_text(address, module.data().ok()?)
    });
    Ok(match text {
        Some(text) => table.with_text_start(text),
        None => table,
    })
}

/// Whether `runtime.firstmoduledata`, which points the runtime at `table`, is in the binary:
/// with a valid `.gopclntab`, what makes a file a Go program when it has no build information.
/// PIEs keep it among their relocated data.
pub fn has_moduledata(elf: &GoElf, table: &Pclntab) -> bool {
    let file = elf.object();
    let Some((address, _)) = find_pclntab(elf) else {
        return false;
    };
    MODULEDATA_SECTIONS
        .iter()
        .chain(&[".data.rel.ro", ".data"])
        .filter_map(|name| file.section_by_name(name)?.data().ok())
        .any(|module| table.moduledata_text(address, module).is_some())
}

/// `.gopclntab` in executables; PIEs from Go 1.18–1.25 call it `.data.rel.ro.gopclntab`, or
/// (linked externally) merge it into `.data.rel.ro`, where its header is found by its magic.
fn find_pclntab<'d>(elf: &GoElf<'d>) -> Option<(u64, &'d [u8])> {
    let file = elf.object();
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(section) = file.section_by_name(name) {
            return Some((section.address(), section.data().ok()?));
        }
    }
    let section = file.section_by_name(".data.rel.ro")?;
    let data = section.data().ok()?;
    (0..data.len().saturating_sub(PCHEADER_PREFIX_LEN))
        .step_by(8)
        .find(|&i| is_pcheader(&data[i..]) && Pclntab::parse(&data[i..], 0).is_ok())
        .map(|i| (section.address() + i as u64, &data[i..]))
}

const PCHEADER_PREFIX_LEN: usize = 8;

/// Magic 0xfffffff0/1 (1.18+), two zero pad bytes, minLC 1 and pointer size 8 (amd64).
fn is_pcheader(b: &[u8]) -> bool {
    matches!(
        b.get(..8),
        Some([0xf0 | 0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8])
    )
}
