//! The config file (TOML) and everything resolved from it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use skewscope::config::{self, FileConfig, Overrides};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = FileConfig::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let _ = file.model_config();
    let _ = config::resolve_probe_sampling(None, &file.probes);
    let _ = config::resolve(&Overrides::default(), &file, &|_| None);
});
