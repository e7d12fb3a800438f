//! The tests of `verify.rs`, kept beside it (a file stays short enough to read in one go).
use super::peer_of;
use crate::decide::fixtures::cluster;

#[test]
fn the_peer_is_the_most_caught_up_other_member() {
    let mut obs = cluster(&[(1, 1); 3], 100);
    // m2 was frozen: its revision lags far behind (the case that once looked like corruption).
    obs.members[2].status.as_mut().unwrap().revision = 3;
    obs.members[1].status.as_mut().unwrap().revision = 900;
    assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(2));
    obs.members[1].status = None;
    assert_eq!(peer_of(&obs, 1).map(|p| p.0), Some(3));
    assert_eq!(peer_of(&cluster(&[(1, 1)], 100), 1), None);
    // Never the leader (member 1 here): a follower is compared with the other follower,
    // and with no other follower, with itself from before.
    let obs = cluster(&[(1, 1); 3], 100);
    assert_eq!(peer_of(&obs, 2).map(|p| p.0), Some(3));
    assert_eq!(peer_of(&cluster(&[(1, 1); 2], 100), 2), None);
}
