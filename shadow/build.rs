//! Compiles the built-in selectors `bpf/*.bpf.c` into `OUT_DIR` and the test
//! candidates `tests/bpf/*.bpf.c` into `OUT_DIR/fixtures` with clang (see
//! `../probes/build_bpf.rs`, shared with the probes crate).
//!
//! Without clang the build does not fail: every object is written empty and
//! `cfg(skewscope_shadow_no_bpf)` is set, so `cargo check`/clippy work
//! everywhere; built-in policies are then reported as rejected ("not built:
//! clang missing") at run time. A C file that clang rejects fails the build.
//!
//! Environment: `CLANG` overrides the compiler (default `clang`);
//! `SKEWSCOPE_BPF_CFLAGS` appends extra flags (space separated).

use std::fs;

#[path = "../probes/build_bpf.rs"]
mod build_bpf;
use build_bpf::Bpf;

fn main() {
    let clang = build_bpf::find_clang("skewscope_shadow_no_bpf", "shadow selectors");

    let manifest_dir = build_bpf::env_path("CARGO_MANIFEST_DIR");
    let out_dir = build_bpf::env_path("OUT_DIR");
    let bpf_dir = manifest_dir.join("bpf");
    let fixture_dir = manifest_dir.join("tests").join("bpf");
    let fixture_out = out_dir.join("fixtures");
    fs::create_dir_all(&fixture_out).expect("create OUT_DIR/fixtures");

    // Selectors and fixtures alike include the selectors' headers; no
    // -D__TARGET_ARCH_ and the default BPF ISA.
    let bpf = Bpf {
        clang: clang.as_deref(),
        include_dir: &bpf_dir,
        define_target_arch: false,
        v3_objects: &[],
    };
    for (dir, out) in [(&bpf_dir, &out_dir), (&fixture_dir, &fixture_out)] {
        // A missing directory has nothing to build.
        let sources = build_bpf::sources(dir).unwrap_or_default();
        bpf.build(&sources, out);
    }
}
