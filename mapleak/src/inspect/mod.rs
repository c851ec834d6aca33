//! Binary inspection: the bytes of a Go ELF executable in, a probe plan out. Pure and root-free.

pub mod buildinfo;
pub mod dwarf;
pub mod elf;
pub mod file;
pub mod gccontroller;
pub mod gccost;
pub mod gcdata;
pub mod identify;
pub mod limiter;
pub mod offsets;
pub mod pclntab;
pub mod plan;
pub mod prologue;
pub mod symbolize;
pub mod symbols;
#[cfg(test)]
pub(crate) mod testgo;
pub mod types;
pub mod version;

pub use buildinfo::BuildInfo;
pub use elf::GoElf;
pub use identify::VersionSource;
pub use plan::{
    Inspection, MapImpl, OffsetsSource, ProbeSite, SymbolSource, inspect_bytes, inspect_bytes_as,
    inspect_file, inspect_file_as,
};
pub use version::GoVersion;

/// Why a binary cannot be traced. Each message is one sentence a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {what}, not an executable file")]
    NotAFile { path: String, what: &'static str },
    #[error("{0} is not an ELF executable")]
    NotElf(String),
    #[error("{path} is a corrupt or truncated ELF file ({why})")]
    CorruptElf { path: String, why: String },
    #[error(
        "{0} is not a Go program: it has neither Go build information (.go.buildinfo) nor the runtime's function table (.gopclntab) and module data"
    )]
    NotGo(String),
    #[error(
        "the Go version of {path} could not be recovered (no .go.buildinfo, no runtime.buildVersion, no version string); its layout says {layout}: name it with --go-version"
    )]
    UnknownGoVersion { path: String, layout: String },
    #[error("{0}")]
    BadGoVersion(String),
    #[error("the Go build information is corrupt ({0})")]
    CorruptBuildInfo(String),
    #[error("the Go symbol table (.gopclntab) is corrupt ({0})")]
    CorruptPclntab(String),
    #[error(
        "{0} is not supported: mapleak traces Go programs built with {range}",
        range = GoVersion::supported_range()
    )]
    UnsupportedGo(String),
    #[error("{0} binaries are not supported: mapleak traces linux/amd64 Go programs")]
    UnsupportedArch(String),
    #[error("{symbol} was not found in the binary (neither in .symtab nor in .gopclntab)")]
    MissingSymbol { symbol: String },
    #[error("{0} has neither a symbol table (.symtab) nor a Go function table (.gopclntab)")]
    NoSymbols(String),
    #[error("cannot place a probe on {symbol}: {why}")]
    BadFunction { symbol: String, why: String },
    #[error("the binary's DWARF debug information is corrupt ({0})")]
    CorruptDwarf(String),
}
