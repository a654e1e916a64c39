//! Build script: generates the man page and the shell completions from the command line's one
//! definition (`src/cli/args.rs`), and compiles the queue_track BPF programs into a
//! libbpf-cargo skeleton when the `bpf` feature is on (without it no clang is needed).
//!
//! The man page and completions are written to OUT_DIR, where the tests read them, and copied
//! next to the binary (`target/<profile>/man/stalld.8`, `target/<profile>/completions/`), where
//! `make install` finds them.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
mod cli_args {
    include!("src/cli/args.rs");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=man/observability.roff");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    docs::generate(&out);
    if std::env::var_os("CARGO_FEATURE_BPF").is_some() {
        #[cfg(feature = "bpf")]
        bpf::build(&out);
    }
}

mod docs {
    use super::*;
    use clap::CommandFactory;
    use clap_complete::Shell;

    pub fn generate(out: &Path) {
        let mut command = super::cli_args::Args::command();
        command.build();
        let man = out.join("man");
        let completions = out.join("completions");
        for dir in [&man, &completions] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let page = man_page(&command).expect("rendering the man page");
        write(&man.join("stalld.8"), &page);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut command.clone(), "stalld", &completions)
                .unwrap_or_else(|e| panic!("generating {shell} completions: {e}"));
        }
        // Next to the binary, for `make install`: OUT_DIR is <profile>/build/<pkg>-<hash>/out.
        if let Some(profile) = out.ancestors().nth(3) {
            for dir in ["man", "completions"] {
                copy_dir(&out.join(dir), &profile.join(dir));
            }
        }
    }

    /// The generated sections (name, synopsis, description, options by group), the
    /// subcommands as `stalld NAME ARGS`, the definition's hand-written sections, the
    /// observability section, the examples, the version, then license and SEE ALSO.
    fn man_page(command: &clap::Command) -> std::io::Result<Vec<u8>> {
        let man = clap_mangen::Man::new(command.clone())
            .title("STALLD")
            .section("8")
            .source(format!("stalld {}", env!("CARGO_PKG_VERSION")))
            .manual("System Administration");
        let mut page = Vec::new();
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        // The usage screen's synopsis (clap_mangen's would drop the value names).
        page.extend_from_slice(b".SH SYNOPSIS\n.B stalld\n");
        let words = super::cli_args::synopsis_words(command);
        page.extend_from_slice(format!("{}\n", roff_text(&words.join(" "))).as_bytes());
        for sub in command.get_subcommands() {
            let synopsis = super::cli_args::subcommand_synopsis(sub);
            page.extend_from_slice(
                format!(".br\n.B stalld\n{}\n", roff_text(&synopsis)).as_bytes(),
            );
        }
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        page.extend_from_slice(b".SH SUBCOMMANDS\n");
        for sub in command.get_subcommands() {
            let synopsis = super::cli_args::subcommand_synopsis(sub);
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            let entry = format!(
                ".TP\n.B stalld {}\n{}\n",
                roff_text(&synopsis),
                roff_text(&about)
            );
            page.extend_from_slice(entry.as_bytes());
        }
        page.extend_from_slice(super::cli_args::MAN_EXTRA.as_bytes());
        // Written by hand where the events are defined; included verbatim.
        page.extend_from_slice(include_bytes!("man/observability.roff"));
        page.extend_from_slice(b".SH EXAMPLES\n");
        for (command, what) in super::cli_args::MAN_EXAMPLES {
            let entry = format!(".TP\n.B {}\n{}\n", roff_text(command), roff_text(what));
            page.extend_from_slice(entry.as_bytes());
        }
        man.render_version_section(&mut page)?;
        // License and SEE ALSO close the page, as man-pages(7) orders them.
        page.extend_from_slice(super::cli_args::MAN_CLOSING.as_bytes());
        Ok(page)
    }

    /// Plain text safe in a roff body: backslashes and leading dots or quotes escaped.
    fn roff_text(text: &str) -> String {
        let text = text.replace('\\', "\\e").replace('-', "\\-");
        if text.starts_with(['.', '\'']) {
            format!("\\&{text}")
        } else {
            text
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        for entry in std::fs::read_dir(from).expect("reading a generated directory") {
            let entry = entry.expect("a directory entry");
            let bytes = std::fs::read(entry.path()).expect("reading a generated file");
            write(&to.join(entry.file_name()), &bytes);
        }
    }
}

#[cfg(feature = "bpf")]
mod bpf {
    use std::path::Path;

    const DIR: &str = "src/backend/queue_track/bpf";

    pub fn build(out: &Path) {
        for file in ["stalld.bpf.c", "intf.h", "vmlinux_min.h"] {
            println!("cargo:rerun-if-changed={DIR}/{file}");
        }
        let out = out.join("stalld.skel.rs");
        // The object is for the target's kernel: its byte order (s390x is big-endian), not the
        // build machine's, which is what libbpf-cargo's `-target bpf` alone would give. (The
        // architecture's __TARGET_ARCH_ comes from CARGO_CFG_TARGET_ARCH in libbpf-cargo.)
        let endian = match std::env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
            Ok("big") => "-mbig-endian",
            _ => "-mlittle-endian",
        };
        if let Err(err) = libbpf_cargo::SkeletonBuilder::new()
            .source(format!("{DIR}/stalld.bpf.c"))
            .clang_args(["-I", DIR, "-Wall", "-Werror", endian])
            .build_and_generate(&out)
        {
            // The chain carries clang's own diagnostics; without it the cause is lost.
            panic!("building the queue_track BPF skeleton failed (needs clang): {err:#}");
        }
    }
}
