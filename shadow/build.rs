//! Compiles the built-in selectors `bpf/*.bpf.c` into `OUT_DIR` and the test
//! candidates `tests/bpf/*.bpf.c` into `OUT_DIR/fixtures` with clang.
//!
//! Without clang the build does not fail: every object is written empty and
//! `cfg(skewscope_shadow_no_bpf)` is set, so `cargo check`/clippy work
//! everywhere; built-in policies are then reported as rejected ("not built:
//! clang missing") at run time. A C file that clang rejects fails the build.
//!
//! Environment: `CLANG` overrides the compiler (default `clang`);
//! `SKEWSCOPE_BPF_CFLAGS` appends extra flags (space separated).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skewscope_shadow_no_bpf)");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-env-changed=SKEWSCOPE_BPF_CFLAGS");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest_dir.join("bpf");
    let fixture_dir = manifest_dir.join("tests").join("bpf");
    let fixture_out = out_dir.join("fixtures");
    fs::create_dir_all(&fixture_out).expect("create OUT_DIR/fixtures");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let clang_works = Command::new(&clang)
        .arg("--version")
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !clang_works {
        println!("cargo:warning=clang not found ({clang}): shadow selectors are not built");
        println!("cargo:rustc-cfg=skewscope_shadow_no_bpf");
    }

    for (dir, out) in [(&bpf_dir, &out_dir), (&fixture_dir, &fixture_out)] {
        println!("cargo:rerun-if-changed={}", dir.display());
        for source in sources(dir) {
            println!("cargo:rerun-if-changed={}", source.display());
            let object = out.join(object_name(&source));
            if clang_works {
                compile(&clang, &source, &object, &bpf_dir);
            } else {
                fs::write(&object, b"").expect("write empty BPF object");
            }
        }
    }
}

/// The `*.bpf.c` files of `dir` (sorted); headers only trigger reruns.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return sources;
    };
    for entry in entries {
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
    sources
}

/// `cpu.bpf.c` -> `cpu.bpf.o`.
fn object_name(source: &Path) -> String {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 file name");
    format!("{}.o", name.trim_end_matches(".c"))
}

fn compile(clang: &str, source: &Path, object: &Path, include_dir: &Path) {
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH")
        .unwrap_or_default()
        .as_str()
    {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        other => panic!("no multiarch include mapping for target_arch {other}"),
    };
    let bpf_target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("big") => "bpfeb",
        _ => "bpfel",
    };

    let mut cmd = Command::new(clang);
    cmd.args(["-g", "-O2", "-Wall", "-target", bpf_target])
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
