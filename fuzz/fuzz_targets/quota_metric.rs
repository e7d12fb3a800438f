//! etcd's `/metrics` text, read for `etcd_server_quota_backend_bytes` (`--quota-metrics-url`).
#![no_main]
use etcd_upkeep::observe::quota::parse_quota_metric;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(quota) = parse_quota_metric(text) {
        assert!(quota > 0, "{text:?}");
    }
});
