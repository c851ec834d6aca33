//! What the table says about each program's executable: its Go version, main module and cgo
//! setting from the build info (`go version -m`), and whether it is stripped (no `.symtab`).

use std::{fs, path::Path};

/// The build info of a Go executable, as far as the table uses it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub go_version: String,
    /// `path`: the main package.
    pub path: String,
    /// `mod`: the main module (absent from GOPATH builds such as Debian's).
    pub module: Option<String>,
    pub cgo: Option<bool>,
}

impl BuildInfo {
    /// The package path of the program's own code: its main module, else its main package's
    /// path up to `/cmd/` (GOPATH builds keep only the package), and `cmd` for the Go
    /// toolchain's own programs (`cmd/compile` is built from the `cmd` module).
    pub fn own_prefix(&self) -> Option<String> {
        if let Some(module) = &self.module {
            return Some(module.clone());
        }
        let path = self.path.as_str();
        if path.is_empty() {
            return None;
        }
        if path == "cmd" || path.starts_with("cmd/") {
            return Some("cmd".to_owned());
        }
        Some(path.split("/cmd/").next().unwrap_or(path).to_owned())
    }
}

/// Parses `go version -m BINARY`'s output.
pub fn parse_build_info(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            info.go_version = line.rsplit(' ').next().unwrap_or("").to_owned();
            continue;
        }
        let fields: Vec<&str> = line.trim_start().split('\t').collect();
        match fields.as_slice() {
            ["path", path, ..] => info.path = (*path).to_owned(),
            ["mod", module, ..] => info.module = Some((*module).to_owned()),
            ["build", setting, ..] => {
                if let Some(v) = setting.strip_prefix("CGO_ENABLED=") {
                    info.cgo = Some(v == "1");
                }
            }
            _ => {}
        }
    }
    info
}

/// Whether an ELF file has no `.symtab` (`None`: not a 64-bit little-endian ELF file).
pub fn stripped(path: &Path) -> Option<bool> {
    let data = fs::read(path).ok()?;
    section_names(&data).map(|names| !names.iter().any(|n| n == ".symtab"))
}

/// The section names of a 64-bit little-endian ELF image.
fn section_names(data: &[u8]) -> Option<Vec<String>> {
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let v = u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?);
        usize::try_from(v).ok()
    };
    let shoff = u64_at(0x28)?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = u64_at(header(shstrndx)? + 0x18)?;
    (0..shnum)
        .map(|i| {
            let name = u32_at(header(i)?)? as usize;
            let start = strtab.checked_add(name)?;
            let rest = data.get(start..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_of_a_debian_and_a_module_build() {
        let debian = parse_build_info(
            "/usr/bin/restic: go1.19.8\n\tpath\tgithub.com/restic/restic/cmd/restic\n\
             \tbuild\t-compiler=gc\n\tbuild\tCGO_ENABLED=1\n",
        );
        assert_eq!(debian.go_version, "go1.19.8");
        assert_eq!(debian.cgo, Some(true));
        assert_eq!(
            debian.own_prefix().as_deref(),
            Some("github.com/restic/restic")
        );
        let hugo = parse_build_info(
            "hugo: go1.27.2\n\tpath\tgithub.com/gohugoio/hugo\n\
             \tmod\tgithub.com/gohugoio/hugo\tv0.0.0-2026+dirty\t\n\
             \tdep\tcel.dev/expr\tv0.25.2\th1:x=\n\tbuild\tCGO_ENABLED=0\n",
        );
        assert_eq!(hugo.module.as_deref(), Some("github.com/gohugoio/hugo"));
        assert_eq!(hugo.cgo, Some(false));
        let compile = parse_build_info("compile: go1.24.11\n\tpath\tcmd/compile\n");
        assert_eq!(compile.own_prefix().as_deref(), Some("cmd"));
        assert_eq!(parse_build_info("").own_prefix(), None);
    }

    #[test]
    fn this_test_binary_is_an_elf_file_with_sections() {
        let me = std::env::current_exe().unwrap();
        let names = section_names(&fs::read(me).unwrap()).unwrap();
        assert!(names.iter().any(|n| n == ".text"), "{names:?}");
        assert_eq!(section_names(b"#!/bin/sh\n"), None);
    }
}
