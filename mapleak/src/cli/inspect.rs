use super::{Error, flags::Listing};
use std::{fmt::Write as _, io::Write as _};

use crate::{
    inspect::{
        self, Inspection,
        offsets::{GcControllerFields, OffsetTable as _},
    },
    trace::target,
};

/// Show what mapleak sees in a Go binary: version, map implementation, probe plan. No root needed
/// for a file.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The Go executable to inspect.
    #[arg(required_unless_present = "pid", conflicts_with = "pid")]
    binary: Option<String>,
    /// Inspect the executable of this running process instead.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, value_enum, default_value_t = Listing::Text)]
    format: Listing,
    /// The Go release that built the binary (e.g. 1.26.5), for binaries whose version cannot
    /// be recovered; it must agree with the binary's layout.
    #[arg(long, value_name = "VERSION")]
    go_version: Option<String>,
}

pub fn run(args: InspectArgs) -> Result<(), Error> {
    let path = match (args.binary, args.pid) {
        (Some(path), _) => path,
        (None, Some(pid)) => {
            target::check_traceable(pid)?;
            target::exe_path(pid)
        }
        (None, None) => unreachable!("clap requires a binary or --pid"),
    };
    let inspection = inspect::inspect_file_as(&path, args.go_version.as_deref())?;
    let text = match args.format {
        Listing::Json => {
            let mut json = serde_json::to_string(&inspection)?;
            json.push('\n');
            json
        }
        Listing::Text => render(&inspection),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // The reader has all it wanted (`mapleak inspect BIN | head`).
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Stdout(e)),
        Ok(()) => Ok(()),
    }
}

fn render(i: &Inspection) -> String {
    let mut out = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(out, "binary:      {}", i.path);
    let _ = writeln!(
        out,
        "go version:  {} (from {})",
        i.go_version,
        i.go_version_source.as_str()
    );
    let _ = writeln!(out, "maps:        {}", i.map_impl.as_str());
    let _ = writeln!(
        out,
        "pie: {}  dynamic: {}  symtab: {}  struct offsets: {:?}",
        yes_no(i.pie),
        yes_no(i.dynamic),
        yes_no(i.symtab),
        i.offsets
    );
    if let Some(numgc) = i.numgc_address {
        let _ = writeln!(out, "memstats.numgc: {numgc:#x}");
    }
    if let Some(controller) = i.gc_controller_address {
        let fields = i.gc_controller_fields.fields();
        let members = GcControllerFields::MEMBERS.iter().map(|(member, _)| member);
        let known: Vec<String> = members
            .zip(fields)
            .filter_map(|(member, (_, off))| Some(format!("{member}+{}", off?)))
            .collect();
        if !known.is_empty() {
            let _ = writeln!(out, "gcController {controller:#x}: {}", known.join(" "));
        }
    }
    let width = i.probes.iter().map(|p| p.symbol().len()).max().unwrap_or(5);
    let _ = writeln!(
        out,
        "\n{:<width$} {:<7} {:>10} {:>10} {:>9} {:>8}  {:<8} RET OFFSETS",
        "PROBE", "SOURCE", "ADDRESS", "FILE OFF", "PROLOGUE", "ATTACH", "--probes"
    );
    for p in &i.probes {
        // Sites of a default group need no flag.
        let opt = p.group().opt_in().map_or("", |_| p.group().name());
        let rets: Vec<String> = p.ret_offsets.iter().map(|r| format!("+{r:#x}")).collect();
        let _ = writeln!(
            out,
            "{:<width$} {:<7} {:>#10x} {:>#10x} {:>9} {:>#8x}  {:<8} {}",
            p.symbol(),
            format!("{:?}", p.source).to_lowercase(),
            p.address,
            p.file_offset,
            format!("+{:#x}", p.post_prologue),
            p.attach_offset,
            opt,
            rets.join(" ")
        );
    }
    for note in &i.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}
