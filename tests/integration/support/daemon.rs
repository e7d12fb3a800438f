//! The etcd-upkeep binary under test: a running daemon (its log, metrics and /status), one-shot
//! commands, and the plain HTTP the tests read it with.

use super::*;

/// `run` arguments for a daemon beside `endpoint` of `cluster`, with its TLS flags and `extra`.
pub fn daemon_args(cluster: &Cluster, endpoint: &str, extra: &[&str]) -> Vec<String> {
    let mut args = s(&["--endpoints", endpoint]);
    args.extend(cluster.pki.flags());
    args.extend(s(extra));
    args
}

/// Runs a one-shot etcd-upkeep command.
pub fn upkeep(args: &[String]) -> Output {
    Command::new(upkeep_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A running `etcd-upkeep run`; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub address: String,
    pub log_path: PathBuf,
}

impl Daemon {
    pub fn start(args: &[String], log_dir: &Path) -> Daemon {
        Daemon::start_with_env(args, log_dir, &[])
    }

    /// The same with extra environment variables (e.g. a test fault).
    pub fn start_with_env(args: &[String], log_dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(upkeep_bin());
        command.envs(env.iter().copied());
        Daemon::spawn(command, address, args, log_dir)
    }

    /// A daemon on host `i` of `network` (beside the member there, or a host of its own),
    /// serving HTTP on that host's address.
    pub fn start_in(network: &netns::Network, i: usize, args: &[String], log_dir: &Path) -> Daemon {
        let address = format!("{}:9401", network.hosts[i].ip);
        Daemon::spawn(network.command(i, upkeep_bin()), address, args, log_dir)
    }

    fn spawn(mut command: Command, address: String, args: &[String], log_dir: &Path) -> Daemon {
        let log_path = log_dir.join(format!("upkeep-{}.log", address.replace(':', "-")));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .args(["run", "--listen-address", &address])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            address,
            log_path,
        };
        daemon.wait_for(Duration::from_secs(10), "HTTP up", |d| {
            d.get("/healthz").0 == 200
        });
        daemon
    }

    /// GET a path; (status, body). Status 0 when the connection failed.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.address, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The value of the first `/metrics` sample whose line starts with `line_prefix`
    /// (a name, or a name with its labels).
    pub fn metric(&self, line_prefix: &str) -> Option<f64> {
        self.get("/metrics")
            .1
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).unwrap_or(serde_json::Value::Null)
    }

    /// Polls `check` until it holds or panics after `limit`, printing the daemon log.
    pub fn wait_for(&self, limit: Duration, what: &str, check: impl Fn(&Daemon) -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}; daemon log:\n{}", self.log());
    }

    pub fn stop(&mut self) {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(address: &str, path: &str) -> (u16, String) {
    // A bounded connect: a host cut off by a partition test would hold it for minutes.
    let Some(socket) = address.parse().ok() else {
        return (0, String::new());
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&socket, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    parse_http(&response)
}

/// (status, body) of an HTTP/1 response; status 0 when there was none.
pub fn parse_http(response: &str) -> (u16, String) {
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
