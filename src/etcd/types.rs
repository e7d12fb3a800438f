//! What etcd answers, as plain data: members, statuses, alarms, hashes.

/// A member as MemberList reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// One member's Status answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemberStatus {
    /// The member that answered (from the response header).
    pub member_id: u64,
    pub version: String,
    pub db_size: u64,
    pub db_size_in_use: u64,
    /// Raft leader as this member sees it (0: none).
    pub leader: u64,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    pub is_learner: bool,
    pub errors: Vec<String>,
    /// The configured quota; only etcd ≥ 3.6 reports it (0 otherwise, and 0 on 3.6.0–3.6.5 when
    /// `--quota-backend-bytes` is unset: see `observe::quota::reported`).
    pub db_size_quota: u64,
    /// A downgrade is enabled (etcd ≥ 3.6 `Status.downgradeInfo`): its target version.
    pub downgrade_target: Option<String>,
    /// The store revision at the time of the answer.
    pub revision: i64,
}

impl MemberStatus {
    /// A plain answer of member 1 (version, quota as given), for unit tests.
    #[cfg(test)]
    pub fn for_tests(version: &str, db_size_quota: u64) -> MemberStatus {
        MemberStatus {
            member_id: 1,
            version: version.into(),
            db_size: 0,
            db_size_in_use: 0,
            leader: 1,
            raft_term: 2,
            raft_index: 3,
            raft_applied_index: 3,
            is_learner: false,
            errors: vec![],
            db_size_quota,
            downgrade_target: None,
            revision: 1,
        }
    }

    /// Whether this member runs etcd `major.minor` or newer (from its reported version).
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (ma, mi) >= (major, minor)
    }

    /// The alarm kinds this member lists in its Status errors (`memberID:… alarm:NOSPACE`), sorted
    /// and de-duplicated. Status is answered locally (AlarmList goes through raft), and every
    /// member holds every alarm, so one member's Status is a cheap, complete alarm check.
    pub fn listed_alarms(&self) -> Vec<AlarmKind> {
        let mut kinds: Vec<AlarmKind> = self
            .errors
            .iter()
            .filter_map(|e| e.split("alarm:").nth(1))
            .map(|kind| match kind.trim() {
                "NOSPACE" => AlarmKind::NoSpace,
                "CORRUPT" => AlarmKind::Corrupt,
                _ => AlarmKind::Unknown,
            })
            .collect();
        kinds.sort_by_key(|k| k.as_str());
        kinds.dedup();
        kinds
    }
}

/// The alarms etcd knows about. Anything else is `Unknown` and blocks maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AlarmKind {
    #[serde(rename = "NOSPACE")]
    NoSpace,
    #[serde(rename = "CORRUPT")]
    Corrupt,
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::NoSpace => "NOSPACE",
            AlarmKind::Corrupt => "CORRUPT",
            AlarmKind::Unknown => "UNKNOWN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmKind,
}

/// The result of a HashKV request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    /// The revision the hash covers (3.5+ report it; on 3.4 it is the response's revision).
    pub hash_revision: i64,
}

/// What a Compact request ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactOutcome {
    Compacted,
    /// The revision was already compacted (by the apiserver, etcd itself or another instance).
    AlreadyCompacted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_list_the_alarms() {
        let status = MemberStatus {
            errors: vec![
                "memberID:10276657743932975437 alarm:NOSPACE ".into(),
                "memberID:1 alarm:NOSPACE ".into(),
                "etcdserver: no leader".into(),
                "memberID:2 alarm:CORRUPT ".into(),
            ],
            ..MemberStatus::for_tests("3.5.16", 0)
        };
        assert_eq!(
            status.listed_alarms(),
            vec![AlarmKind::Corrupt, AlarmKind::NoSpace]
        );
    }
}
