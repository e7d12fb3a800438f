//! `--defrag-schedule`: our field checks, then the scheduler's own parser.
#![no_main]
use etcd_upkeep::config::cron_with_seconds;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|expr: &str| {
    match cron_with_seconds(expr) {
        // What passes our checks is the 6-field form the scheduler accepted.
        Ok(six) => assert_eq!(six.split_whitespace().count(), 6, "{expr:?} → {six:?}"),
        Err(e) => assert!(e.0.starts_with("--defrag-schedule "), "{}", e.0),
    }
});
