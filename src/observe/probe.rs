//! Probes made between maintenance steps: linearizable reads (the health gate), waiting for a
//! member to answer again, and the free disk space of the data dir.
//!
//! Why in observe: they only read. The act stage stays the single place that mutates etcd.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::decide::gate::{Probe, ProbeFailure};
use crate::etcd::{Etcd, FailureKind};
use crate::observe::Observation;
use crate::shutdown::Shutdown;

/// A linearizable read against every voting member that answered Status. Where the read failed,
/// the member's gRPC health service says whether it is defragmenting (NOT_SERVING, etcd's
/// `StopGRPCServiceOnDefrag`): busy for someone else, not a fault. A member whose Status failed
/// is taken as observed (`MemberObservation::defragmenting`, asked the same way).
pub async fn probe_health(etcd: &Etcd, obs: &Observation, timeout: Duration) -> Vec<Probe> {
    let voting: Vec<_> = obs.members.iter().filter(|m| !m.is_learner).collect();
    let results = join_all(voting.iter().map(|m| async move {
        let failure = match &m.status {
            Some(_) => match etcd.linearizable_read(&m.endpoint, timeout).await {
                Ok(()) => return Ok(()),
                Err(e) => e.message,
            },
            None if m.defragmenting => return Err(ProbeFailure::Defragmenting),
            None => return Err(ProbeFailure::Failed(m.error.clone().unwrap_or_default())),
        };
        match etcd.serving(&m.endpoint, timeout).await {
            Ok(false) => Err(ProbeFailure::Defragmenting),
            _ => Err(ProbeFailure::Failed(failure)),
        }
    }))
    .await;
    voting.iter().map(|m| m.id).zip(results).collect()
}

/// Waits until the member answers a linearizable read (e.g. after a defrag that timed out on the
/// client and may still run on the server). Returns false on shutdown or after `limit`.
pub async fn wait_until_answering(
    etcd: &Etcd,
    endpoint: &str,
    read_timeout: Duration,
    limit: Duration,
    shutdown: &mut Shutdown,
) -> bool {
    wait_for_answer(etcd, endpoint, read_timeout, limit, shutdown).await == Answer::Answered
}

/// How a wait for a member ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It answered a linearizable read.
    Answered,
    /// Nothing can even connect to it, twice in a row (refused, no route, no TCP handshake): it
    /// is cut off or gone, and waiting longer for it only holds everything else.
    Unreachable,
    /// No answer within the limit, or shutdown.
    Silent,
}

/// `wait_until_answering`, telling a member that cannot be reached at all from a silent one.
pub async fn wait_for_answer(
    etcd: &Etcd,
    endpoint: &str,
    read_timeout: Duration,
    limit: Duration,
    shutdown: &mut Shutdown,
) -> Answer {
    let deadline = Instant::now() + limit;
    let mut unreachable = 0;
    // A read that outlasts the connect timeout, so a member nobody can connect to says so.
    let read_timeout = read_timeout.max(etcd.reachability_timeout());
    loop {
        match etcd.linearizable_read(endpoint, read_timeout).await {
            Ok(()) => return Answer::Answered,
            Err(e) if e.kind == FailureKind::Unreachable => unreachable += 1,
            Err(_) => unreachable = 0,
        }
        if unreachable >= 2 {
            return Answer::Unreachable;
        }
        if Instant::now() >= deadline || shutdown.sleep(Duration::from_millis(500)).await {
            return Answer::Silent;
        }
    }
}

/// `--data-dir` could not be asked for its free space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--data-dir {}: {why}", path.display())]
pub struct DiskError {
    pub path: std::path::PathBuf,
    pub why: String,
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
pub fn free_disk_bytes(dir: &Path) -> Result<u64, DiskError> {
    use std::os::unix::ffi::OsStrExt;
    let disk_error = |why: String| DiskError {
        path: dir.into(),
        why,
    };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| disk_error("contains a NUL byte".into()))?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(disk_error(std::io::Error::last_os_error().to_string()));
    }
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}
