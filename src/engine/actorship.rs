//! Whether this instance acts, tracked across observations: a component with one step.
//!
//! Why a component: who acts is decided by `decide::actor` from one observation, but three
//! things need memory across observations — since when this instance holds its grant (a new
//! actor settles before it stops a member), the grant it last acted under (a new grant compares
//! the members' data before its first step), and what it last said about its role (said once
//! per change, not once per poll). They live here, not in the engine's fields and not read back
//! from the report state; the engine publishes the [`Role`] that `step` returns.

use tokio::sync::watch;

use crate::decide::actor::{ActWhen, Actor, ActorMemory, Basis, Fence, actor_verdict};
use crate::observe::Observation;

#[derive(Default)]
pub struct Actorship {
    memory: ActorMemory,
    /// The grant this instance last acted under; None while it stands by.
    last_fence: Option<Fence>,
    /// Where the candidacy task publishes this instance's lease (None: not registered).
    identity: Option<watch::Receiver<Option<i64>>>,
    /// What was last said about the role: (acts, reason).
    said: Option<(bool, String)>,
}

/// This instance's role in one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Some when this instance acts (it may still be settling).
    pub actor: Option<Actor>,
    /// Why it acts or stands by, for `/status` and the log.
    pub reason: String,
    /// It acts under a grant other than the last one (another leader, term or basis; or it
    /// stood by before): the members' agreement is proven again before the first step.
    pub new_grant: bool,
    /// Worth a log line: this instance became the actor, or it stands by for another reason
    /// than it last said (an actor's reason moving, e.g. the settle's seconds, is not).
    pub changed: bool,
}

impl Actorship {
    /// Reads this instance's lease from the candidacy task.
    pub fn with_identity(mut self, me: watch::Receiver<Option<i64>>) -> Actorship {
        self.identity = Some(me);
        self
    }

    /// This instance's lease while it is a registered candidate.
    fn me(&self) -> Option<i64> {
        self.identity.as_ref().and_then(|me| *me.borrow())
    }

    /// The role `obs` gives this instance at `now` (monotonic seconds).
    pub fn step(
        &mut self,
        obs: &Observation,
        act_when: ActWhen,
        now: f64,
        settle_seconds: f64,
    ) -> Role {
        let verdict = actor_verdict(
            obs,
            act_when,
            self.me(),
            &mut self.memory,
            now,
            settle_seconds,
        );
        let (actor, reason) = match verdict {
            Ok(actor) => {
                let reason = match &actor.settling {
                    Some(settling) => settling.why.clone(),
                    None => basis_reason(&actor.fence),
                };
                (Some(actor), reason)
            }
            Err(why) => (None, why.to_string()),
        };
        // A new lease of this same instance is not a new grant (a renewal that failed through a
        // busy member): otherwise every lost renewal means another hash of every member.
        let grant = |f: &Fence| (f.basis, f.leader, f.term);
        let fence = actor.as_ref().map(|a| a.fence);
        let new_grant =
            fence.is_some() && self.last_fence.map(|f| grant(&f)) != fence.map(|f| grant(&f));
        self.last_fence = fence;
        let changed = match (&self.said, actor.is_some()) {
            (Some((true, _)), true) => false,
            (Some((false, said)), false) => *said != reason,
            _ => true,
        };
        self.said = Some((actor.is_some(), reason.clone()));
        Role {
            actor,
            reason,
            new_grant,
            changed,
        }
    }
}

/// Why a settled actor acts, for people.
fn basis_reason(fence: &Fence) -> String {
    match fence.basis {
        Basis::BesideLeader => format!("the local member leads in term {}", fence.term),
        Basis::FirstRegistered => "the first registered candidate (no live candidate beside the leader, or --act-when=elected)".into(),
        Basis::Alone => "the only instance".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::cluster;

    /// Three members, member 1 (the local one) leading in `term`, nobody registered.
    fn observed(term: u64) -> Observation {
        let mut obs = cluster(&[(1, 1); 3], 100);
        obs.raft_term = term;
        for m in &mut obs.members {
            if let Some(s) = m.status.as_mut() {
                s.raft_term = term;
            }
        }
        obs
    }

    #[test]
    fn beside_the_leader_it_settles_then_acts_and_the_grant_is_new_once() {
        let mut actorship = Actorship::default();
        let first = actorship.step(&observed(7), ActWhen::Leader, 100.0, 10.0);
        let actor = first
            .actor
            .clone()
            .expect("beside the leader, nobody registered: acts");
        assert!(actor.settling.is_some(), "a new actor settles first");
        assert!(first.new_grant && first.changed);
        assert!(
            first.reason.contains("settling for 10s"),
            "{}",
            first.reason
        );

        // Still settling 5 s later: the same grant; the reason's seconds moved, not worth a line.
        let later = actorship.step(&observed(7), ActWhen::Leader, 105.0, 10.0);
        assert!(later.actor.unwrap().settling.is_some());
        assert!(!later.new_grant && !later.changed);

        // Settled: acts, /status says why, and the grant is still the same.
        let settled = actorship.step(&observed(7), ActWhen::Leader, 111.0, 10.0);
        assert_eq!(settled.actor.as_ref().unwrap().settling, None);
        assert_eq!(settled.reason, "the local member leads in term 7");
        assert!(
            !settled.changed && !settled.new_grant,
            "said when it became the actor"
        );
    }

    #[test]
    fn a_new_term_is_a_new_grant_and_standing_by_forgets_the_last_one() {
        let mut actorship = Actorship::default();
        actorship.step(&observed(7), ActWhen::Leader, 100.0, 0.0);
        let next_term = actorship.step(&observed(8), ActWhen::Leader, 101.0, 0.0);
        assert!(
            next_term.new_grant,
            "another term: the members are compared again"
        );

        // Another member leads: this instance stands by, and says why.
        let mut elsewhere = observed(9);
        elsewhere.leader = Some(2);
        let standing = actorship.step(&elsewhere, ActWhen::Leader, 102.0, 0.0);
        assert_eq!(standing.actor, None);
        assert!(standing.changed);
        assert!(
            standing.reason.contains("not the raft leader"),
            "{}",
            standing.reason
        );
        let still = actorship.step(&elsewhere, ActWhen::Leader, 103.0, 0.0);
        assert!(!still.changed, "the same reason to stand by is said once");

        // Back to leading in the same term as before it stood by: still a new grant.
        let back = actorship.step(&observed(8), ActWhen::Leader, 104.0, 0.0);
        assert!(back.actor.is_some() && back.new_grant);
    }

    #[test]
    fn the_only_instance_acts_at_once() {
        let mut actorship = Actorship::default();
        let role = actorship.step(&observed(3), ActWhen::Always, 0.0, 10.0);
        assert_eq!(role.actor.unwrap().settling, None, "always: no settle");
        assert_eq!(role.reason, "the only instance");
    }
}
