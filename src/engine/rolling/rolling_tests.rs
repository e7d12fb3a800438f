//! The rolling pass's memory: the cool-down on a test clock, and the schedule's window.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::decide::fixtures::{MIB, cluster};

#[test]
fn a_defragmented_member_cools_down_for_the_interval_on_the_engines_clock() {
    let clock = Clock::manual(500.0);
    let obs = cluster(&[(64 * MIB, 10 * MIB); 3], 128 * MIB);
    let hour = Duration::from_secs(3600);
    let mut rolling = Rolling::new(false);
    rolling.defragmented(2, clock.now());
    assert_eq!(rolling.cooling(&obs, clock.now(), hour), HashSet::from([2]));
    clock.advance(Duration::from_secs(3599));
    assert_eq!(rolling.cooling(&obs, clock.now(), hour), HashSet::from([2]));
    clock.advance(Duration::from_secs(1));
    assert!(rolling.cooling(&obs, clock.now(), hour).is_empty());
}

#[test]
fn a_scheduled_window_admits_one_pass() {
    let always = Rolling::new(false);
    assert!(always.window_open(), "no schedule: any time");
    let rolling = Rolling::new(true);
    assert!(
        !rolling.window_open(),
        "closed until the first scheduled time"
    );
    rolling.window_handle().store(true, Ordering::SeqCst); // what the cron job does
    assert!(rolling.window_open());
    rolling.close_window();
    assert!(!rolling.window_open());
}

#[test]
fn a_pass_stopped_the_same_way_again_is_not_said_again() {
    let mut rolling = Rolling::new(false);
    let stopped = |free: u64| RollOutcome::Stopped(format!("m1: {free} MiB free"));
    assert!(rolling.said.say(&stopped(10)));
    assert!(!rolling.said.say(&stopped(12)), "same stop, other figures");
    assert!(rolling.said.say(&RollOutcome::Completed));
    assert!(
        rolling.said.say(&stopped(12)),
        "said again after a completed pass"
    );
}
