//! Kubernetes values (JSON, or the `k8s\0` protobuf envelope) of any key a sync loop rewrites:
//! two revisions decoded and compared field by field.
#![no_main]
use etcd_upkeep::diagnose::fields::{changed_paths, decode, writers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data
        .first()
        .map_or(0, |b| *b as usize % (data.len().max(1)));
    let (before, after) = data.split_at(split);
    let (Ok(before), Ok(after)) = (decode(before), decode(after)) else {
        return;
    };
    let _ = changed_paths(&before, &after);
    let _ = writers(&before, &after);
    // A revision compared with itself has no changed field.
    assert!(changed_paths(&after, &after).is_empty());
});
