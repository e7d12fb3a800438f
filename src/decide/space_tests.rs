//! The tests of `space.rs`, kept beside it (a file stays short enough to read in one go).
use super::*;

const MIB: u64 = 1 << 20;

use crate::decide::fixtures::space_policy as policy;

fn inputs(in_use: u64, age: Option<f64>, rate: Option<f64>) -> SpaceInputs {
    SpaceInputs {
        quota: 256 * MIB,
        in_use,
        history_age: age,
        history_rate: rate,
    }
}

#[test]
fn the_configured_retention_is_kept_while_it_fits() {
    // 10 KB/s of history for 30 minutes is 18 MB: fits easily under 179 MiB.
    let v = space_verdict(&policy(), &inputs(20 * MIB, Some(1800.0), Some(10_000.0)));
    assert_eq!(v.limit, Limit::Retention);
    assert_eq!(v.keep_seconds, 1800.0);
    assert!(v.pressure < 1.0, "{}", v.pressure);
    assert!(!v.live_over_target);
}

#[test]
fn a_sync_loop_shrinks_history_to_what_fits() {
    // The benchmark's loop: 2 MB/s against 256 MiB at 0.7. 100 s of history kept so far.
    let rate = 2_000_000.0;
    let in_use = 5 * MIB + 200_000_000;
    let v = space_verdict(&policy(), &inputs(in_use, Some(100.0), Some(rate)));
    assert_eq!(v.limit, Limit::Budget);
    assert_eq!(v.live_bytes, Some(5 * MIB));
    // (0.85 × 179.2 MiB − 5 MiB) / 2 MB/s ≈ 77 s.
    assert!((70.0..85.0).contains(&v.keep_seconds), "{}", v.keep_seconds);
    assert!(
        v.pressure > 10.0,
        "30 min of this loop is 3.6 GB: {}",
        v.pressure
    );
    let text = v.explain(&policy());
    assert!(
        text.contains("instead of 30m") && text.contains("/s"),
        "{text}"
    );
}

#[test]
fn below_the_floor_only_when_the_floor_does_not_fit_and_never_below_the_minimum() {
    let p = policy();
    // 5 MB/s: 60 s would be 300 MB > budget; what fits is ~29 s.
    let v = space_verdict(&p, &inputs(10 * MIB, Some(20.0), Some(5_000_000.0)));
    assert_eq!(v.limit, Limit::BelowFloor);
    assert!(v.keep_seconds < p.floor && v.keep_seconds >= p.minimum);
    // 50 MB/s: nothing fits; the minimum is kept, and the log says what to do.
    let v = space_verdict(&p, &inputs(10 * MIB, Some(5.0), Some(50_000_000.0)));
    assert_eq!(v.limit, Limit::Minimum);
    assert_eq!(v.keep_seconds, p.minimum);
    assert!(v.explain(&p).contains("raise the quota"));
}

/// The loop as the engine runs it: every poll the kept history ages by the poll; when the
/// verdict keeps less than that, a compaction cuts it back (never forwards).
fn settle(seen_rate: f64, true_rate: f64) -> (f64, f64) {
    let live = 5.0 * MIB as f64;
    let (mut age, mut peak) = (0.0f64, 0.0f64);
    for step in 0..400 {
        age += 5.0;
        let in_use = live + true_rate * age;
        if step > 100 {
            peak = peak.max(in_use);
        }
        let keep = space_verdict(
            &policy(),
            &inputs(in_use as u64, Some(age), Some(seen_rate)),
        )
        .keep_seconds;
        age = age.min(keep);
    }
    (peak, 0.7 * 256.0 * MIB as f64)
}

#[test]
fn an_error_in_the_measured_rate_is_absorbed_by_the_live_estimate() {
    for (seen, truth) in [(2e6, 2e6), (1e6, 2e6), (0.7e6, 2e6), (3e6, 2e6)] {
        let (peak, target) = settle(seen, truth);
        assert!(
            peak <= target && peak >= target * 0.6,
            "rate seen {seen} (true {truth}): in use peaks at {:.0} MiB, target {:.0} MiB",
            peak / MIB as f64,
            target / MIB as f64
        );
    }
}

#[test]
fn unknown_live_data_means_one_measuring_compaction_not_a_guess() {
    // Near the target, never compacted by us, little new history: the excess is old history
    // of unknown age; compact to the floor to learn.
    let v = space_verdict(&policy(), &inputs(170 * MIB, None, Some(10_000.0)));
    assert_eq!(v.limit, Limit::Measuring);
    assert_eq!(v.keep_seconds, 60.0);
    assert_eq!(v.live_bytes, None);
    assert!(!v.live_over_target, "never blamed on a guess");
    // Far from it: the retention fits whatever the history is.
    let v = space_verdict(&policy(), &inputs(10 * MIB, None, Some(10_000.0)));
    assert_eq!(v.limit, Limit::Retention);
    // A fast loop that just started: the rate decides, not the measurement (the floor's
    // history alone would be 180 MB).
    let v = space_verdict(&policy(), &inputs(6 * MIB, None, Some(3_000_000.0)));
    assert_eq!(v.limit, Limit::BelowFloor);
    assert!(v.keep_seconds < 60.0);
}

#[test]
fn live_data_over_the_target_is_reported_and_history_is_not_tightened_for_it() {
    // Creates only (no history rate), compacted 60 s ago, 190 MiB in use.
    let v = space_verdict(&policy(), &inputs(190 * MIB, Some(60.0), Some(0.0)));
    assert!(v.live_over_target);
    assert_eq!(v.live_bytes, Some(190 * MIB));
    assert_eq!(v.limit, Limit::Retention, "history is not the cause");
    // No churn watch at all: the same.
    let v = space_verdict(&policy(), &inputs(190 * MIB, Some(60.0), None));
    assert!(v.live_over_target);
}

#[test]
fn the_newer_target_wins_and_nothing_goes_backwards() {
    assert_eq!(
        compaction_target(Some(500), Some(300), 100),
        Some(CompactTo::Space(500))
    );
    assert_eq!(
        compaction_target(Some(200), Some(300), 100),
        Some(CompactTo::Periodic(300))
    );
    assert_eq!(
        compaction_target(Some(500), None, 100),
        Some(CompactTo::Space(500))
    );
    assert_eq!(
        compaction_target(None, Some(300), 100),
        Some(CompactTo::Periodic(300))
    );
    assert_eq!(
        compaction_target(Some(90), Some(80), 100),
        None,
        "never backwards"
    );
    assert_eq!(compaction_target(Some(100), None, 100), None, "never twice");
    assert_eq!(compaction_target(None, None, 0), None);
}

#[test]
fn a_file_must_shrink_only_near_the_quota_with_real_space_free() {
    let q = 256 * MIB;
    assert!(must_shrink(230 * MIB, 40 * MIB, q, 0.7));
    assert!(!must_shrink(200 * MIB, 40 * MIB, q, 0.7), "under the line");
    assert!(
        !must_shrink(230 * MIB, 225 * MIB, q, 0.7),
        "nothing to give back"
    );
}

#[test]
fn history_stays_above_the_watch_interval_with_room_and_goes_below_under_pressure() {
    use crate::decide::watch_history::{IntervalSource, ProgressInterval, watch_history};
    // etcd's default 10-minute interval, measured.
    let interval = ProgressInterval {
        seconds: 600.0,
        source: IntervalSource::Measured,
        at_least_seconds: 600.0,
    };
    let compared = |v: &SpaceVerdict| watch_history(v.keep_seconds, interval, 60.0, "3.6.8", false);
    // Room: a slow writer, 30 minutes kept, above the interval.
    let v = space_verdict(&policy(), &inputs(20 * MIB, Some(1800.0), Some(10_000.0)));
    assert!(v.keep_seconds >= 600.0 && !compared(&v).below, "{v:?}");
    // Room for 23 minutes but not 30: what fits, still above the interval.
    let rate = 100_000.0;
    let in_use = 20 * MIB + (rate * 840.0) as u64;
    let v = space_verdict(&policy(), &inputs(in_use, Some(840.0), Some(rate)));
    assert_eq!(v.limit, Limit::Budget);
    assert!(v.keep_seconds >= 750.0 && !compared(&v).below, "{v:?}");
    // Pressure: the 2 MB/s loop fits about a minute and a half; prevention wins, and says so.
    let rate = 2_000_000.0;
    let in_use = 5 * MIB + 200_000_000;
    let v = space_verdict(&policy(), &inputs(in_use, Some(100.0), Some(rate)));
    assert!(v.keep_seconds < 600.0, "{v:?}");
    assert!(v.keep_seconds >= policy().floor, "{v:?}");
    assert!(compared(&v).below, "{v:?}");
}
