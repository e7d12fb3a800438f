//! The `/registry/...` key parser sees every key in etcd, written by any client.
#![no_main]
use etcd_upkeep::diagnose::keys::classify;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|key: &str| {
    let info = classify(key);
    // The object it names is taken from the key itself: never invented.
    if let Some(name) = &info.name {
        assert!(key.contains(name.as_str()), "{key:?} → {info:?}");
    }
    if let Some(namespace) = &info.namespace {
        assert!(key.contains(namespace.as_str()), "{key:?} → {info:?}");
    }
});
