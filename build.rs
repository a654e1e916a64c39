//! Build script: compiles the queue_track BPF programs into a libbpf-cargo skeleton when the
//! `bpf` feature is on. Without it there is nothing to build (no clang needed).

fn main() {
    if std::env::var_os("CARGO_FEATURE_BPF").is_some() {
        #[cfg(feature = "bpf")]
        bpf::build();
    }
}

#[cfg(feature = "bpf")]
mod bpf {
    use std::path::PathBuf;

    const DIR: &str = "src/backend/queue_track/bpf";

    pub fn build() {
        for file in ["stalld.bpf.c", "intf.h", "vmlinux_min.h"] {
            println!("cargo:rerun-if-changed={DIR}/{file}");
        }
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
            .join("stalld.skel.rs");
        if let Err(err) = libbpf_cargo::SkeletonBuilder::new()
            .source(format!("{DIR}/stalld.bpf.c"))
            .clang_args(["-I", DIR, "-Wall", "-Werror"])
            .build_and_generate(&out)
        {
            // The chain carries clang's own diagnostics; without it the cause is lost.
            panic!("building the queue_track BPF skeleton failed (needs clang): {err:#}");
        }
    }
}
