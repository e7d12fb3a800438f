//! The HTTP surface is bounded in time: a client that holds its request headers open (a
//! slowloris) is cut off within seconds, and `/healthz` answers without etcd.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Daemon, s};

#[test]
fn a_connection_holding_a_partial_request_header_is_closed_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // No etcd at all: the daemon backs off and stays alive.
    let args = s(&["--endpoints", "http://127.0.0.1:1", "--poll-interval", "1s"]);
    let daemon = Daemon::start(&args, dir.path());
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: upkeep\r\nX-Slow: ")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(10),
        "a partial header was held open for {held:?}"
    );
    // The daemon itself is fine.
    assert_eq!(daemon.get("/healthz").0, 200);
}
