//! Compiles `bpf/*.bpf.c` into BPF objects in `OUT_DIR` with clang (see
//! `build_bpf.rs`, shared with the shadow crate).
//!
//! Without clang the build does not fail: every object is written empty and
//! `cfg(skewscope_no_bpf)` is set, so `cargo check`/clippy work everywhere and
//! the loader reports "probe not built: clang missing" at run time. A C file
//! that clang rejects does fail the build.
//!
//! Environment: `CLANG` overrides the compiler (default `clang`);
//! `SKEWSCOPE_BPF_CFLAGS` appends extra flags (space separated).

mod build_bpf;
use build_bpf::Bpf;

/// Objects compiled for BPF ISA v3: they claim shared slots with an atomic
/// compare-and-exchange (BPF_CMPXCHG, Linux 5.12) and need Linux 6.3
/// (sock:sk_data_ready) anyway. The others keep the default ISA.
const V3_OBJECTS: &[&str] = &["rx.bpf.o"];

fn main() {
    let clang = build_bpf::find_clang("skewscope_no_bpf", "BPF probes");

    let manifest_dir = build_bpf::env_path("CARGO_MANIFEST_DIR");
    let out_dir = build_bpf::env_path("OUT_DIR");
    let bpf_dir = manifest_dir.join("bpf");
    let sources = build_bpf::sources(&bpf_dir).expect("read probes/bpf");

    let bpf = Bpf {
        clang: clang.as_deref(),
        include_dir: &bpf_dir,
        define_target_arch: true,
        v3_objects: V3_OBJECTS,
    };
    bpf.build(&sources, &out_dir);
}
