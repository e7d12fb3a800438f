//! All etcd gRPC lives here: one connection per endpoint, a timeout on every call, and plain
//! data types out.
//!
//! Why one module: reads (observe) and writes (act) must agree on how endpoints are dialled,
//! which timeout applies, and how failures are classified. Maintenance RPCs are per member —
//! `Status`, `Defragment`, `HashKV` act on the member you send them to — so every call names its
//! endpoint and goes through a client pinned to that endpoint alone (never a balanced pool that
//! could route a defrag to the wrong member).

mod candidates;
mod error;
mod health;
mod range;
mod types;
mod watch;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{
    AlarmAction, AlarmType, Certificate, Client, CompactionOptions, ConnectOptions, GetOptions,
    Identity, TlsOptions,
};

pub use candidates::{CANDIDATES_PREFIX, CandidateKey, KeepAlive};
pub use error::{EtcdError, FailureKind};
pub use range::RangePage;
pub use types::{Alarm, AlarmKind, CompactOutcome, KvHash, MemberInfo, MemberStatus};
pub use watch::{WatchEvent, WatchMessage, WatchSubscription};

use crate::certs::TlsMaterial;

type Result<T> = std::result::Result<T, EtcdError>;

/// Connections to etcd endpoints, created on first use and kept until the TLS material changes.
pub struct Etcd {
    dial_timeout: Duration,
    command_timeout: Duration,
    tls: Option<TlsMaterial>,
    clients: Mutex<HashMap<String, Client>>,
}

impl Etcd {
    pub fn new(
        dial_timeout: Duration,
        command_timeout: Duration,
        tls: Option<TlsMaterial>,
    ) -> Self {
        Etcd {
            dial_timeout,
            command_timeout,
            tls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The fingerprint of the certificates these connections use (None: plain HTTP).
    pub fn tls_fingerprint(&self) -> Option<u64> {
        self.tls.as_ref().map(|t| t.fingerprint)
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Long enough for a call to a member that cannot be connected to to fail as such
    /// (`FailureKind::Unreachable`, once the connect timeout passes) rather than as a timeout
    /// of the call: twice the connect timeout.
    pub fn reachability_timeout(&self) -> Duration {
        self.dial_timeout * 2
    }

    /// Forgets the connection to one endpoint so the next call dials afresh (after a member
    /// restart a stale channel can keep failing).
    pub fn forget(&self, endpoint: &str) {
        self.clients
            .lock()
            .expect("client map poisoned")
            .remove(endpoint);
    }

    async fn client(&self, op: &'static str, endpoint: &str) -> Result<Client> {
        if let Some(client) = self
            .clients
            .lock()
            .expect("client map poisoned")
            .get(endpoint)
        {
            return Ok(client.clone());
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_keep_alive(Duration::from_secs(10), self.dial_timeout)
            .with_keep_alive_while_idle(true);
        if endpoint.starts_with("https://") {
            let tls = self.tls.as_ref().ok_or_else(|| EtcdError {
                op,
                endpoint: endpoint.to_string(),
                kind: FailureKind::Tls,
                message: "https endpoint but no CA configured (use --cacert or --preset)".into(),
            })?;
            let mut tls_options =
                TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some(identity) = &tls.identity {
                tls_options =
                    tls_options.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
            }
            options = options.with_tls(tls_options);
        }
        // Client::connect only builds a lazy channel (it dials on the first request), so this
        // returns at once; two racing callers may both build one, and the later insert wins.
        let client = Client::connect([endpoint], Some(options))
            .await
            .map_err(|e| EtcdError::from_client(op, endpoint, &e))?;
        self.clients
            .lock()
            .expect("client map poisoned")
            .insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        endpoint: &str,
        timeout: Duration,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = self.client(op, endpoint).await?;
        match tokio::time::timeout(timeout, f(client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let mut err = EtcdError::from_client(op, endpoint, &e);
                if let Some(cert) = self.tls.as_ref().and_then(|t| t.cert_path.as_deref())
                    && endpoint.starts_with("https://")
                {
                    err = err.client_cert_rejected(&cert.display().to_string());
                }
                if matches!(err.kind, FailureKind::Unreachable | FailureKind::Tls) {
                    self.forget(endpoint);
                }
                Err(err)
            }
            // A connection that timed out may be wedged (a member cut off from the majority
            // keeps the TCP session and answers nothing): the next call dials again.
            Err(_) => {
                self.forget(endpoint);
                Err(EtcdError::timeout(op, endpoint, timeout))
            }
        }
    }

    pub async fn member_list(&self, endpoint: &str) -> Result<Vec<MemberInfo>> {
        let response = self
            .call(
                "MemberList",
                endpoint,
                self.dial_timeout,
                |mut c| async move { c.member_list().await },
            )
            .await?;
        Ok(response
            .members()
            .iter()
            .map(|m| MemberInfo {
                id: m.id(),
                name: m.name().to_string(),
                client_urls: m.client_urls().to_vec(),
                is_learner: m.is_learner(),
            })
            .collect())
    }

    pub async fn status(&self, endpoint: &str) -> Result<MemberStatus> {
        self.status_within(endpoint, self.dial_timeout).await
    }

    /// Status with its own timeout (the quick alarm check between observations).
    pub async fn status_within(&self, endpoint: &str, timeout: Duration) -> Result<MemberStatus> {
        let r = self
            .call("Status", endpoint, timeout, |mut c| async move {
                c.status().await
            })
            .await?;
        let header = r.header();
        Ok(MemberStatus {
            member_id: header.map(|h| h.member_id()).unwrap_or(0),
            version: r.version().to_string(),
            db_size: r.db_size().max(0) as u64,
            db_size_in_use: r.raft_used_db_size().max(0) as u64,
            leader: r.leader(),
            raft_term: r.raft_term(),
            raft_index: r.raft_index(),
            raft_applied_index: r.raft_applied_index(),
            is_learner: r.is_learner(),
            errors: r.errors().to_vec(),
            db_size_quota: r.db_size_quota().max(0) as u64,
            downgrade_target: r
                .downgrade_info()
                .filter(|d| d.enabled())
                .map(|d| d.target_version().to_string()),
            revision: header.map(|h| h.revision()).unwrap_or(0),
        })
    }

    pub async fn alarms(&self, endpoint: &str) -> Result<Vec<Alarm>> {
        let r = self
            .call(
                "AlarmList",
                endpoint,
                self.dial_timeout,
                |mut c| async move { c.alarm(AlarmAction::Get, AlarmType::None, None).await },
            )
            .await?;
        Ok(r.alarms()
            .iter()
            .map(|a| Alarm {
                member_id: a.member_id(),
                kind: match a.alarm() {
                    AlarmType::Nospace => AlarmKind::NoSpace,
                    AlarmType::Corrupt => AlarmKind::Corrupt,
                    _ => AlarmKind::Unknown,
                },
            })
            .collect())
    }

    /// A linearizable read: proves the member is serving and connected to a quorum.
    pub async fn linearizable_read(&self, endpoint: &str, timeout: Duration) -> Result<()> {
        self.call("linearizable read", endpoint, timeout, |mut c| async move {
            c.get("health", Some(GetOptions::new().with_count_only()))
                .await
        })
        .await
        .map(|_| ())
    }

    /// Physical compaction to `revision` (the call returns once the old revisions are removed).
    pub async fn compact(&self, endpoint: &str, revision: i64) -> Result<CompactOutcome> {
        let result = self
            .call(
                "Compact",
                endpoint,
                self.command_timeout,
                |mut c| async move {
                    c.compact(revision, Some(CompactionOptions::new().with_physical()))
                        .await
                },
            )
            .await;
        match result {
            Ok(_) => Ok(CompactOutcome::Compacted),
            Err(e) if e.kind == FailureKind::Compacted => Ok(CompactOutcome::AlreadyCompacted),
            Err(e) => Err(e),
        }
    }

    /// Defragments the member behind `endpoint`. A timeout here does NOT stop the defrag on the
    /// server (etcd ignores the request context): callers must treat the member as busy.
    pub async fn defragment(&self, endpoint: &str) -> Result<()> {
        self.call(
            "Defragment",
            endpoint,
            self.command_timeout,
            |mut c| async move { c.defragment().await },
        )
        .await
        .map(|_| ())
    }

    /// Transfers leadership to `target`; must be sent to the current leader.
    pub async fn move_leader(&self, leader_endpoint: &str, target: u64) -> Result<()> {
        self.call(
            "MoveLeader",
            leader_endpoint,
            self.command_timeout,
            |mut c| async move { c.move_leader(target).await },
        )
        .await
        .map(|_| ())
    }

    /// The KV hash of the member at `revision`.
    ///
    /// etcd 3.4 refuses a revision *equal* to the compact revision (3.5 only older ones), and
    /// during NOSPACE nothing is written after the emergency compaction, so the current revision
    /// is exactly that. Then the hash at the current revision (`0`) is taken instead — accepted
    /// only when the revision it covers is the one asked for.
    pub async fn hash_kv(&self, endpoint: &str, revision: i64) -> Result<KvHash> {
        match self.hash_kv_once(endpoint, revision).await {
            Err(e) if e.kind == FailureKind::Compacted && revision > 0 => {
                let current = self.hash_kv_once(endpoint, 0).await?;
                if current.hash_revision == revision {
                    Ok(current)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    async fn hash_kv_once(&self, endpoint: &str, revision: i64) -> Result<KvHash> {
        let r = self
            .call(
                "HashKV",
                endpoint,
                self.command_timeout,
                |mut c| async move { c.hash_kv(revision).await },
            )
            .await?;
        let header_revision = r.header().map(|h| h.revision()).unwrap_or(0);
        Ok(KvHash {
            hash: r.hash(),
            compact_revision: r.compact_version(),
            hash_revision: if r.hash_revision() > 0 {
                r.hash_revision()
            } else {
                header_revision
            },
        })
    }

    /// Disarms the NOSPACE alarm of one member — never another alarm type, never "all".
    pub async fn disarm_nospace(&self, endpoint: &str, member_id: u64) -> Result<()> {
        self.call(
            "AlarmDisarm",
            endpoint,
            self.dial_timeout.max(Duration::from_secs(5)),
            |mut c| async move {
                c.alarm(
                    AlarmAction::Deactivate,
                    AlarmType::Nospace,
                    Some({
                        let mut o = etcd_client::AlarmOptions::new();
                        o.with_member(member_id);
                        o
                    }),
                )
                .await
            },
        )
        .await
        .map(|_| ())
    }
}
