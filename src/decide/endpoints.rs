//! Which member's endpoint a step goes through.
//!
//! Why one place: compaction, the disarm and the daemon's own reads each used to pick their
//! endpoint themselves; a cluster-wide mutation goes through the leader (raft would forward
//! it, the leader saves a hop), a read of this instance's own through its local member.

use crate::observe::Observation;

/// The endpoint a cluster-wide mutation (compaction, disarm) goes through: the leader's, else
/// the first member that answered — raft forwards either way, the leader saves a hop.
pub fn mutation_endpoint(obs: &Observation) -> Option<String> {
    obs.leader
        .and_then(|l| obs.member(l))
        .or_else(|| obs.members.iter().find(|m| m.status.is_some()))
        .map(|m| m.endpoint.clone())
}

/// The endpoint for reads of this instance's own (a watch, a scan): the local member's, else
/// the first member that answered.
pub fn local_endpoint(obs: &Observation) -> Option<String> {
    obs.local_member
        .and_then(|id| obs.member(id))
        .filter(|m| m.status.is_some())
        .or_else(|| obs.members.iter().find(|m| m.status.is_some()))
        .map(|m| m.endpoint.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    #[test]
    fn mutations_go_through_the_leader_reads_through_the_local_member() {
        let mut obs = cluster(&[(1, 1); 3], 100);
        obs.leader = Some(2);
        obs.local_member = Some(3);
        assert_eq!(mutation_endpoint(&obs).unwrap(), "https://10.0.0.2:2379");
        assert_eq!(local_endpoint(&obs).unwrap(), "https://10.0.0.3:2379");
        obs.leader = None;
        obs.members[2].status = None;
        assert_eq!(mutation_endpoint(&obs).unwrap(), "https://10.0.0.1:2379");
        assert_eq!(local_endpoint(&obs).unwrap(), "https://10.0.0.1:2379");
    }
}
