//! The replies one observation is made of: Status through each configured endpoint, the member
//! and alarm lists (and the actor candidates) from any endpoint that answers, Status of the
//! members no endpoint covered, and the local member's quota from its `/metrics`.
//!
//! Why apart from `observe`: these are the calls, each with its fall-backs; `observe` is the
//! order they are made in, and `assemble` puts their answers together without I/O.

use std::time::Duration;

use futures_util::future::join_all;

use crate::etcd::{Alarm, Etcd, FailureKind, MemberInfo, MemberStatus};

use super::{Candidate, MemberObservation, ObserveError, ObserveSettings, assemble, quota};

/// Status through each configured endpoint; the first one's member is "local".
pub(super) async fn configured(
    etcd: &Etcd,
    settings: &ObserveSettings,
    failures: &mut Vec<String>,
) -> (Vec<(String, MemberStatus)>, Option<u64>) {
    let replies = join_all(settings.endpoints.iter().map(|e| etcd.status(e))).await;
    let mut answered = Vec::new();
    let mut local_member = None;
    for (index, (endpoint, result)) in settings.endpoints.iter().zip(replies).enumerate() {
        match result {
            Ok(status) => {
                if index == 0 {
                    local_member = Some(status.member_id);
                }
                answered.push((endpoint.clone(), status));
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    (answered, local_member)
}

/// What one member tells about the whole cluster.
pub(super) struct ClusterLists {
    pub(super) members: Vec<MemberInfo>,
    pub(super) alarms: Vec<Alarm>,
    pub(super) candidates: Option<Vec<Candidate>>,
}

/// MemberList, AlarmList and the candidates, from the first endpoint that answers.
pub(super) async fn cluster_lists(
    etcd: &Etcd,
    endpoints: &[String],
    failures: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<ClusterLists, ObserveError> {
    let mut seen = std::collections::HashSet::new();
    let mut partial: Option<ClusterLists> = None;
    for endpoint in endpoints.iter().filter(|e| seen.insert(e.to_string())) {
        let members = match etcd.member_list(endpoint).await {
            Ok(list) => list,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        // AlarmList goes through raft: a member cut off from the majority answers Status and
        // MemberList from its own state but not this. Try the next endpoint, as for MemberList.
        let alarms = match etcd.alarms(endpoint).await {
            Ok(alarms) => alarms,
            Err(e) => {
                failures.push(format!("the alarm list could not be read: {e}"));
                continue;
            }
        };
        // A linearizable read too: another member may answer it; without any, the lists go
        // out without the candidates (said in the warnings).
        match etcd.candidates(endpoint).await {
            Ok(keys) => {
                return Ok(ClusterLists {
                    members,
                    alarms,
                    candidates: Some(Candidate::parse_all(&keys)),
                });
            }
            Err(e) => {
                failures.push(format!("the actor candidates could not be read: {e}"));
                partial.get_or_insert(ClusterLists {
                    members,
                    alarms,
                    candidates: None,
                });
            }
        }
    }
    if let Some(lists) = partial {
        warnings.push(format!(
            "the actor candidates could not be read: {}",
            failures.join("; ")
        ));
        return Ok(lists);
    }
    failures.dedup();
    Err(ObserveError(format!(
        "no etcd endpoint answered: {}",
        failures.join("; ")
    )))
}

/// Status of the members no configured endpoint covered, through their advertised client URL
/// (same scheme as the configured endpoints); returns the ones that failed.
pub(super) async fn discovered(
    etcd: &Etcd,
    settings: &ObserveSettings,
    members: &[MemberInfo],
    answered: &mut Vec<(String, MemberStatus)>,
) -> Vec<assemble::Unanswered> {
    let scheme = settings.endpoints[0].split("://").next().unwrap_or("https");
    let missing: Vec<(u64, String)> = members
        .iter()
        .filter(|m| !answered.iter().any(|(_, s)| s.member_id == m.id))
        .filter_map(|m| {
            let url = m
                .client_urls
                .iter()
                .find(|u| u.starts_with(scheme))
                .or(m.client_urls.first())?;
            Some((m.id, url.clone()))
        })
        .collect();
    let replies = join_all(missing.iter().map(|(_, url)| etcd.status(url))).await;
    let mut timed_out = Vec::new();
    for ((id, endpoint), result) in missing.into_iter().zip(replies) {
        match result {
            Ok(status) => answered.push((endpoint, status)),
            Err(e) => timed_out.push((id, endpoint, e)),
        }
    }
    // A Status that timed out may be waiting for a defragmentation: with StopGRPCServiceOnDefrag
    // the member's gRPC health says so. That check is in memory on a live member, so it gets a
    // second at most (a frozen member must not double the observation's time).
    let health_timeout = settings.dial_timeout.min(Duration::from_secs(1));
    let defragmenting = join_all(timed_out.iter().map(|(_, endpoint, e)| async move {
        e.kind == FailureKind::Timeout
            && matches!(etcd.serving(endpoint, health_timeout).await, Ok(false))
    }))
    .await;
    timed_out
        .into_iter()
        .zip(defragmenting)
        .map(|((id, endpoint, e), defragmenting)| assemble::Unanswered {
            id,
            endpoint,
            error: e.to_string(),
            defragmenting,
        })
        .collect()
}

/// The local member's quota from its own `/metrics` (`--etcd-metrics-url`), when it does not
/// report one in Status (etcd < 3.6).
pub(super) async fn local_quota(
    members: &[MemberObservation],
    local_member: Option<u64>,
    settings: &ObserveSettings,
    warnings: &mut Vec<String>,
) -> Option<u64> {
    let url = settings.metrics_url.as_ref()?;
    let reported = local_member
        .and_then(|id| members.iter().find(|m| m.id == id))
        .and_then(|m| m.status.as_ref())
        .and_then(quota::reported)
        .is_some();
    if reported {
        return None;
    }
    match quota::fetch_metrics_quota(url, settings.dial_timeout).await {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            warnings.push(format!(
                "quota from metrics URL unavailable, using the flag: {e}"
            ));
            None
        }
    }
}
