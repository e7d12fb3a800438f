//! The tests of `controller.rs`, kept beside it (a file stays short enough to read in one go).
use super::*;
use crate::decide::fixtures::{MIB, cluster, space_policy as policy};
use crate::decide::watch_history::{IntervalSource, ProgressInterval};
use std::time::Duration;

/// Drives `controller` with one observation a second for `seconds` (100 revisions a
/// second, the db at `in_use`), as the engine's ticks would; returns the last verdict.
fn drive(
    controller: &mut SpaceController,
    shared: &Shared,
    seconds: i64,
    in_use: u64,
) -> SpaceVerdict {
    let mut last = None;
    for t in 0..seconds {
        let mut obs = cluster(&[(in_use, in_use)], 256 * MIB);
        obs.revision = 1 + t * 100;
        last = controller.verdict(shared, &obs, t as f64, 0);
    }
    last.expect("the controller is on")
}

fn shared() -> Arc<Shared> {
    Shared::new(Duration::from_secs(1), Duration::from_secs(5))
}

#[test]
fn with_room_it_asks_only_for_the_periodic_compaction() {
    let shared = shared();
    let mut c = SpaceController::new(Some(policy()));
    let v = drive(&mut c, &shared, 300, 20 * MIB);
    assert_eq!(v.limit, Limit::Retention);
    assert_eq!(c.compaction(299.0, Some(&v), None, 0), None);
    let asked = c.compaction(299.0, Some(&v), Some(500), 0).unwrap();
    assert_eq!((asked.revision, asked.keeps), (500, None));
    // Published for /metrics and /status.
    assert_eq!(shared.metrics.history_retention_seconds.get(), 1800.0);
    assert!(shared.read().space.verdict.is_some());
}

#[test]
fn near_the_target_it_measures_once_at_the_floor_and_compares_with_the_interval() {
    let shared = shared();
    // etcd's default interval, given.
    let (_tx, interval) = watch::channel(ProgressInterval {
        seconds: 600.0,
        source: IntervalSource::Flag,
        at_least_seconds: 600.0,
    });
    let mut c = SpaceController::new(Some(policy()));
    c.with_progress_notify(interval);
    let v = drive(&mut c, &shared, 300, 180 * MIB);
    assert_eq!(v.limit, Limit::Measuring);
    assert_eq!(v.keep_seconds, 60.0);
    let asked = c.compaction(299.0, Some(&v), Some(10), 0).unwrap();
    // The revision current 60 s before the last tick (t = 239).
    assert_eq!(asked.revision, 1 + 239 * 100);
    assert_eq!(asked.keeps, Some(60.0));
    assert!(asked.why.contains("(measuring)"), "{}", asked.why);
    // Never backwards, never twice.
    assert_eq!(c.compaction(299.0, Some(&v), None, asked.revision), None);
    // /status compares the history kept with the interval: 1 minute is below 10.
    let compared = shared.read().space.watch_history.clone().unwrap();
    assert!(compared.below, "{compared:?}");
    assert_eq!(
        shared.metrics.history_over_watch_progress_interval.get(),
        0.1
    );
}

#[test]
fn off_it_decides_nothing() {
    let shared = shared();
    let mut c = SpaceController::new(None);
    let obs = cluster(&[(200 * MIB, 200 * MIB)], 256 * MIB);
    assert_eq!(c.verdict(&shared, &obs, 0.0, 0), None);
    assert_eq!(c.compaction(0.0, None, Some(7), 0).unwrap().revision, 7);
}
