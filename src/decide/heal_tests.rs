//! The NOSPACE verdict's tests: observations built by hand (`decide::fixtures`).
use super::*;
use crate::decide::fixtures::*;

fn none() -> HashSet<u64> {
    HashSet::new()
}

#[test]
fn below_the_line_but_alarmed_frees_what_it_can_before_disarming() {
    // etcd enforces 32 MiB; the daemon assumes 2 GiB. Both members look far below the line.
    let obs = nospace(&[(32 * MIB, MIB), (32 * MIB, 32 * MIB)], 2 << 30);
    assert!(matches!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment { members } if members.len() == 2
    ));
    // Once they are defragmented: disarm.
    let done: HashSet<u64> = obs.members.iter().map(|m| m.id).collect();
    assert!(matches!(
        heal_verdict(&obs, 0.9, &done),
        HealVerdict::Disarm { .. }
    ));
}

fn nospace(sizes: &[(u64, u64)], quota: u64) -> Observation {
    with_alarm(cluster(sizes, quota), 2, AlarmKind::NoSpace)
}

#[test]
fn no_alarm_no_heal() {
    assert_eq!(
        heal_verdict(&cluster(&[(1, 1)], 16 * MIB), 0.9, &none()),
        HealVerdict::NoAlarm
    );
}

#[test]
fn disarm_only_when_every_member_is_below_the_line() {
    // Below the line everywhere: disarm — once every member was defragmented since the
    // compaction (the one at 14 MiB holds 13 MiB of free pages).
    let obs = nospace(&[(MIB, MIB), (2 * MIB, MIB), (14 * MIB, MIB)], 16 * MIB);
    assert_eq!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment {
            members: vec![1, 2, 3]
        }
    );
    let freed: HashSet<u64> = [1, 2, 3].into();
    assert_eq!(
        heal_verdict(&obs, 0.9, &freed),
        HealVerdict::Disarm {
            alarmed_members: vec![2]
        }
    );
    // One member at 15 MiB > 14.4 MiB: defragment it (and any other reclaimable one) first.
    let obs = nospace(
        &[(MIB, MIB), (2 * MIB, 3 * MIB / 2), (15 * MIB, MIB)],
        16 * MIB,
    );
    assert_eq!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment { members: vec![3] }
    );
    // It shrank below the line; m1's 8 MiB file reports 8 MiB in use (stale: not yet
    // committed since the compaction), yet it is far larger than the freshly defragmented m2:
    // defragmented too before the disarm. m0, as small as m2, needs nothing.
    let mut shrunk = obs.clone();
    shrunk.members[2].status.as_mut().unwrap().db_size = MIB;
    let m1 = shrunk.members[1].status.as_mut().unwrap();
    (m1.db_size, m1.db_size_in_use) = (8 * MIB, 8 * MIB);
    assert_eq!(
        heal_verdict(&shrunk, 0.9, &HashSet::from([3])),
        HealVerdict::Defragment { members: vec![2] }
    );
    // Defragmented by another instance (as small as the truth): disarm, no ping-pong.
    shrunk.members[1].status.as_mut().unwrap().db_size = MIB;
    assert!(matches!(
        heal_verdict(&shrunk, 0.9, &HashSet::from([3])),
        HealVerdict::Disarm { .. }
    ));
}

#[test]
fn each_member_is_judged_against_its_own_quota() {
    use crate::observe::{Quota, QuotaSource};
    // A rolling raise: m0 and m1 have 128 MiB, m2 still 64 MiB; 70 MiB of live data.
    let mut obs = nospace(&[(70 * MIB, 70 * MIB); 3], 64 * MIB);
    for (id, quota) in [(1, 128 * MIB), (2, 128 * MIB), (3, 64 * MIB)] {
        obs.member_quotas.insert(
            id,
            Quota {
                bytes: quota,
                source: QuotaSource::Etcd,
            },
        );
    }
    let done = HashSet::from([1, 2, 3]);
    let HealVerdict::Blocked(blocked) = heal_verdict(&obs, 0.9, &done) else {
        panic!("{:?}", heal_verdict(&obs, 0.9, &done))
    };
    assert_eq!((blocked.member.as_str(), blocked.quota), ("m2", 64 * MIB));
    assert_eq!(blocked.others_quota, Some(128 * MIB));
    let text = blocked.to_string();
    assert!(
        text.contains("exceeds m2's quota of 64.0 MiB (the other members have 128.0 MiB)"),
        "{text}"
    );
    assert!(text.contains("finish the quota raise on m2"), "{text}");
    // m2 raised too: disarm.
    obs.member_quotas.get_mut(&3).unwrap().bytes = 128 * MIB;
    assert!(matches!(
        heal_verdict(&obs, 0.9, &done),
        HealVerdict::Disarm { .. }
    ));
}

#[test]
fn stale_in_use_is_not_trusted_before_a_defrag() {
    // A follower reports its pre-compaction "in use" until it commits again: defragment it.
    let obs = nospace(&[(MIB, MIB), (36 * MIB, 34 * MIB)], 32 * MIB);
    assert_eq!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment { members: vec![2] }
    );
}

#[test]
fn live_data_over_the_line_blocks_with_numbers() {
    let obs = nospace(&[(34 * MIB, 33 * MIB), (33 * MIB, 31 * MIB)], 32 * MIB);
    let HealVerdict::Blocked(blocked) = heal_verdict(&obs, 0.9, &HashSet::from([1, 2])) else {
        panic!()
    };
    assert_eq!(blocked.member, "m0");
    assert_eq!(blocked.in_use, 34 * MIB); // a defragmented file holds only live data
    assert!(blocked.suggested_quota >= 32 * MIB * 5 / 4);
    assert_eq!(blocked.suggested_quota % (64 << 20), 0);
    let text = blocked.to_string();
    assert!(text.contains("--quota-backend-bytes"), "{text}");
    assert!(text.contains("34.0 MiB in use"), "{text}");
}

#[test]
fn the_dry_run_projection_leads_to_the_same_disarm_as_the_real_heal() {
    let obs = nospace(&[(34 * MIB, 33 * MIB), (33 * MIB, 31 * MIB)], 32 * MIB);
    let done = HashSet::from([1, 2]);
    let projected = project_defragmented(&obs, &done, MIB);
    assert_eq!(projected.members[0].status.as_ref().unwrap().db_size, MIB);
    assert_eq!(
        heal_verdict(&projected, 0.9, &done),
        HealVerdict::Disarm {
            alarmed_members: vec![2]
        }
    );
    // Live data really over the line: the projection blocks too, with the same numbers.
    let projected = project_defragmented(&obs, &done, 31 * MIB);
    assert!(matches!(
        heal_verdict(&projected, 0.9, &done),
        HealVerdict::Blocked(_)
    ));
}

#[test]
fn a_file_left_behind_over_the_line_is_found_without_an_alarm() {
    // m2 came back with its 31 MiB file; the others hold 2 MiB after the heal.
    let obs = cluster(
        &[(2 * MIB, 2 * MIB), (2 * MIB, 2 * MIB), (31 * MIB, 30 * MIB)],
        32 * MIB,
    );
    assert_eq!(files_left_behind(&obs, 0.9), vec![3]);
    // Live data over the line everywhere: defragmenting would free nothing.
    let obs = cluster(&[(31 * MIB, 30 * MIB); 3], 32 * MIB);
    assert!(files_left_behind(&obs, 0.9).is_empty());
    // Alone, there is nothing to compare with.
    assert!(files_left_behind(&cluster(&[(31 * MIB, 30 * MIB)], 32 * MIB), 0.9).is_empty());
    // Below the line: nothing yet.
    let obs = cluster(&[(2 * MIB, 2 * MIB), (20 * MIB, 20 * MIB)], 32 * MIB);
    assert!(files_left_behind(&obs, 0.9).is_empty());
}

#[test]
fn without_a_quorum_of_answering_members_wait() {
    // Two members, one silent: one of two is no quorum.
    let mut obs = nospace(&[(MIB, MIB), (MIB, MIB)], 16 * MIB);
    obs.members[1].status = None;
    let HealVerdict::Wait { why } = heal_verdict(&obs, 0.9, &none()) else {
        panic!()
    };
    assert!(why.contains("only 1 of 2"), "{why}");
    // Three members, two silent.
    let mut obs = nospace(&[(MIB, MIB); 3], 16 * MIB);
    obs.members[0].status = None;
    obs.members[2].status = None;
    assert!(matches!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Wait { .. }
    ));
}

#[test]
fn a_member_down_heals_through_the_quorum() {
    // m2 (id 3) is down with its old, large file; m0 and m1 answer: a quorum of three.
    let mut obs = nospace(
        &[(15 * MIB, MIB), (15 * MIB, MIB), (15 * MIB, MIB)],
        16 * MIB,
    );
    obs.members[2].status = None;
    obs.members[2].error = Some("connection refused".into());
    assert_eq!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment {
            members: vec![1, 2]
        }
    );
    // The two that answer are defragmented and below the line: disarm, though m2 was not
    // verified (it is named for the log and /status).
    let mut healed = obs.clone();
    for m in healed.members.iter_mut().take(2) {
        let status = m.status.as_mut().unwrap();
        status.db_size = MIB;
    }
    assert_eq!(
        heal_verdict(&healed, 0.9, &HashSet::from([1, 2])),
        HealVerdict::Disarm {
            alarmed_members: vec![2]
        }
    );
    assert_eq!(
        unverified_members(&healed),
        vec!["m2 (connection refused)".to_string()]
    );
    // A member that answers Status but knows no leader is cut off from the majority: out of
    // the quorum like one that is down, and named.
    let mut cut = nospace(&[(15 * MIB, MIB); 3], 16 * MIB);
    cut.members[2].status.as_mut().unwrap().leader = 0;
    assert_eq!(
        heal_verdict(&cut, 0.9, &none()),
        HealVerdict::Defragment {
            members: vec![1, 2]
        }
    );
    assert!(unverified_members(&cut)[0].contains("knows no leader"));
    // Learners are not voting members: they neither count for the quorum nor block it.
    let mut obs = nospace(&[(MIB, MIB), (MIB, MIB), (MIB, MIB)], 16 * MIB);
    obs.members[2].is_learner = true;
    obs.members[2].status = None;
    assert!(unverified_members(&obs).is_empty());
    assert!(matches!(
        heal_verdict(&obs, 0.9, &none()),
        HealVerdict::Defragment { .. }
    ));
}

#[test]
fn a_learner_is_disarmed_only_once_its_size_was_checked() {
    // m2 (id 3) is a learner and raised NOSPACE; the voting members are small and defragmented.
    let mut obs = with_alarm(
        cluster(&[(MIB, MIB), (MIB, MIB), (MIB, MIB)], 16 * MIB),
        3,
        AlarmKind::NoSpace,
    );
    obs.members[2].is_learner = true;
    obs.members[2].status = None;
    let done = HashSet::from([1, 2]);
    let HealVerdict::Wait { why } = heal_verdict(&obs, 0.9, &done) else {
        panic!("{:?}", heal_verdict(&obs, 0.9, &done))
    };
    assert!(
        why.contains("learner m2") && why.contains("could not be checked"),
        "{why}"
    );
    obs.members[2].status = cluster(&[(15 * MIB, MIB)], 16 * MIB).members[0]
        .status
        .clone();
    assert!(matches!(
        heal_verdict(&obs, 0.9, &done),
        HealVerdict::Wait { .. }
    ));
    obs.members[2].status.as_mut().unwrap().db_size = MIB;
    assert_eq!(
        heal_verdict(&obs, 0.9, &done),
        HealVerdict::Disarm {
            alarmed_members: vec![3]
        }
    );
}
