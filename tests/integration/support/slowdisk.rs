//! A slow disk for chosen processes: the kernel's block-I/O throttle on the device that holds a
//! directory — cgroup v1 `blkio.throttle.write_bps_device`, or v2 `io.max` — for the processes
//! moved into a group of its own.
//!
//! Why this and not an emulation: the throttle is the kernel's, applied to the real writes and
//! fsyncs etcd makes (bbolt's defragmentation commits, the WAL), so etcd is slow the way it is on
//! a saturated volume. There is no device-mapper (`dm-delay`) in this machine's kernel. Needs root
//! and the blkio/io controller; `create` returns `None` and says why where it cannot run.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub struct SlowDisk {
    group: PathBuf,
    /// Where processes go back to when the disk is removed.
    parent: PathBuf,
    pub device: String,
    pub write_bytes_per_second: u64,
}

impl SlowDisk {
    /// A group whose writes to the device holding `data` are held to `write_bytes_per_second`.
    pub fn create(data: &Path, write_bytes_per_second: u64) -> Option<SlowDisk> {
        match Self::try_create(data, write_bytes_per_second) {
            Ok(disk) => Some(disk),
            Err(why) => {
                eprintln!(
                    "SKIPPED: no block-I/O throttle here ({why}); this test needs root and cgroup blkio or io"
                );
                None
            }
        }
    }

    fn try_create(data: &Path, rate: u64) -> Result<SlowDisk, String> {
        let device = block_device(data)?;
        let name = format!("etcd-upkeep-slow-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let v2 = Path::new("/sys/fs/cgroup");
        let (parent, limit_file, limit) = if v1.join("blkio.throttle.write_bps_device").exists() {
            (
                v1.to_path_buf(),
                "blkio.throttle.write_bps_device",
                format!("{device} {rate}"),
            )
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
        {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+io");
            (v2.to_path_buf(), "io.max", format!("{device} wbps={rate}"))
        } else {
            return Err("neither cgroup v1 blkio nor a v2 io controller is mounted".into());
        };
        let group = parent.join(name);
        std::fs::create_dir_all(&group).map_err(|e| format!("mkdir {}: {e}", group.display()))?;
        std::fs::write(group.join(limit_file), &limit)
            .map_err(|e| format!("{limit:?} into {limit_file}: {e}"))?;
        Ok(SlowDisk {
            group,
            parent,
            device,
            write_bytes_per_second: rate,
        })
    }

    /// Moves a process (e.g. an etcd member) onto the slow disk.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.group.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.group.display()));
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // A group with processes in it cannot be removed: move any still alive back first.
        if let Ok(pids) = std::fs::read_to_string(self.group.join("cgroup.procs")) {
            for pid in pids.lines() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.group);
    }
}

/// `major:minor` of the whole disk holding `path` (a partition's parent: throttles apply to
/// disks).
fn block_device(path: &Path) -> Result<String, String> {
    let dev = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    if major == 0 {
        return Err(format!(
            "{} is on no block device (device {major}:{minor})",
            path.display()
        ));
    }
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if sys.join("partition").exists() {
        let parent = std::fs::read_to_string(sys.join("../dev"))
            .map_err(|e| format!("the disk of partition {major}:{minor}: {e}"))?;
        return Ok(parent.trim().to_string());
    }
    Ok(format!("{major}:{minor}"))
}
