//! Builds netcopy-ebpf for the BPF target with the nightly (aya-build) and leaves the object in
//! OUT_DIR, where `kernel::tracer` embeds it with `include_bytes_aligned!`.

use std::path::Path;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("netcopy sits inside the workspace")
        .join("netcopy-ebpf");
    let root = root.to_str().expect("workspace path is UTF-8");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "netcopy-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
