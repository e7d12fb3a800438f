//! Sizes (`--quota-backend-bytes 8Gi`) and durations (`--poll-interval 5s`) from flags.
#![no_main]
use etcd_upkeep::units::{format_bytes, parse_duration, parse_size};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_duration(text);
    if let Ok(bytes) = parse_size(text) {
        let _ = format_bytes(bytes);
        // A plain number is that many bytes.
        if let Ok(n) = text.trim().parse::<u64>() {
            assert_eq!(bytes, n, "{text:?}");
        }
    }
});
