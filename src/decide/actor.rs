//! One actor across all instances: which etcd-upkeep may mutate the cluster right now.
//!
//! Why the leader's sidecar: in an HA vCluster every pod runs a sidecar; two of them defragmenting
//! two members at once stalls the whole cluster (measured: 11.5–13.8 s write outage). An etcd
//! lock cannot help when it matters most — during NOSPACE etcd refuses the lease and the write a
//! lock needs. Raft already elects exactly one leader per term, so the instance whose local
//! member is the leader acts (Gardener's pattern), and it re-checks before every mutating step
//! that its member still leads *in the same term* (fencing). A newly elected leader's instance
//! waits a settle period before it stops a member (defragmentation, healing), so a step the
//! previous actor had in flight has finished or shows up in the health gate (a defragmenting
//! member fails linearizable reads). Compaction does not wait: it stops no member, is safe to
//! repeat, and is fenced by the term like every step — so a handover never pauses prevention.

use crate::cli::ActWhen;
use crate::observe::Observation;

/// What an instance remembers about its own leadership.
#[derive(Debug, Clone, Default)]
pub struct ActorMemory {
    /// (raft term, when this instance first saw its member leading in that term).
    leading_since: Option<(u64, f64)>,
}

/// The term an actor was granted: every mutating step must see the same term and leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub leader: u64,
    pub term: u64,
}

/// An instance that acts, and how far.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub fence: Fence,
    /// Why it may not yet stop a member (defragment, heal); None once settled. Compaction may
    /// run meanwhile.
    pub settling: Option<String>,
}

/// Whether this instance acts now. `Err` says why not (for /status and the log).
pub fn actor_verdict(
    obs: &Observation,
    act_when: ActWhen,
    memory: &mut ActorMemory,
    now: f64,
    settle_seconds: f64,
) -> Result<Actor, String> {
    let leader = obs.leader.ok_or("the cluster has no leader")?;
    let fence = Fence {
        leader,
        term: obs.raft_term,
    };
    if act_when == ActWhen::Always {
        return Ok(Actor {
            fence,
            settling: None,
        });
    }
    let local = obs
        .local_member
        .ok_or("the member behind the first endpoint did not answer")?;
    if local != leader {
        memory.leading_since = None;
        return Err(format!(
            "standing by: the local member {} is not the raft leader ({} is; its instance acts)",
            obs.member_name(local),
            obs.member_name(leader)
        ));
    }
    let since = match memory.leading_since {
        Some((term, since)) if term == obs.raft_term => since,
        _ => {
            memory.leading_since = Some((obs.raft_term, now));
            now
        }
    };
    let settling = (now - since < settle_seconds).then(|| {
        format!(
            "the local member became leader in term {} {:.0}s ago; settling for {:.0}s before defragmenting or healing (compaction goes on)",
            obs.raft_term,
            now - since,
            settle_seconds
        )
    });
    Ok(Actor { fence, settling })
}

/// Re-check before a mutating step: the same member still leads in the same term.
pub fn fence_holds(fence: Fence, act_when: ActWhen, obs: &Observation) -> Result<(), String> {
    if act_when == ActWhen::Always {
        return Ok(());
    }
    if obs.leader.is_none()
        || obs.local_member != obs.leader
        || obs.leader != Some(fence.leader)
        || obs.raft_term != fence.term
    {
        return Err(format!(
            "leadership changed (term {} → {}); stopping and leaving the rest to the new leader's instance",
            fence.term, obs.raft_term
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::*;

    #[test]
    fn only_the_leaders_instance_acts_after_settling() {
        let mut obs = cluster(&[(1, 1); 3], 100);
        let mut memory = ActorMemory::default();
        let settling = |memory: &mut ActorMemory, obs: &Observation, now: f64| {
            actor_verdict(obs, ActWhen::Leader, memory, now, 10.0)
                .unwrap()
                .settling
        };
        // A new leader's instance compacts at once but stops no member before settling.
        assert!(
            settling(&mut memory, &obs, 100.0)
                .unwrap()
                .contains("compaction goes on")
        );
        assert!(settling(&mut memory, &obs, 105.0).is_some());
        let actor = actor_verdict(&obs, ActWhen::Leader, &mut memory, 110.0, 10.0).unwrap();
        assert_eq!(actor.fence, Fence { leader: 1, term: 7 });
        assert_eq!(actor.settling, None);

        // A new term restarts the settle period.
        obs.raft_term = 8;
        assert!(settling(&mut memory, &obs, 111.0).is_some());

        obs.local_member = Some(2);
        let err = actor_verdict(&obs, ActWhen::Leader, &mut memory, 200.0, 10.0).unwrap_err();
        assert!(err.contains("standing by"), "{err}");
        assert!(actor_verdict(&obs, ActWhen::Always, &mut memory, 200.0, 10.0).is_ok());
    }

    #[test]
    fn the_fence_breaks_on_any_leadership_change() {
        let fence = Fence { leader: 1, term: 7 };
        let obs = cluster(&[(1, 1); 3], 100);
        assert!(fence_holds(fence, ActWhen::Leader, &obs).is_ok());
        let mut newer = obs.clone();
        newer.raft_term = 8;
        assert!(fence_holds(fence, ActWhen::Leader, &newer).is_err());
        let mut moved = obs.clone();
        moved.leader = Some(2);
        assert!(fence_holds(fence, ActWhen::Leader, &moved).is_err());
        assert!(fence_holds(fence, ActWhen::Always, &moved).is_ok());
        let mut elsewhere = obs;
        elsewhere.local_member = Some(3);
        assert!(fence_holds(fence, ActWhen::Leader, &elsewhere).is_err());
    }
}
