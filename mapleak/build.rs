use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata {
        packages,
        workspace_metadata,
        workspace_root,
        ..
    } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    // The eBPF nightly is pinned there; aya-build only asks to rerun for the kernel crate.
    println!(
        "cargo::rerun-if-changed={}",
        workspace_root.join("Cargo.toml")
    );
    let toolchain = workspace_metadata["toolchains"]["nightly"]
        .as_str()
        .ok_or_else(|| anyhow!("Cargo.toml has no [workspace.metadata.toolchains] nightly"))?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "mapleak-ebpf")
        .ok_or_else(|| anyhow!("mapleak-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("mapleak-ebpf manifest has no parent"))?
        .as_str();
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(toolchain),
    )
}
