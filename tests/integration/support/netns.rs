//! Test hosts in network namespaces, for partitions that are real: each host is a namespace with
//! a veth pair into one bridge in the root namespace, on the project's own benchmarking range
//! (198.18.0.0/15, RFC 2544). Cutting a host sets its bridge-side link down: every packet to and
//! from it is lost, exactly as a switch port going dark. Needs root and iproute2; `create`
//! returns `None` (and the test says it skipped) where namespaces cannot be made.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// One host: a namespace and its address.
pub struct Host {
    pub ns: String,
    pub ip: String,
    link: String,
}

/// A bridge and its hosts; all removed on drop.
pub struct Network {
    bridge: String,
    pub hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Network {
    /// `n` hosts on a fresh bridge, or `None` with the reason printed (not root, no iproute2).
    pub fn create(n: usize) -> Option<Network> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{serial}", std::process::id() % 100_000);
        // A /24 per network of this process; distinct processes rarely run these tests at once,
        // and a clash only fails the `ip addr add` below.
        let subnet = (std::process::id() * 7 + serial) % 250 + 1;
        let mut network = Network {
            bridge: format!("eub{id}"),
            hosts: Vec::new(),
        };
        let made = (|| {
            ip(&["link", "add", &network.bridge, "type", "bridge"])?;
            ip(&["link", "set", &network.bridge, "up"])?;
            let gateway = format!("198.18.{subnet}.254/24");
            ip(&["addr", "add", &gateway, "dev", &network.bridge])?;
            for i in 0..n {
                let host = Host {
                    ns: format!("eu{id}-{i}"),
                    ip: format!("198.18.{subnet}.{}", i + 1),
                    link: format!("euv{id}x{i}"),
                };
                let peer = format!("euv{id}y{i}");
                ip(&["netns", "add", &host.ns])?;
                network.hosts.push(host);
                let host = network.hosts.last().unwrap();
                ip(&[
                    "link", "add", &host.link, "type", "veth", "peer", "name", &peer,
                ])?;
                ip(&["link", "set", &peer, "netns", &host.ns])?;
                ip(&["link", "set", &host.link, "master", &network.bridge, "up"])?;
                let address = format!("{}/24", host.ip);
                ip(&["-n", &host.ns, "addr", "add", &address, "dev", &peer])?;
                ip(&["-n", &host.ns, "link", "set", &peer, "up"])?;
                ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
            }
            Ok::<(), String>(())
        })();
        match made {
            Ok(()) => Some(network),
            Err(e) => {
                eprintln!(
                    "SKIPPED: network namespaces are not available here ({e}); these tests need root and iproute2"
                );
                None
            }
        }
    }

    /// Host `i` loses every packet, in and out.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].link, "down"]).unwrap();
    }

    pub fn restore(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].link, "up"]).unwrap();
    }

    /// Cuts host `i` off from hosts `others` only (blackhole routes both ways): a member cut off
    /// from its peers that the daemons on other hosts still reach.
    pub fn isolate(&self, i: usize, others: &[usize]) {
        for &o in others {
            let to = format!("{}/32", self.hosts[o].ip);
            let back = format!("{}/32", self.hosts[i].ip);
            ip(&["-n", &self.hosts[i].ns, "route", "add", "blackhole", &to]).unwrap();
            ip(&["-n", &self.hosts[o].ns, "route", "add", "blackhole", &back]).unwrap();
        }
    }

    /// `ip netns exec <ns>`: the program replaces it (the child's pid is the program's).
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.hosts[i].ns])
            .arg(program);
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.ns]); // takes the veth pair with it
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
