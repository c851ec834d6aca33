//! `cargo xtask offsets`: regenerates the per-release table of the Go runtime's struct offsets
//! (`mapleak/src/inspect/offsets/releases.txt`) from the DWARF of a program each installed Go
//! builds. The unit test `dwarf_of_every_installed_go_confirms_the_offsets_table` is the
//! checking half: it fails when the table and a toolchain's DWARF disagree.

use anyhow::Result;

use crate::{cargo, go, run, workspace_root};

/// The table, relative to the workspace root.
const TABLE: &str = "mapleak/src/inspect/offsets/releases.txt";

pub fn regenerate() -> Result<()> {
    go::install_missing()?;
    println!("reading the DWARF of Go {}", go::all_versions().join(", "));
    run(cargo()
        .args(["test", "-p", "mapleak", "--lib", "--"])
        .args([
            "--ignored",
            "--exact",
            "inspect::dwarf::tests::regenerate_the_offsets_table",
        ])
        .env("MAPLEAK_OFFSETS_OUT", workspace_root().join(TABLE))
        .env("MAPLEAK_GO_CACHE", go::go_root())
        .env("MAPLEAK_REQUIRE_TOOLCHAINS", "1"))?;
    println!(
        "wrote {TABLE}; `git diff {TABLE}` shows what changed, and `cargo xtask test` checks it"
    );
    Ok(())
}
