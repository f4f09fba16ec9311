//! Compiles `bpf/*.bpf.c` into BPF objects in `OUT_DIR` with clang.
//!
//! Without clang the build does not fail: every object is written empty and
//! `cfg(skewscope_no_bpf)` is set, so `cargo check`/clippy work everywhere and
//! the loader reports "probe not built: clang missing" at run time. A C file
//! that clang rejects does fail the build.
//!
//! Environment: `CLANG` overrides the compiler (default `clang`);
//! `SKEWSCOPE_BPF_CFLAGS` appends extra flags (space separated).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skewscope_no_bpf)");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=SKEWSCOPE_BPF_CFLAGS");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    println!("cargo:rerun-if-changed={}", bpf_dir.display());

    let mut sources = Vec::new();
    for entry in fs::read_dir(&bpf_dir).expect("read probes/bpf") {
        let path = entry.expect("read probes/bpf entry").path();
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

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let clang_works = Command::new(&clang)
        .arg("--version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !clang_works {
        println!("cargo:warning=clang not found ({clang}): BPF probes are not built");
        println!("cargo:rustc-cfg=skewscope_no_bpf");
    }

    for source in &sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let object = out_dir.join(object_name(source));
        if clang_works {
            compile(&clang, source, &object, &bpf_dir);
        } else {
            fs::write(&object, b"").expect("write empty BPF object");
        }
    }
}

/// Objects compiled for BPF ISA v3 (see `compile`).
const V3_OBJECTS: &[&str] = &["rx.bpf.o"];

/// `softirq_time.bpf.c` -> `softirq_time.bpf.o`.
fn object_name(source: &Path) -> String {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 file name");
    format!("{}.o", name.trim_end_matches(".c"))
}

fn compile(clang: &str, source: &Path, object: &Path, include_dir: &Path) {
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let (bpf_arch, multiarch) = match target_arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        "riscv64" => ("riscv", "riscv64-linux-gnu"),
        "powerpc64" => ("powerpc", "powerpc64le-linux-gnu"),
        "s390x" => ("s390", "s390x-linux-gnu"),
        other => panic!("no BPF target mapping for target_arch {other}"),
    };
    let bpf_target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };

    let mut cmd = Command::new(clang);
    cmd.args(["-g", "-O2", "-Wall", "-target", bpf_target]);
    // BPF ISA v3 for the objects that claim shared slots with an atomic
    // compare-and-exchange (BPF_CMPXCHG, Linux 5.12); they need Linux 6.3
    // (sock:sk_data_ready) anyway. The others keep the default ISA.
    if V3_OBJECTS.contains(&object_name(source).as_str()) {
        cmd.arg("-mcpu=v3");
    }
    cmd.arg(format!("-D__TARGET_ARCH_{bpf_arch}"))
        .arg("-I")
        .arg(include_dir)
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
