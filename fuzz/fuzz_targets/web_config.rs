//! `--web-config-file`: the exporter-toolkit YAML (TLS, client CA, bcrypt users).
#![no_main]
use etcd_upkeep::report::web::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Relative certificate paths resolve under an empty folder: nothing real is read.
    let _ = parse(
        text,
        std::path::Path::new("/nonexistent-etcd-upkeep-fuzz"),
        false,
    );
});
