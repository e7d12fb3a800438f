//! The episode's memory, driven by hand-built observations and a test clock.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::decide::fixtures::{MIB, cluster, with_alarm};
use crate::decide::heal::LiveDataOverQuota;
use crate::etcd::AlarmKind;

fn alarmed() -> Observation {
    with_alarm(
        cluster(&[(64 * MIB, 60 * MIB); 3], 64 * MIB),
        1,
        AlarmKind::NoSpace,
    )
}

fn over_quota(member_id: u64) -> LiveDataOverQuota {
    LiveDataOverQuota {
        member_id,
        member: format!("m{member_id}"),
        in_use: 60 * MIB,
        quota: 64 * MIB,
        others_quota: None,
        threshold: 0.8,
        suggested_quota: 75 * MIB,
        to_delete: 9 * MIB,
    }
}

/// An episode that saw `looks`, each observation `after` seconds after the one before.
fn watched(clock: &Clock, looks: &[(u64, Observation)]) -> NospaceEpisode {
    let mut nospace = NospaceEpisode::default();
    for (after, obs) in looks {
        clock.advance(Duration::from_secs(*after));
        nospace.observe(obs, clock.now());
    }
    nospace
}

#[test]
fn the_outage_counts_from_the_first_sight_of_the_alarm_to_the_disarm() {
    let clock = Clock::manual(1000.0);
    let mut nospace = watched(&clock, &[(0, alarmed()), (5, alarmed())]);
    assert!(nospace.open(clock.now()), "the first heal step opens it");
    assert!(!nospace.open(clock.now()), "and only the first");
    clock.advance(Duration::from_secs(2));
    let disarmed_at = clock.now();
    clock.advance(Duration::from_secs(1)); // the poll that confirms it is not part of it
    let ended = nospace.healed(disarmed_at, clock.now());
    assert_eq!(ended.seconds, 7.0);
    assert!(!nospace.close(), "healed closes it");

    let mut before = alarmed();
    before.seen_at = disarmed_at + 0.5;
    assert!(nospace.is_stale(&before), "taken before our own disarm");
    before.seen_at = clock.now() + 0.1;
    assert!(!nospace.is_stale(&before));
}

#[test]
fn the_first_sight_is_forgotten_when_the_alarm_is_gone() {
    let clock = Clock::manual(0.0);
    let healthy = cluster(&[(MIB, MIB); 3], 64 * MIB);
    let mut nospace = watched(&clock, &[(0, alarmed()), (60, healthy), (60, alarmed())]);
    nospace.open(clock.now());
    let ended = nospace.healed(clock.now() + 3.0, clock.now() + 4.0);
    assert_eq!(ended.seconds, 3.0, "the second outage, not the first");
}

#[test]
fn the_emergency_compaction_is_due_again_only_after_new_revisions_or_a_new_quota() {
    let mut nospace = NospaceEpisode::default();
    let quota = 64 * MIB;
    assert!(!nospace.compaction_due(100, quota), "no episode open");
    nospace.open(0.0);
    assert!(nospace.compaction_due(100, quota));
    nospace.set_defragmented(HashSet::from([1, 2]));
    nospace.compacted(100);
    assert!(nospace.defragmented().is_empty(), "a compaction voids them");
    assert!(!nospace.compaction_due(100, quota));
    assert!(nospace.compaction_due(101, quota));
    nospace.blocked(101, quota, 0.0, Duration::from_secs(1));
    assert!(!nospace.compaction_due(101, quota), "blocked on live data");
    assert!(nospace.compaction_due(101, 2 * quota), "a new quota");
}

#[test]
fn a_block_is_logged_at_doubling_intervals_up_to_five_minutes() {
    let mut nospace = NospaceEpisode::default();
    nospace.open(0.0);
    let poll = Duration::from_secs(1);
    let logged: Vec<u32> = (0..1200)
        .filter(|t| nospace.blocked(500, MIB, f64::from(*t), poll))
        .collect();
    assert_eq!(&logged[..6], &[0, 2, 6, 14, 30, 62]);
    let gaps: Vec<u32> = logged.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g <= 300), "{gaps:?}");
    assert_eq!(*gaps.last().unwrap(), 300);
}

#[test]
fn without_a_known_quota_one_trial_disarm_follows_a_doubling_wait() {
    let clock = Clock::manual(0.0);
    let poll = Duration::from_secs(1);
    let obs = alarmed(); // no member reports its own quota
    let details = over_quota(2);
    let mut nospace = NospaceEpisode::default();
    nospace.open(clock.now());
    assert!(
        !nospace.trial_due(&obs, &details, poll, clock.now()),
        "the block begins: wait"
    );
    clock.advance(Duration::from_secs(3));
    assert!(
        nospace.still_undone(&obs, clock.now()).is_some(),
        "4 polls not over"
    );
    clock.advance(Duration::from_secs(1));
    assert!(
        nospace.still_undone(&obs, clock.now()).is_none(),
        "the wait is over"
    );
    assert!(
        nospace.trial_due(&obs, &details, poll, clock.now()),
        "one trial"
    );
    // That trial was undone too: the next wait is twice as long.
    nospace.hold_off(Undone::of(&obs, 2, "undone".into()), poll, clock.now());
    clock.advance(Duration::from_secs(7));
    assert!(nospace.still_undone(&obs, clock.now()).is_some());
    clock.advance(Duration::from_secs(1));
    assert!(nospace.still_undone(&obs, clock.now()).is_none());
}

#[test]
fn with_a_known_quota_an_undone_disarm_waits_for_a_change_not_for_time() {
    let clock = Clock::manual(0.0);
    let poll = Duration::from_secs(1);
    let mut obs = alarmed();
    obs.member_quotas.insert(
        2,
        crate::observe::Quota {
            bytes: 64 * MIB,
            source: crate::observe::QuotaSource::Flag,
        },
    );
    let mut nospace = NospaceEpisode::default();
    nospace.open(clock.now());
    assert!(
        !nospace.trial_due(&obs, &over_quota(2), poll, clock.now()),
        "known: no trial"
    );
    nospace.hold_off(Undone::of(&obs, 2, "undone".into()), poll, clock.now());
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        nospace.still_undone(&obs, clock.now()).as_deref(),
        Some("undone"),
        "an hour later, nothing changed"
    );
    obs.revision += 10; // objects deleted
    assert!(nospace.still_undone(&obs, clock.now()).is_none());
}

#[test]
fn members_left_out_are_returned_once_as_they_answer() {
    let mut nospace = NospaceEpisode::default();
    nospace.set_left_out(HashSet::from([2, 3]));
    assert!(nospace.any_left_out());
    assert_eq!(nospace.back(|id| id == 2), vec![2]);
    assert!(nospace.back(|id| id == 2).is_empty(), "said once");
    assert_eq!(nospace.back(|_| true), vec![3]);
    assert!(!nospace.any_left_out());
}

#[test]
fn a_dry_run_describes_its_plan_once_per_outage() {
    let mut nospace = NospaceEpisode::default();
    assert!(!nospace.describe(), "no outage open");
    nospace.open(0.0);
    assert!(nospace.describe());
    assert!(!nospace.describe());
    nospace.close();
    nospace.open(10.0);
    assert!(nospace.describe(), "a new outage");
}
