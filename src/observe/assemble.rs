//! Putting one observation together from raw replies — pure, so it is tested without etcd.
//!
//! Why: which endpoint answered for which member, who leads (the member with the highest term
//! says), which revision is newest, and what a member that did not answer is reported as, are
//! facts every decision trusts; they are settled here, without I/O.

use crate::etcd::{MemberInfo, MemberStatus};

use super::MemberObservation;

/// A member whose Status failed: through which endpoint, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub id: u64,
    pub endpoint: String,
    pub error: String,
    /// Its gRPC health said NOT_SERVING: it is defragmenting (`StopGRPCServiceOnDefrag`).
    pub defragmenting: bool,
}

/// One entry per member, in MemberList order, from the statuses that answered (endpoint,
/// status) and the members that failed (id, endpoint, error). Warnings name the silent ones.
pub fn members(
    list: &[MemberInfo],
    answered: &[(String, MemberStatus)],
    failed: &[Unanswered],
    discover: bool,
    warnings: &mut Vec<String>,
) -> Vec<MemberObservation> {
    list.iter()
        .map(|member| {
            let name = if member.name.is_empty() {
                format!("{:x}", member.id)
            } else {
                member.name.clone()
            };
            let status = answered.iter().find(|(_, s)| s.member_id == member.id);
            let failure = failed.iter().find(|f| f.id == member.id);
            let endpoint = status
                .map(|(e, _)| e.clone())
                .or_else(|| failure.map(|f| f.endpoint.clone()))
                .or_else(|| member.client_urls.first().cloned())
                .unwrap_or_default();
            let error = match (status, failure) {
                (Some(_), _) => None,
                (None, Some(f)) if f.defragmenting => Some(format!(
                    "defragmenting: its gRPC health reports NOT_SERVING (StopGRPCServiceOnDefrag), \
                     and Status waits for the defragmentation ({})",
                    f.error
                )),
                (None, Some(f)) => Some(f.error.clone()),
                (None, None) if !discover => Some("not observed (--discover=false)".into()),
                (None, None) => Some("no client URL advertised (member not started?)".into()),
            };
            if let Some(error) = &error {
                warnings.push(format!("member {name}: {error}"));
            }
            MemberObservation {
                id: member.id,
                name,
                endpoint,
                is_learner: member.is_learner,
                status: status.map(|(_, s)| s.clone()),
                error,
                defragmenting: status.is_none() && failure.is_some_and(|f| f.defragmenting),
            }
        })
        .collect()
}

/// (leader, its term, the newest revision): of the members that know a leader, the one with
/// the highest term knows the current one. One that knows none is left out even when its term
/// is higher: a member cut off from the majority campaigns on its own (its term climbs without
/// pre-vote) and would otherwise hide the majority's leader from every instance.
pub fn leadership(members: &[MemberObservation]) -> (Option<u64>, u64, i64) {
    let newest = members
        .iter()
        .filter_map(|m| m.status.as_ref())
        .filter(|s| s.leader != 0)
        .max_by_key(|s| s.raft_term);
    let leader = newest.map(|s| s.leader);
    let term = newest.map(|s| s.raft_term).unwrap_or_else(|| {
        members
            .iter()
            .filter_map(|m| m.status.as_ref().map(|s| s.raft_term))
            .max()
            .unwrap_or(0)
    });
    let revision = members
        .iter()
        .filter_map(|m| m.status.as_ref().map(|s| s.revision))
        .max()
        .unwrap_or(0);
    (leader, term, revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    fn info(id: u64, name: &str) -> MemberInfo {
        MemberInfo {
            id,
            name: name.into(),
            client_urls: vec![format!("https://m{id}:2379")],
            is_learner: false,
        }
    }

    #[test]
    fn every_member_once_in_list_order_with_its_answer_or_its_error() {
        let obs = cluster(&[(1, 1); 2], 100);
        let status = obs.members[1].status.clone().unwrap(); // member 2
        let mut warnings = Vec::new();
        let list = [info(1, "m0"), info(2, "m1"), info(3, "")];
        let answered = [("https://via-service:2379".to_string(), status)];
        let failed = [Unanswered {
            id: 1,
            endpoint: "https://m1:2379".to_string(),
            error: "timed out".to_string(),
            defragmenting: false,
        }];
        let members = members(&list, &answered, &failed, true, &mut warnings);
        assert_eq!(members.len(), 3);
        assert_eq!(members[0].error.as_deref(), Some("timed out"));
        assert_eq!(members[1].endpoint, "https://via-service:2379");
        assert!(members[1].status.is_some() && members[1].error.is_none());
        assert_eq!(
            members[2].name, "3",
            "an unnamed member is named by its hex ID"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn the_highest_term_names_the_leader_and_the_newest_revision_wins() {
        let mut obs = cluster(&[(1, 1); 3], 100);
        obs.members[2].status.as_mut().unwrap().raft_term = 9;
        obs.members[2].status.as_mut().unwrap().leader = 3;
        obs.members[1].status.as_mut().unwrap().revision = 777;
        assert_eq!(leadership(&obs.members), (Some(3), 9, 777));
        // A member cut off from the majority campaigns alone: a higher term, no leader. The
        // majority's leader is still the leader.
        let cut = obs.members[0].status.as_mut().unwrap();
        (cut.raft_term, cut.leader) = (15, 0);
        assert_eq!(leadership(&obs.members), (Some(3), 9, 777));
        obs.members.iter_mut().for_each(|m| m.status = None);
        assert_eq!(leadership(&obs.members), (None, 0, 0));
    }
}
