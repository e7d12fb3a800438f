//! Probes made between maintenance steps: linearizable reads (the health gate), waiting for a
//! member to answer again, and the free disk space of the data dir.
//!
//! Why in observe: they only read. The act stage stays the single place that mutates etcd.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::etcd::Etcd;
use crate::observe::Observation;
use crate::shutdown::Shutdown;

/// A linearizable read against every voting member that answered Status.
pub async fn probe_health(
    etcd: &Etcd,
    obs: &Observation,
    timeout: Duration,
) -> Vec<(u64, Result<(), String>)> {
    let voting: Vec<_> = obs
        .members
        .iter()
        .filter(|m| !m.is_learner && m.status.is_some())
        .collect();
    let results = join_all(
        voting
            .iter()
            .map(|m| etcd.linearizable_read(&m.endpoint, timeout)),
    )
    .await;
    voting
        .iter()
        .zip(results)
        .map(|(m, r)| (m.id, r.map_err(|e| e.message)))
        .collect()
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
    let deadline = Instant::now() + limit;
    loop {
        if etcd.linearizable_read(endpoint, read_timeout).await.is_ok() {
            return true;
        }
        if Instant::now() >= deadline || shutdown.sleep(Duration::from_millis(500)).await {
            return false;
        }
    }
}

/// Bytes available to unprivileged writers on the filesystem holding `dir`.
pub fn free_disk_bytes(dir: &Path) -> Result<u64, String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| format!("--data-dir {}: contains a NUL byte", dir.display()))?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(format!(
            "--data-dir {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}
