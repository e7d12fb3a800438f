//! The guard's memory: refusals by reason and the members' agreement, driven by hand.

use super::*;

fn lines(messages: &[&str]) -> Vec<String> {
    messages.iter().map(|m| m.to_string()).collect()
}

#[test]
fn a_refusal_is_said_once_per_change_not_per_change_of_its_figures() {
    let mut guard = Guard::default();
    let full = |free: u64| lines(&[&format!("m1: {free} MiB free, the copy needs 60 MiB")]);
    assert_eq!(
        guard.record("disk_space", full(10)),
        Refusal::Set { fault: true }
    );
    assert_eq!(guard.record("disk_space", full(10)), Refusal::Unchanged);
    assert_eq!(guard.record("disk_space", full(12)), Refusal::Figures);
    assert_eq!(guard.record("disk_space", vec![]), Refusal::Cleared);
    assert_eq!(guard.record("disk_space", vec![]), Refusal::Unchanged);
    assert!(guard.refusals.is_empty());
}

#[test]
fn a_member_defragmenting_for_someone_else_is_no_fault() {
    let mut guard = Guard::default();
    let busy = lines(&["m2 is defragmenting"]);
    assert_eq!(
        guard.record("defragmenting", busy),
        Refusal::Set { fault: false }
    );
    assert_eq!(
        guard.record("unhealthy", lines(&["m3 does not answer"])),
        Refusal::Set { fault: true }
    );
    assert_eq!(guard.refusals.len(), 2, "each reason kept apart");
}

#[test]
fn the_members_are_compared_once_per_grant_and_a_disagreement_rechecked_each_minute() {
    let mut guard = Guard::default();
    assert!(guard.agreement_due(0.0), "not compared yet");
    guard.consistency = Consistency::Agree;
    assert!(!guard.agreement_due(1e6));
    guard.forget_agreement();
    assert!(guard.agreement_due(0.0), "a new grant compares again");
    guard.consistency = Consistency::Disagree {
        why: "hashes differ".into(),
        checked_at: 100.0,
    };
    guard.forget_agreement();
    assert!(
        guard.disagrees(),
        "a new grant does not forget a disagreement"
    );
    assert!(!guard.agreement_due(159.0));
    assert!(guard.agreement_due(160.0));
    guard.consistency = Consistency::Unproven { checked_at: 100.0 };
    assert!(!guard.disagrees(), "unproven is not a disagreement");
    assert!(guard.agreement_due(160.0));
}

#[test]
fn a_busy_member_is_remembered_until_it_is_free() {
    let mut guard = Guard::default();
    guard.member_busy("m2".into(), "https://10.0.0.2:2379".into(), 42.0);
    assert_eq!(guard.busy.as_ref().map(|b| b.since), Some(42.0));
    guard.member_free();
    assert!(guard.busy.is_none());
    assert!(guard.disk_unknown_first(2));
    assert!(!guard.disk_unknown_first(2), "said once per member");
}
