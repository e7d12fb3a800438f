//! Property tests (the fuzzing that issue 4 asks for "later", within what runs on stable Rust):
//! the key parser never panics and stays consistent on arbitrary keys, and the Space-Saving
//! sketch keeps its guarantees on arbitrary streams.

use std::collections::HashMap;

use etcd_upkeep::diagnose::keys::classify;
use etcd_upkeep::diagnose::topk::SpaceSaving;
use proptest::prelude::*;

proptest! {
    #[test]
    fn key_parser_never_panics_and_keeps_registry_keys_apart(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = String::from_utf8_lossy(&bytes);
        let info = classify(&key);
        if !key.starts_with("/registry/") {
            prop_assert!(info.namespace.is_none() && info.name.is_none());
            prop_assert!(key.starts_with(info.resource.as_str()) || info.resource.is_empty());
        }
    }

    #[test]
    fn registry_keys_round_trip(resource in "[a-z]{1,12}", ns in "[a-z0-9-]{1,12}", name in "[a-z0-9.-]{1,20}") {
        prop_assume!(resource != "minions" && resource != "services");
        let info = classify(&format!("/registry/{resource}/{ns}/{name}"));
        prop_assert_eq!(info.resource, resource);
        prop_assert_eq!(info.namespace.as_deref(), Some(ns.as_str()));
        prop_assert_eq!(info.name.as_deref(), Some(name.as_str()));
    }

    #[test]
    fn space_saving_never_undercounts_and_keeps_heavy_hitters(
        stream in proptest::collection::vec(0u16..300, 1..3000),
        capacity in 1usize..64,
    ) {
        let mut sketch = SpaceSaving::new(capacity);
        let mut exact: HashMap<u16, u64> = HashMap::new();
        for k in &stream {
            sketch.add(&k.to_string(), 1);
            *exact.entry(*k).or_default() += 1;
        }
        prop_assert!(sketch.tracked_keys() <= capacity);
        let total = stream.len() as u64;
        let counted: HashMap<String, (u64, u64)> = sketch.top().into_iter().map(|c| (c.key, (c.count, c.error))).collect();
        prop_assert_eq!(counted.values().map(|(c, _)| *c).sum::<u64>(), total);
        for (key, (count, error)) in &counted {
            let truth = exact[&key.parse::<u16>().unwrap()];
            prop_assert!(*count >= truth, "never under-counts");
            prop_assert!(count - error <= truth, "over-counts by at most error");
        }
        // Any key seen more than total/capacity times is guaranteed to be tracked.
        for (key, truth) in &exact {
            if *truth > total / capacity as u64 {
                prop_assert!(counted.contains_key(&key.to_string()), "heavy hitter {key} ({truth}) lost");
            }
        }
    }
}
