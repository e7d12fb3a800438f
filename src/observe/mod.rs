//! Observe: read the whole cluster once and freeze it into an [`Observation`].
//!
//! Why a value: every decision (is it healthy, which member to defragment, may NOSPACE be
//! disarmed) is a pure function of one consistent snapshot, so decisions are testable without
//! etcd and logs can show exactly what a decision saw. One unreachable member never hides the
//! others: it appears with its error instead of its status.

mod assemble;
pub mod probe;
pub mod progress_notify;
pub mod quota;
mod replies;
mod snapshot;

use std::time::Duration;

use serde::Serialize;

use crate::etcd::{Alarm, AlarmKind, Etcd, MemberStatus};
pub use quota::{Quota, QuotaSource};
pub use snapshot::{Snapshot, backoff, next_snapshot};

use replies::{cluster_lists, configured, discovered, local_quota};

/// What observing needs to know.
#[derive(Debug, Clone)]
pub struct ObserveSettings {
    /// The endpoints given on the command line; the first one is "ours" (the local member).
    pub endpoints: Vec<String>,
    pub discover: bool,
    pub quota_flag: u64,
    pub metrics_url: Option<String>,
    pub dial_timeout: Duration,
}

/// One member as seen in one observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberObservation {
    pub id: u64,
    /// The member name, or its hex ID when unnamed (a member that has not started yet).
    pub name: String,
    /// The endpoint this member was (or would be) asked through.
    pub endpoint: String,
    pub is_learner: bool,
    /// Its Status, when it answered.
    pub status: Option<MemberStatus>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// It did not answer Status because it is defragmenting: its gRPC health service said
    /// NOT_SERVING (`StopGRPCServiceOnDefrag`). Busy, not down.
    pub defragmenting: bool,
}

impl MemberObservation {
    /// It answered Status and follows a leader. A member cut off from the majority still
    /// answers Status from its own state, but knows no leader (raft drops it on its first
    /// campaign): it is out of the quorum as much as one that is down.
    pub fn in_quorum(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.leader != 0)
    }

    /// Why it is out of the quorum (for people), when it is.
    pub fn out_of_quorum(&self) -> Option<String> {
        match &self.status {
            None => Some(self.error.clone().unwrap_or_else(|| "no status".into())),
            Some(s) if s.leader == 0 => {
                Some("it answers but knows no leader: cut off from the majority".into())
            }
            Some(_) => None,
        }
    }

    /// Bytes that a defragmentation would give back.
    pub fn db_size_free(&self) -> Option<u64> {
        self.status
            .as_ref()
            .map(|s| s.db_size.saturating_sub(s.db_size_in_use))
    }

    /// Free share of the db file, 0.0–1.0.
    pub fn fragmentation(&self) -> Option<f64> {
        let status = self.status.as_ref()?;
        if status.db_size == 0 {
            return Some(0.0);
        }
        Some(self.db_size_free()? as f64 / status.db_size as f64)
    }

    /// db size over quota, 0.0–1.0+.
    pub fn quota_usage(&self, quota: u64) -> Option<f64> {
        let status = self.status.as_ref()?;
        (quota > 0).then(|| status.db_size as f64 / quota as f64)
    }
}

/// The cluster at one moment. Immutable: decisions take it by reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    /// When it was taken (seconds since the Unix epoch), for people.
    pub taken_at: f64,
    /// When it was taken on the monotonic clock (`clock::mono_now`), for decisions.
    #[serde(skip)]
    pub seen_at: f64,
    pub members: Vec<MemberObservation>,
    pub alarms: Vec<Alarm>,
    pub quota: Quota,
    /// The raft leader, as reported by the member with the highest term.
    pub leader: Option<u64>,
    pub raft_term: u64,
    /// The member behind the first configured endpoint.
    pub local_member: Option<u64>,
    /// The newest store revision seen.
    pub revision: i64,
    /// The etcd-upkeep instances registered to act, first registered first (None: unreadable).
    pub candidates: Option<Vec<Candidate>>,
    /// Each member's own quota where it is known (members' quotas differ for the whole length
    /// of a rolling quota raise). `quota` is the smallest of them: the one NOSPACE comes from.
    pub member_quotas: std::collections::BTreeMap<u64, Quota>,
    /// Problems that did not prevent the observation (a member down, the metrics URL failing).
    pub warnings: Vec<String>,
}

impl Observation {
    pub fn member(&self, id: u64) -> Option<&MemberObservation> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn has_alarm(&self, kind: AlarmKind) -> bool {
        self.alarms.iter().any(|a| a.kind == kind)
    }

    /// The quota member `id` enforces: its own where known, else the cluster's.
    pub fn quota_of(&self, id: u64) -> u64 {
        self.member_quotas
            .get(&id)
            .map_or(self.quota.bytes, |q| q.bytes)
    }

    pub fn member_name(&self, id: u64) -> String {
        self.member(id)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| format!("{id:x}"))
    }
}

/// A registered etcd-upkeep instance (see `act::candidacy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its lease: the instance's identity while it lives.
    pub lease: i64,
    /// Registration order.
    pub create_revision: i64,
    /// The member behind its first endpoint (0: none, as with a service endpoint).
    pub member: u64,
    /// Host name and process, for people.
    pub instance: String,
    /// Its member's quota, as this sidecar reads it from its member (etcd ≥ 3.6 Status or the
    /// member's own `/metrics`): how the others learn a quota etcd < 3.6 does not report.
    pub quota: Option<u64>,
    /// Free bytes on its member's data volume (`--data-dir`), when it can see it.
    pub disk_free: Option<u64>,
    /// Its member's watch progress notifications, as this instance knows them.
    pub watch_progress: Option<CandidateWatch>,
    /// When this instance last defragmented each member (member ID → Unix seconds): the
    /// cool-down every actor honours, whichever instance did the work.
    pub defragmented: std::collections::BTreeMap<u64, u64>,
}

/// A sidecar's word on its member's progress notifications (for `etcd-upkeep status`, which
/// cannot measure them itself: that takes one interval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CandidateWatch {
    /// Whole seconds (a tenth of jitter is not worth a rewrite).
    pub interval_seconds: u64,
    pub source: crate::decide::watch_history::IntervalSource,
    /// The value to give the member's progress-notify flag, while the history kept is below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_to: Option<String>,
}

/// What a candidate writes about itself (the value of its key). Fields added later are
/// optional, so instances of different versions read each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CandidateInfo {
    /// Hex member ID, "0" when it has no local member.
    pub member: String,
    pub instance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_progress: Option<CandidateWatch>,
    /// Hex member ID → Unix seconds of this instance's last defragmentation of that member,
    /// within the cool-down. A wall clock: other hosts' monotonic clocks mean nothing here, and
    /// seconds of skew mean nothing against a cool-down of an hour.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub defragmented: std::collections::BTreeMap<String, u64>,
}

impl Candidate {
    /// Parses the registered keys, oldest registration first; malformed values are skipped.
    pub fn parse_all(keys: &[crate::etcd::CandidateKey]) -> Vec<Candidate> {
        let mut candidates: Vec<Candidate> = keys
            .iter()
            .filter(|k| k.lease != 0)
            .filter_map(|k| {
                let info: CandidateInfo = serde_json::from_slice(&k.value).ok()?;
                Some(Candidate {
                    lease: k.lease,
                    create_revision: k.create_revision,
                    member: u64::from_str_radix(&info.member, 16).ok()?,
                    instance: info.instance,
                    quota: info.quota,
                    disk_free: info.disk_free,
                    watch_progress: info.watch_progress,
                    defragmented: info
                        .defragmented
                        .iter()
                        .filter_map(|(id, at)| Some((u64::from_str_radix(id, 16).ok()?, *at)))
                        .collect(),
                })
            })
            .collect();
        candidates.sort_by_key(|c| (c.create_revision, c.lease));
        candidates
    }
}

/// Why no observation could be made at all.
#[derive(Debug, Clone)]
pub struct ObserveError(pub String);

impl std::fmt::Display for ObserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ObserveError {}

/// Reads member list, every member's status, the alarms, the actor candidates and the quota.
///
/// `previous` supplies fall-back endpoints: when every configured endpoint is down, the
/// members found last time are asked for the member list.
pub async fn observe(
    etcd: &Etcd,
    settings: &ObserveSettings,
    previous: Option<&Observation>,
) -> Result<Observation, ObserveError> {
    let mut warnings = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    // 1. Status through each configured endpoint: tells us who is behind it.
    let (mut answered, local_member) = configured(etcd, settings, &mut failures).await;
    // 2. Member list, alarms and candidates from any reachable endpoint.
    let mut fallbacks: Vec<String> = answered.iter().map(|(e, _)| e.clone()).collect();
    fallbacks.extend(settings.endpoints.iter().cloned());
    if let Some(previous) = previous {
        fallbacks.extend(previous.members.iter().map(|m| m.endpoint.clone()));
    }
    let cluster = cluster_lists(etcd, &fallbacks, &mut failures, &mut warnings).await?;
    // 3. Status of every discovered member that no configured endpoint covered.
    let failed = if settings.discover {
        discovered(etcd, settings, &cluster.members, &mut answered).await
    } else {
        Vec::new()
    };
    // 4. Put together (pure), then the quota.
    let members = assemble::members(
        &cluster.members,
        &answered,
        &failed,
        settings.discover,
        &mut warnings,
    );
    if members.iter().all(|m| m.status.is_none()) {
        return Err(ObserveError(format!(
            "no member answered Status: {}",
            failures.join("; ")
        )));
    }
    let (leader, raft_term, revision) = assemble::leadership(&members);
    let local_quota = local_quota(&members, local_member, settings, &mut warnings).await;
    let member_quotas = quota::member_quotas(
        &members,
        local_member,
        local_quota,
        cluster.candidates.as_deref(),
    );
    let quota = quota::cluster_quota(&member_quotas, settings.quota_flag);
    Ok(Observation {
        taken_at: crate::clock::wall_now(),
        seen_at: crate::clock::mono_now(),
        members,
        alarms: cluster.alarms,
        quota,
        leader,
        raft_term,
        local_member,
        revision,
        candidates: cluster.candidates,
        member_quotas,
        warnings,
    })
}
