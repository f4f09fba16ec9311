//! Compiling `*.bpf.c` into BPF objects with clang: the part of the build scripts
//! that `skewscope-probes` (`probes/build.rs`) and `skewscope-shadow`
//! (`shadow/build.rs`, through `#[path]`) share.
//!
//! Without a working clang nothing fails: [`find_clang`] sets the crate's "no BPF"
//! cfg and [`Bpf::build`] writes every object empty. A C file that clang rejects
//! fails the build.
//!
//! Environment: `CLANG` overrides the compiler (default `clang`);
//! `SKEWSCOPE_BPF_CFLAGS` appends extra flags (space separated).

use std::env;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory cargo gives the build script in the environment (`OUT_DIR`,
/// `CARGO_MANIFEST_DIR`).
pub fn env_path(var: &str) -> PathBuf {
    PathBuf::from(env::var_os(var).unwrap_or_else(|| panic!("{var}")))
}

/// Declares `cfg(<no_bpf_cfg>)` and the environment the objects depend on, and
/// returns the compiler named by `CLANG` (default `clang`) when it runs. When it
/// does not: a cargo warning that `what` are not built, `cfg(<no_bpf_cfg>)` set,
/// and `None`.
pub fn find_clang(no_bpf_cfg: &str, what: &str) -> Option<String> {
    println!("cargo::rustc-check-cfg=cfg({no_bpf_cfg})");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=SKEWSCOPE_BPF_CFLAGS");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let clang_works = Command::new(&clang)
        .arg("--version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if clang_works {
        Some(clang)
    } else {
        println!("cargo:warning=clang not found ({clang}): {what} are not built");
        println!("cargo:rustc-cfg={no_bpf_cfg}");
        None
    }
}

/// The `*.bpf.c` files of `dir`, sorted. `dir`, its headers (`*.h`) and every
/// source are declared with `rerun-if-changed`. An unreadable `dir` is returned
/// as the error, for the caller to judge.
pub fn sources(dir: &Path) -> io::Result<Vec<PathBuf>> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut sources = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry.expect("read bpf dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".bpf.c") {
            sources.push(path);
        } else if name.ends_with(".h") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    sources.sort();
    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    Ok(sources)
}

/// How one crate's objects are compiled.
pub struct Bpf<'a> {
    /// The compiler ([`find_clang`]); `None` writes every object empty.
    pub clang: Option<&'a str>,
    /// The `-I` directory of every source.
    pub include_dir: &'a Path,
    /// Whether to pass `-D__TARGET_ARCH_<arch>` (the target's BPF arch name).
    pub define_target_arch: bool,
    /// Objects (`name.bpf.o`) compiled with `-mcpu=v3`; the others keep clang's
    /// default BPF ISA.
    pub v3_objects: &'a [&'a str],
}

impl Bpf<'_> {
    /// Compiles every source into `out_dir` (`x.bpf.c` -> `x.bpf.o`).
    pub fn build(&self, sources: &[PathBuf], out_dir: &Path) {
        for source in sources {
            let object = out_dir.join(object_name(source));
            match self.clang {
                Some(clang) => self.compile(clang, source, &object),
                None => fs::write(&object, b"").expect("write empty BPF object"),
            }
        }
    }

    fn compile(&self, clang: &str, source: &Path, object: &Path) {
        let (bpf_arch, multiarch) = target_arch_names();
        let bpf_target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
            Ok("big") => "bpfeb",
            _ => "bpfel",
        };

        let mut cmd = Command::new(clang);
        cmd.args(["-g", "-O2", "-Wall", "-target", bpf_target]);
        if self.v3_objects.contains(&object_name(source).as_str()) {
            cmd.arg("-mcpu=v3");
        }
        if self.define_target_arch {
            cmd.arg(format!("-D__TARGET_ARCH_{bpf_arch}"));
        }
        cmd.arg("-I")
            .arg(self.include_dir)
            // <asm/types.h> lives under the multiarch directory on Debian/Ubuntu;
            // -idirafter keeps the BPF target's own headers first.
            .arg("-idirafter")
            .arg(format!("/usr/include/{multiarch}"));
        if let Ok(extra) = env::var("SKEWSCOPE_BPF_CFLAGS") {
            cmd.args(extra.split_whitespace());
        }
        cmd.arg("-c").arg(source).arg("-o").arg(object);

        let output = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {clang}: {e}"));
        if !output.status.success() {
            panic!(
                "clang failed on {}:\n{}{}",
                source.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// `softirq_time.bpf.c` -> `softirq_time.bpf.o`.
fn object_name(source: &Path) -> String {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 file name");
    format!("{}.o", name.trim_end_matches(".c"))
}

/// The target's (`__TARGET_ARCH_` name, Debian/Ubuntu multiarch include directory).
fn target_arch_names() -> (&'static str, &'static str) {
    match env::var("CARGO_CFG_TARGET_ARCH")
        .unwrap_or_default()
        .as_str()
    {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        "riscv64" => ("riscv", "riscv64-linux-gnu"),
        "powerpc64" => ("powerpc", "powerpc64le-linux-gnu"),
        "s390x" => ("s390", "s390x-linux-gnu"),
        other => panic!("no BPF target mapping for target_arch {other}"),
    }
}
