//! A slow disk under every member (the kernel's block-I/O throttle on their writes and fsyncs,
//! `support::slowdisk`): the heal still frees space one member at a time, waits out each
//! defragmentation that outlasts its own command timeout instead of touching anything else,
//! disarms only after the space is freed, and loses nothing.

use crate::support;

use support::slowdisk::SlowDisk;
use support::{
    Cluster, alarms, defrags_one_at_a_time, force_nospace, inspect, keys_present, s, upkeep,
};

const MIB: u64 = 1024 * 1024;

#[test]
fn on_a_slow_disk_defragmentations_that_outlast_the_timeout_are_waited_out_and_nothing_is_lost() {
    let cluster = Cluster::start(3, 48 * MIB);
    let endpoint = cluster.endpoints()[0].clone();
    // 150 live objects of 100 KB (15 MB), which every defragmentation rewrites, under history
    // until NOSPACE: filled at the disk's full speed, then the disk slows to 3 MiB/s of writes.
    let keys = 150;
    force_nospace(&cluster, &endpoint, keys);
    let Some(disk) = SlowDisk::create(cluster.dir.path(), 3 * MIB) else {
        return;
    };
    for member in &cluster.members {
        disk.add(member.pid());
    }

    let mut heal = s(&[
        "heal",
        "--endpoints",
        &endpoint,
        "--quota-backend-bytes",
        "48Mi",
        "--command-timeout",
        "2s",
        "--heal-timeout",
        "5m",
    ]);
    heal.extend(cluster.pki.flags());
    let out = upkeep(&heal);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(stdout.contains("healed"), "{stdout}");

    // The disk really was slow: every defragmentation took longer than the heal's own timeout,
    // and none overlapped another (etcd's own logs).
    let defrags = defrags_one_at_a_time(&cluster);
    assert!(defrags.len() >= 3, "every member defragmented: {defrags:?}");
    for (start, end, member) in &defrags {
        assert!(
            end - start > 2.0,
            "m{member}'s defragmentation took {:.1} s: the throttle ({}) did not hold",
            end - start,
            disk.device
        );
    }
    assert!(
        stderr.contains("timed out on our side"),
        "the heal waited for a defragmentation still running on the server:\n{stderr}"
    );
    assert!(alarms(&cluster).is_empty());
    let (members, writable) = inspect(&cluster);
    assert!(writable, "writes succeed after the heal");
    assert!(
        members.windows(2).all(|w| w[0].2 == w[1].2),
        "hashkv differs: {members:?}"
    );
    assert_eq!(
        keys_present(&cluster, keys),
        keys,
        "every live object survives"
    );
    eprintln!(
        "defragmentations on the slow disk: {:?} s",
        defrags
            .iter()
            .map(|(a, b, _)| ((b - a) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}
