//! A baseline file (agent/src/baseline/file.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = skewscope::baseline::file::parse(data, std::path::Path::new("fuzz.json"));
});
