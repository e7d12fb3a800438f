//! The gRPC behind the actor election: lease-bound candidate keys under one prefix.
//!
//! Why leases: a candidate's key lives exactly as long as its instance keeps the lease alive, so
//! a crashed, frozen or partitioned instance drops out by itself within the TTL. And leases keep
//! working when nothing else does: during NOSPACE etcd refuses Put, Txn-with-put and LeaseGrant,
//! but accepts LeaseKeepAlive, lets leases expire (deleting their keys) and serves reads —
//! measured here with etcdctl on 3.5. So candidates registered while etcd was healthy keep their
//! order through a NOSPACE, and when the actor dies its key expires and the next one takes over.

use std::time::Duration;

use etcd_client::{GetOptions, PutOptions};

use super::{Etcd, EtcdError, Result};

/// Where the candidates live. Outside `/registry/`, so no Kubernetes component ever reads it.
pub const CANDIDATES_PREFIX: &str = "/etcd-upkeep/candidates/";
/// The key a heal writes (and deletes) to see that writes are accepted again.
pub const WRITE_CHECK_KEY: &str = "/etcd-upkeep/write-check";

/// One registered candidate, as read back from etcd.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CandidateKey {
    pub key: String,
    pub value: Vec<u8>,
    /// Registration order: the lowest is the first registered.
    pub create_revision: i64,
    pub lease: i64,
}

/// A live lease's keep-alive channel.
pub struct KeepAlive {
    endpoint: String,
    lease: i64,
    keeper: etcd_client::LeaseKeeper,
    stream: etcd_client::LeaseKeepAliveStream,
}

impl KeepAlive {
    /// The member this channel renews through.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Renews the lease once; returns the TTL left (0: the lease is gone).
    pub async fn renew(&mut self, timeout: Duration) -> Result<i64> {
        let endpoint = self.endpoint.clone();
        let renew = async {
            self.keeper.keep_alive().await?;
            self.stream.message().await
        };
        match tokio::time::timeout(timeout, renew).await {
            Ok(Ok(Some(response))) => Ok(response.ttl()),
            Ok(Ok(None)) => Ok(0),
            Ok(Err(e)) => Err(EtcdError::from_client("LeaseKeepAlive", &endpoint, &e)),
            Err(_) => Err(EtcdError::timeout("LeaseKeepAlive", &endpoint, timeout)),
        }
    }
}

impl Etcd {
    /// Every registered candidate (a linearizable read: all instances see the same list).
    pub async fn candidates(&self, endpoint: &str) -> Result<Vec<CandidateKey>> {
        let response = self
            .call("Range", endpoint, self.dial_timeout, |mut c| async move {
                c.get(CANDIDATES_PREFIX, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| CandidateKey {
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                value: kv.value().to_vec(),
                create_revision: kv.create_revision(),
                lease: kv.lease(),
            })
            .collect())
    }

    /// Registers a candidate: a lease of `ttl` and `value` under a key named after it. Refused
    /// during NOSPACE (LeaseGrant and Put both are).
    pub async fn register_candidate(
        &self,
        endpoint: &str,
        ttl: Duration,
        value: Vec<u8>,
    ) -> Result<(i64, KeepAlive)> {
        let seconds = ttl.as_secs().max(2) as i64;
        let lease = self
            .call(
                "LeaseGrant",
                endpoint,
                self.dial_timeout,
                |mut c| async move { c.lease_grant(seconds, None).await },
            )
            .await?
            .id();
        let key = format!("{CANDIDATES_PREFIX}{lease:016x}");
        let put = self
            .call("Put", endpoint, self.dial_timeout, |mut c| async move {
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            })
            .await;
        if let Err(e) = put {
            let _ = self.revoke_candidate(endpoint, lease).await;
            return Err(e);
        }
        Ok((lease, self.keep_alive_on(endpoint, lease).await?))
    }

    /// Rewrites a registered candidate's value under its own lease (what it publishes about its
    /// member changed). Refused during NOSPACE, like every Put: the value then stays as it was.
    pub async fn update_candidate(&self, endpoint: &str, lease: i64, value: Vec<u8>) -> Result<()> {
        let key = format!("{CANDIDATES_PREFIX}{lease:016x}");
        self.call("Put", endpoint, self.dial_timeout, |mut c| async move {
            c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                .await
        })
        .await
        .map(|_| ())
    }

    /// A write through `endpoint` that is undone at once: a small key under etcd-upkeep's own
    /// prefix, put (the quota check applies to puts only) and deleted. How a heal knows that
    /// writes are accepted again, not only that the alarm list is empty.
    pub async fn write_check(&self, endpoint: &str) -> Result<()> {
        self.call("Put", endpoint, self.dial_timeout, |mut c| async move {
            c.put(WRITE_CHECK_KEY, "ok", None).await
        })
        .await?;
        self.call(
            "DeleteRange",
            endpoint,
            self.dial_timeout,
            |mut c| async move { c.delete(WRITE_CHECK_KEY, None).await },
        )
        .await
        .map(|_| ())
    }

    /// A keep-alive channel for `lease` through `endpoint`: any member renews any lease (the
    /// leader's lessor owns them all), so a busy member's channel can be replaced by another's.
    pub async fn keep_alive_on(&self, endpoint: &str, lease: i64) -> Result<KeepAlive> {
        let (keeper, stream) = self
            .call(
                "LeaseKeepAlive",
                endpoint,
                self.dial_timeout,
                |mut c| async move { c.lease_keep_alive(lease).await },
            )
            .await?;
        Ok(KeepAlive {
            endpoint: endpoint.to_string(),
            lease,
            keeper,
            stream,
        })
    }

    /// Withdraws a candidate at once (its key goes with the lease).
    pub async fn revoke_candidate(&self, endpoint: &str, lease: i64) -> Result<()> {
        self.call(
            "LeaseRevoke",
            endpoint,
            self.dial_timeout,
            |mut c| async move { c.lease_revoke(lease).await },
        )
        .await
        .map(|_| ())
    }
}
