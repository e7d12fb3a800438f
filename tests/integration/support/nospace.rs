//! NOSPACE helpers shared by the maintenance and actor tests: force it, read the alarms, and
//! check afterwards that nothing was lost (keys, equal KV hashes) and that no two
//! defragmentations overlapped (etcd's own log lines).

use std::time::Duration;

use super::{Cluster, defrag_intervals, fill_until_nospace, runtime};

/// Fills the cluster through `endpoint` until NOSPACE; returns the live keys written.
pub fn force_nospace(cluster: &Cluster, endpoint: &str, keys: usize) -> usize {
    runtime().block_on(async {
        let mut client = cluster.client(&[endpoint.to_string()]).await;
        fill_until_nospace(&mut client, keys, 100_000, 10_000).await
    })
}

/// The alarm list, from the first member that answers (one may be frozen or down).
pub fn alarms(cluster: &Cluster) -> Vec<i32> {
    runtime().block_on(async {
        for endpoint in cluster.endpoints() {
            let mut client = cluster.client(&[endpoint]).await;
            let get = client.alarm(
                etcd_client::AlarmAction::Get,
                etcd_client::AlarmType::None,
                None,
            );
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), get).await {
                return r.alarms().iter().map(|a| a.alarm() as i32).collect();
            }
        }
        panic!("no member answered AlarmList");
    })
}

/// Each member's name, db size and hashkv at a common revision.
pub type MemberHashes = Vec<(String, i64, u32)>;

/// Every member's (name, db size, hashkv at a common revision) and whether a write works.
pub fn inspect(cluster: &Cluster) -> (MemberHashes, bool) {
    try_inspect(cluster).unwrap_or_else(|e| panic!("{e}"))
}

/// The same, or why a member could not be compared yet (one just back from a partition may
/// still be catching up, or finishing a defragmentation, for longer than the 10 s tried here).
pub fn try_inspect(cluster: &Cluster) -> Result<(MemberHashes, bool), String> {
    runtime().block_on(async {
        let mut any = cluster.client(&cluster.endpoints()).await;
        // Write first: the check that writes work again, and a revision above the compaction
        // (etcd 3.4 refuses HashKV at exactly the compact revision).
        let put = any.put("upkeep-test/after-heal", "ok", None).await;
        let writable = put.is_ok();
        // A member back from being frozen or cut off may make the leader step down (etcd 3.4
        // has no pre-vote by default): a read retried for a few seconds.
        let mut revision = None;
        for _ in 0..50 {
            if let Ok(r) = any.get("x", None).await {
                revision = r.header().map(|h| h.revision());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let revision = revision.expect("a read within 5 s");
        let mut out = Vec::new();
        for (m, endpoint) in cluster.members.iter().zip(cluster.endpoints()) {
            let mut c = cluster.client(&[endpoint]).await;
            let status = c.status().await.unwrap();
            // A follower may not have applied `revision` yet: retry briefly.
            // (10 s: a member just back from a partition may still be catching up.)
            let mut hash = Err(String::from("not tried"));
            for _ in 0..200 {
                match c.hash_kv(revision).await {
                    Ok(h) => {
                        hash = Ok(h.hash());
                        break;
                    }
                    Err(e) => hash = Err(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let hash = hash.map_err(|e| {
                format!(
                    "no hashkv of {} at the common revision {revision}: {e}",
                    m.name
                )
            })?;
            out.push((m.name.clone(), status.db_size(), hash));
        }
        Ok((out, writable))
    })
}

pub fn keys_present(cluster: &Cluster, keys: usize) -> usize {
    runtime().block_on(async {
        let mut c = cluster.client(&cluster.endpoints()).await;
        let r = c
            .get(
                "/registry/fill/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .unwrap();
        assert!(r.count() as usize <= keys);
        r.count() as usize
    })
}

/// Every defragmentation in the members' own logs, (start, end, member index), by start time;
/// panics when two overlapped.
pub fn defrags_one_at_a_time(cluster: &Cluster) -> Vec<(f64, f64, usize)> {
    let mut intervals: Vec<(f64, f64, usize)> = Vec::new();
    for i in 0..cluster.members.len() {
        intervals.extend(
            defrag_intervals(&cluster.log(i))
                .into_iter()
                .map(|(a, b)| (a, b, i)),
        );
    }
    intervals.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    for w in intervals.windows(2) {
        assert!(w[1].0 >= w[0].1, "defragmentations overlapped: {w:?}");
    }
    intervals
}
