//! Who connects: clients from other loopback addresses (a socket bound to 127.0.0.2 before it
//! connects) against a real redis-server, listed in `snapshot --json` and found by
//! `check --observe` when a new host starts connecting and the application's connections fall.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::common::*;
use sessiontop::demo::local_redis::{Listen, LocalRedis, Options};

/// A connection to `port` from `source`, named `name` with `CLIENT SETNAME`.
fn client_from(source: &str, port: u16, name: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&format!("{source}:0").parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&format!("127.0.0.1:{port}").parse::<SocketAddr>().unwrap().into()).unwrap();
    let mut stream: TcpStream = socket.into();
    let setname = format!("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n${}\r\n{name}\r\n", name.len());
    stream.write_all(setname.as_bytes()).unwrap();
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    stream
}

fn tcp_server() -> LocalRedis {
    // It listens on loopback only; protected mode would refuse 127.0.0.2 as not local.
    let extra_args = vec!["--protected-mode".to_string(), "no".to_string()];
    LocalRedis::start(Options { listen: Listen::Tcp, extra_args, ..Options::default() }).unwrap()
}

#[test]
fn clients_are_listed_by_host_with_their_names() {
    let server = tcp_server();
    let port = server.port().unwrap();
    let _workers: Vec<TcpStream> = (0..3).map(|_| client_from("127.0.0.1", port, "gunicorn")).collect();
    let _others: Vec<TcpStream> = (0..2).map(|_| client_from("127.0.0.3", port, "rq-worker")).collect();
    let dir = tempfile::tempdir().unwrap();
    let report = json(sessiontop(&server.url(), &dir).args(["snapshot", "--json"]));
    let clients = &report["clients"];
    assert!(clients["own"].as_u64().unwrap() >= 1, "{clients}");
    let hosts = clients["hosts"].as_array().unwrap();
    let host = |h: &str| hosts.iter().find(|x| x["host"] == h).unwrap_or_else(|| panic!("{clients}"));
    assert_eq!(host("127.0.0.1")["connections"], 3, "sessiontop's own are counted apart: {clients}");
    assert_eq!(host("127.0.0.1")["names"], serde_json::json!([{"name": "gunicorn", "count": 3}]));
    assert_eq!(host("127.0.0.3")["connections"], 2);
    assert_eq!(host("127.0.0.3")["names"], serde_json::json!([{"name": "rq-worker", "count": 2}]));
}

#[test]
fn a_new_host_connecting_and_the_application_s_connections_falling_are_found_while_watching() {
    let server = tcp_server();
    let port = server.port().unwrap();
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let workers: Vec<TcpStream> = (0..6).map(|_| client_from("127.0.0.1", port, "gunicorn")).collect();
    let dir = tempfile::tempdir().unwrap();
    let child = observing(&server.url(), &dir, &[], "3s");
    // Once the watch has listed who is connected, the workers go and another host comes.
    calls_at_least(&mut con, "client|list", 1);
    drop(workers);
    let _strangers: Vec<TcpStream> = (0..6).map(|_| client_from("127.0.0.2", port, "worker")).collect();
    let listed = calls_of(&mut con, "client|list") + 2;
    calls_at_least(&mut con, "client|list", listed);
    let (code, report) = report_of(child);
    let findings = report["findings"].as_array().unwrap();
    let of = |kind: &str| findings.iter().find(|f| f["kind"] == kind).unwrap_or_else(|| panic!("{report}"));
    let new = of("new_client_host")["summary"].as_str().unwrap();
    assert!(new.starts_with("6 connections from a new host 127.0.0.2 since "), "{new}");
    // The six workers and this test's own connection were there at the start; one is left.
    let fell = of("clients_fell")["summary"].as_str().unwrap();
    assert!(fell.starts_with("connections from the application's hosts fell from 7 to 1 since "), "{fell}");
    assert!(fell.ends_with("workers gone? (127.0.0.1 7 → 1)"), "{fell}");
    assert_eq!(code, 1, "{report}");
}
