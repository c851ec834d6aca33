use super::Error;
use std::io::Write as _;

use super::flags::Listing;
use crate::procs;

/// List the Go processes running here: version, map implementation, and whether mapleak can
/// trace each one (and if not, why).
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Only processes whose name (or executable's file name) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    name: Option<regex::Regex>,
    /// `text` for people, `json` for one JSON object per process.
    #[arg(long, value_enum, default_value_t = Listing::Text)]
    format: Listing,
}

pub fn run(args: PsArgs) -> Result<(), Error> {
    let scan = procs::scan(|name, file| {
        args.name
            .as_ref()
            .is_none_or(|re| re.is_match(name) || re.is_match(file))
    });
    let mut out = Vec::new();
    match args.format {
        Listing::Json => {
            for p in &scan.go {
                let line = serde_json::to_string(p)?;
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        Listing::Text if scan.go.is_empty() => out.extend_from_slice(b"no Go processes\n"),
        Listing::Text => procs::render(&mut out, &scan.go).map_err(Error::Stdout)?,
    }
    if scan.unreadable > 0 {
        crate::trace::say(&procs::unreadable(scan.unreadable));
    }
    match std::io::stdout().write_all(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Stdout(e)),
        _ => Ok(()),
    }
}
