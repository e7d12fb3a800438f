//! Room on disk for a defragmentation.
//!
//! Why: defrag writes a full copy of the live data (`db.tmp.*`) next to the db before renaming
//! it over; a full disk mid-defrag takes the member down. None of the tools we studied check
//! this. We require free space ≥ 1.2 × the db size in use (the copy, plus a margin).
//!
//! Whose free space: the local member's volume when its data dir is mounted here; another
//! member's from what the sidecar beside it publishes in its candidate value. The bytes the copy
//! needs are the live data, not the file: after a compaction the copy holds only what is in use.
//! A member's own `dbSizeInUse` is refreshed only when its backend commits (stale during
//! NOSPACE), so the smallest figure any member reports is taken: every member holds the same data.

use crate::observe::Observation;
use crate::units::format_bytes;

pub const MARGIN: f64 = 1.2;

/// What a defragmentation of any member copies: the smallest bytes in use any voting member
/// reports (stale figures are only ever too large).
pub fn copy_bytes(obs: &Observation) -> u64 {
    obs.members
        .iter()
        .filter(|m| !m.is_learner)
        .filter_map(|m| m.status.as_ref().map(|s| s.db_size_in_use))
        .min()
        .unwrap_or(0)
}

/// Where a member's free disk is known from: its sidecar's candidate value.
pub fn published_free(obs: &Observation, member: u64) -> Option<u64> {
    obs.candidates
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.member == member)
        .find_map(|c| c.disk_free)
}

/// A member whose volume lacks room for the copy a defragmentation writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{member}'s volume has {} free, the copy a defragmentation writes needs {} (1.2 × {} of \
     live data): not defragmenting {member}; free disk space or grow its volume",
    format_bytes(*free),
    format_bytes(*needed),
    format_bytes(*copy)
)]
pub struct NoRoom {
    pub member: String,
    pub free: u64,
    pub needed: u64,
    pub copy: u64,
}

/// Room on `name`'s volume (`free` bytes) for a copy of `copy` bytes; the reason names both.
pub fn room_on(name: &str, free: u64, copy: u64) -> Result<(), NoRoom> {
    let needed = (copy as f64 * MARGIN) as u64;
    if free >= needed {
        return Ok(());
    }
    Err(NoRoom {
        member: name.into(),
        free,
        needed,
        copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    #[test]
    fn the_copy_is_the_live_data_and_another_member_is_judged_by_what_its_sidecar_published() {
        // m2 still reports its pre-compaction 30 MiB in use; m0 was defragmented: 20 MiB.
        let mut obs = cluster(
            &[
                (20 * MIB, 20 * MIB),
                (31 * MIB, 25 * MIB),
                (31 * MIB, 30 * MIB),
            ],
            32 * MIB,
        );
        assert_eq!(copy_bytes(&obs), 20 * MIB);
        assert_eq!(published_free(&obs, 3), None);
        obs.candidates = Some(vec![crate::observe::Candidate {
            lease: 9,
            create_revision: 1,
            member: 3,
            instance: "pod-2".into(),
            quota: None,
            disk_free: Some(12 * MIB),
            watch_progress: None,
            defragmented: Default::default(),
        }]);
        let free = published_free(&obs, 3).unwrap();
        let why = room_on("m2", free, copy_bytes(&obs))
            .unwrap_err()
            .to_string();
        assert!(why.contains("m2's volume has 12.0 MiB free"), "{why}");
        assert!(why.contains("needs 24.0 MiB"), "{why}");
        assert!(room_on("m2", 24 * MIB, 20 * MIB).is_ok());
    }

    #[test]
    fn needs_one_point_two_times_in_use() {
        assert!(room_on("m0", 120, 100).is_ok());
        let no_room = room_on("m0", 119, 100).unwrap_err();
        assert_eq!(
            (no_room.free, no_room.needed, no_room.copy),
            (119, 120, 100)
        );
        assert!(no_room.to_string().contains("1.2 ×"));
    }
}
