//! Which members are in their cool-down between rule-driven defragmentations.
//!
//! Why more than this instance's memory: a rule pass that reaches the leader hands leadership,
//! and with it the acting role, to another instance. Its memory of the pass went with the old
//! actor, so on its memory alone the new actor defragments the same members again as soon as the
//! rule matches: every pass makes a new actor, and `--min-defrag-interval` would hold only while
//! no pass reaches the leader. Each instance therefore publishes when it defragmented which
//! member (with its candidacy), and every actor honours what any candidate published.
//!
//! Two clocks: this instance's own record is monotonic (a stepped wall clock cannot end a
//! cool-down early here); what other instances publish is wall-clock Unix seconds, the only
//! time two hosts share. A published time in the future (skew, a clock stepped back) keeps the
//! member cooling: the safe side.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::observe::Observation;

/// Members defragmented within `cool_down`: by this instance (`own`, monotonic seconds against
/// `now`), or by any registered candidate (published, against the observation's wall clock).
pub fn cooling_down(
    own: &HashMap<u64, f64>,
    now: f64,
    obs: &Observation,
    cool_down: Duration,
) -> HashSet<u64> {
    let cool_down = cool_down.as_secs_f64();
    let mine = own
        .iter()
        .filter(|(_, at)| now - **at < cool_down)
        .map(|(id, _)| *id);
    let published = obs
        .candidates
        .iter()
        .flatten()
        .flat_map(|c| c.defragmented.iter())
        .filter(|(_, at)| obs.taken_at - (**at as f64) < cool_down)
        .map(|(id, _)| *id);
    mine.chain(published).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::fixtures::{MIB, cluster};
    use crate::observe::Candidate;

    const HOUR: Duration = Duration::from_secs(3600);

    fn candidate(lease: i64, defragmented: &[(u64, u64)]) -> Candidate {
        Candidate {
            lease,
            create_revision: lease,
            member: lease as u64,
            instance: format!("pod-{lease}"),
            quota: None,
            disk_free: None,
            watch_progress: None,
            defragmented: defragmented.iter().copied().collect(),
        }
    }

    /// Three members at wall time 10 000 s, with `candidates`.
    fn observed(candidates: Vec<Candidate>) -> Observation {
        let mut obs = cluster(&[(40 * MIB, 20 * MIB); 3], 64 * MIB);
        obs.taken_at = 10_000.0;
        obs.candidates = Some(candidates);
        obs
    }

    #[test]
    fn a_member_another_instance_defragmented_within_the_cool_down_is_cooling() {
        // Instance 1 (the old actor) defragmented members 2 and 3 ten seconds ago and member 1
        // two hours ago; this instance (the new actor) remembers nothing.
        let obs = observed(vec![candidate(1, &[(1, 2_800), (2, 9_990), (3, 9_990)])]);
        let cooling = cooling_down(&HashMap::new(), 50.0, &obs, HOUR);
        assert_eq!(cooling, HashSet::from([2, 3]));
    }

    #[test]
    fn this_instances_own_record_counts_on_its_monotonic_clock() {
        let own = HashMap::from([(1, 100.0), (2, 10.0)]);
        // 3 600 s after member 2's defragmentation its cool-down is over; member 1's is not.
        let cooling = cooling_down(&own, 3_610.0, &observed(vec![]), HOUR);
        assert_eq!(cooling, HashSet::from([1]));
    }

    #[test]
    fn a_time_published_ahead_of_this_clock_keeps_the_member_cooling() {
        // Clock skew between hosts, or a clock stepped back: never an early end.
        let obs = observed(vec![candidate(2, &[(3, 10_500)])]);
        assert_eq!(
            cooling_down(&HashMap::new(), 0.0, &obs, HOUR),
            HashSet::from([3])
        );
    }

    #[test]
    fn no_candidates_read_leaves_only_the_own_record() {
        let mut obs = observed(vec![]);
        obs.candidates = None;
        let own = HashMap::from([(2, 0.0)]);
        assert_eq!(cooling_down(&own, 1.0, &obs, HOUR), HashSet::from([2]));
    }
}
