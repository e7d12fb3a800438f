//! The tests of `events.rs`, kept beside it (a file stays short enough to read in one go).
use super::*;

#[test]
fn a_repeat_about_the_same_thing_is_the_same_event_counted_again() {
    let mut c = Correlator::default();
    let Emit::Create { name } = c.note("p", EventReason::HealBlocked, "m2 quota", 0.0) else {
        panic!("first note creates")
    };
    assert_eq!(
        c.note("p", EventReason::HealBlocked, "m2 quota", 10.0),
        Emit::Patch {
            name: name.clone(),
            count: 2
        }
    );
    // Another reason, or another message, is another Event.
    assert!(matches!(
        c.note("p", EventReason::NospaceHealed, "m2 quota", 11.0),
        Emit::Create { .. }
    ));
    assert!(matches!(
        c.note(
            "p",
            EventReason::HealBlocked,
            "live data over the quota",
            12.0
        ),
        Emit::Create { .. }
    ));
    // Expired at the API: forgotten, then made again.
    c.forget(&name);
    assert!(matches!(
        c.note("p", EventReason::HealBlocked, "m2 quota", 13.0),
        Emit::Create { .. }
    ));
}

#[test]
fn a_burst_of_ten_per_reason_then_one_every_five_minutes() {
    let mut c = Correlator::default();
    for i in 0..10 {
        let emit = c.note("p", EventReason::HealBlocked, &format!("x{i}"), 0.0);
        assert_ne!(emit, Emit::Limited, "note {i}");
    }
    assert_eq!(
        c.note("p", EventReason::HealBlocked, "x", 1.0),
        Emit::Limited
    );
    // Another reason has its own bucket: a flapping block never hides the heal.
    assert_ne!(
        c.note("p", EventReason::NospaceHealed, "healed", 1.0),
        Emit::Limited
    );
    assert_ne!(
        c.note("p", EventReason::HealBlocked, "x", 301.0),
        Emit::Limited
    );
    assert_eq!(
        c.note("p", EventReason::HealBlocked, "x", 302.0),
        Emit::Limited
    );
}

#[test]
fn an_old_event_is_not_patched_but_made_again() {
    let mut c = Correlator::default();
    c.note("p", EventReason::SyncLoopSuspected, "loop on w1", 0.0);
    assert!(matches!(
        c.note(
            "p",
            EventReason::SyncLoopSuspected,
            "loop on w1",
            AGGREGATE_SECONDS + 1.0
        ),
        Emit::Create { .. }
    ));
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let long = "é".repeat(600);
    let cut = truncate(&long, 1024);
    assert!(cut.len() <= 1024 + '…'.len_utf8() && cut.ends_with('…'));
    assert_eq!(truncate("short", 1024), "short");
}
