//! The harness: a real `redis-server` per test (unix socket, no persistence, killed on drop),
//! writers that issue the same commands the two applications issue, and the binary.

use std::path::PathBuf;

use redis::Commands;
use sessiontop::demo::local_redis::{LocalRedis, Options};

/// A fresh server for one test. Fails with the install hint when `redis-server` is missing.
pub fn server() -> LocalRedis {
    server_with(&[])
}

pub fn server_with(extra_args: &[&str]) -> LocalRedis {
    LocalRedis::start(Options { extra_args: extra_args.iter().map(|s| s.to_string()).collect(), ..Options::default() })
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn conn(server: &LocalRedis) -> redis::Connection {
    redis::Client::open(server.socket_url()).unwrap().get_connection().unwrap()
}

/// The binary, pointed at `url`, with an audit log in a temporary directory and no
/// environment that could point it elsewhere.
pub fn sessiontop(url: &str, audit_dir: &tempfile::TempDir) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sessiontop"));
    cmd.env_remove("REDIS_URL")
        .env_remove("REDISCLI_AUTH")
        .env("XDG_CONFIG_HOME", audit_dir.path())
        .env("XDG_STATE_HOME", audit_dir.path())
        .arg("--url")
        .arg(url)
        .arg("--audit-log")
        .arg(audit_path(audit_dir));
    cmd
}

pub fn audit_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("audit.log")
}

/// Runs a command expected to succeed and parses its stdout as JSON.
pub fn json(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "exit {:?}\nstderr: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn now_epoch() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Naive local ISO 8601 with microseconds, as Python's `datetime.now().isoformat()` writes it.
pub fn naive_local(epoch: f64) -> String {
    let t = chrono::DateTime::from_timestamp_micros((epoch * 1e6) as i64).unwrap().with_timezone(&chrono::Local);
    t.naive_local().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// One turn of the TRT service, command for command as its `RedisSessionManager` does it:
/// `save_session_state` (HSET mapping, EXPIRE, ZADD index) then `add_conversation_exchange`
/// (LPUSH, LTRIM 0 49, EXPIRE); on the first turn the meta hash (written once, TTL from creation).
pub fn trt_turn(
    con: &mut impl redis::ConnectionLike,
    prefix: &str,
    id: &str,
    substate: &str,
    at_epoch: f64,
    first: bool,
) {
    let state = format!("{prefix}session:{id}:state");
    let history = format!("{prefix}session:{id}:history");
    let iso = naive_local(at_epoch);
    let completion = r#"{"goal_stated": true, "vision_accepted": true, "problem_identified": false}"#;
    let _: () = con
        .hset_multiple(
            &state,
            &[
                ("session_id", id),
                ("current_stage", "stage_1_safety_building"),
                ("current_substate", substate),
                ("body_questions_asked", "2"),
                ("stage_1_completion", completion),
                ("last_interaction", iso.as_str()),
                ("created_at", iso.as_str()),
            ],
        )
        .unwrap();
    let _: () = con.expire(&state, 86_400).unwrap();
    let _: () = con.zadd(format!("{prefix}active_sessions"), id, at_epoch).unwrap();
    let entry = serde_json::json!({
        "client_input": "I feel it in my chest",
        "therapist_response": "Where in your chest?",
        "navigation_decision": "body_location",
        "current_substate": substate,
        "timestamp": iso,
    })
    .to_string();
    let _: () = con.lpush(&history, entry).unwrap();
    let _: () = con.ltrim(&history, 0, 49).unwrap();
    let _: () = con.expire(&history, 86_400).unwrap();
    if first {
        let meta = format!("{prefix}session:{id}:meta");
        let _: () =
            con.hset_multiple(&meta, &[("created_at", iso.as_str()), ("created_via", "input_endpoint")]).unwrap();
        let _: () = con.expire(&meta, 86_400).unwrap();
    }
}

/// Flask-Session's write: `SET {prefix}{sid} <payload> EX <lifetime>`.
pub fn flask_set(con: &mut impl redis::ConnectionLike, prefix: &str, sid: &str, payload: &[u8], ttl: u64) {
    let _: () = redis::cmd("SET").arg(format!("{prefix}{sid}")).arg(payload).arg("EX").arg(ttl).query(con).unwrap();
}

/// A ChatMRPT session payload in msgpack (Flask-Session 0.7+).
pub fn chatmrpt_msgpack(stage: Option<&str>, messages: i64) -> Vec<u8> {
    let mut entries = vec![
        (rmpv::Value::from("session_id"), rmpv::Value::from("1b9f3c2e-4f51-4b7e-9c4a-2d0e8f1a6b3c")),
        (rmpv::Value::from("data_loaded"), rmpv::Value::Boolean(stage.is_some())),
        (rmpv::Value::from("tpr_session_id"), rmpv::Value::Nil),
        (rmpv::Value::from("message_count"), rmpv::Value::from(messages)),
    ];
    if let Some(stage) = stage {
        entries.push((rmpv::Value::from("workflow_stage"), rmpv::Value::from(stage)));
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &rmpv::Value::Map(entries)).unwrap();
    out
}

/// A ChatMRPT session payload as Flask-Session 0.6 pickled it.
pub fn chatmrpt_pickle(stage: Option<&str>, messages: i64) -> Vec<u8> {
    use sessiontop::demo::pickle::{Py, dict};
    let mut fields = vec![
        ("session_id".to_string(), Py::Str("9d3c7a10-5b8e-4d2f-a1c6-7e4b2f9d0c15".into())),
        ("data_loaded".to_string(), Py::Bool(stage.is_some())),
        ("tpr_session_id".to_string(), Py::None),
        ("message_count".to_string(), Py::Int(messages)),
    ];
    if let Some(stage) = stage {
        fields.push(("workflow_stage".to_string(), Py::Str(stage.into())));
    }
    dict(&fields)
}

/// A real captured Flask-Session value from `tests/data/flask-session-payloads.txt`.
pub fn payload(name: &str) -> Vec<u8> {
    let text = include_str!("../data/flask-session-payloads.txt");
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(" = ")))
        .unwrap_or_else(|| panic!("no payload {name}"));
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// A 43-character Flask-Session id.
pub fn sid(n: u32) -> String {
    format!("{:0>43}", format!("sid{n}_AbCdEf-gh"))
}

/// Every key with its type and TTL, sorted: what a write test compares before and after.
pub fn keyspace(con: &mut redis::Connection) -> Vec<(String, String, i64)> {
    let keys: Vec<String> = con.scan::<String>().unwrap().map(Result::unwrap).collect();
    let mut out: Vec<(String, String, i64)> = keys
        .into_iter()
        .map(|k| {
            let t: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
            let ttl: i64 = con.ttl(&k).unwrap();
            (k, t, ttl)
        })
        .collect();
    out.sort();
    out
}

/// The setup the binary builds from this command line (`--url URL`, the audit log in `dir`,
/// then `args`).
pub fn setup_for(url: &str, dir: &tempfile::TempDir, args: &[&str]) -> sessiontop::setup::Setup {
    use clap::Parser;
    let audit = audit_path(dir);
    let mut argv = vec!["sessiontop", "--url", url, "--audit-log", audit.to_str().unwrap()];
    argv.extend_from_slice(args);
    let cli = sessiontop::cli::Cli::try_parse_from(argv).unwrap();
    sessiontop::setup::Setup::new(&cli.global).unwrap()
}

/// Collector options for tests: the setup's, polling every `poll`.
pub fn fast(setup: &sessiontop::setup::Setup, poll: std::time::Duration) -> sessiontop::collect::CollectOptions {
    sessiontop::collect::CollectOptions { poll_interval: poll, census_pause: poll, ..setup.collect.clone() }
}

/// Waits until Redis has served `calls` calls of `command` (as `INFO commandstats` names it).
pub fn calls_at_least(con: &mut redis::Connection, command: &str, calls: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if calls_of(con, command) >= calls {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "Redis never served {calls} {command}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The calls of `command` Redis has served (as `INFO commandstats` names it).
pub fn calls_of(con: &mut redis::Connection, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    let stats: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next().and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(0)
}

/// `check --json` (with `extra` before it) and its exit code.
pub fn check(url: &str, dir: &tempfile::TempDir, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = sessiontop(url, dir).args(extra).args(["check", "--json"]).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {} / {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), json)
}

/// The finding of `kind` in a report, if there is one.
pub fn finding<'a>(report: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    report["findings"].as_array().unwrap().iter().find(|f| f["kind"] == kind)
}

/// `check --json --observe DURATION` of `url` with `args` before it, passes 300 ms apart at
/// `--budget 0`, started in the background.
pub fn observing(url: &str, dir: &tempfile::TempDir, args: &[&str], observe: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .env_remove("REDIS_URL")
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .args(["--url", url, "--budget", "0", "--poll-interval", "300ms"])
        .args(args)
        .args(["check", "--json", "--observe", observe])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The exit code and the report of a `check --json` started in the background.
pub fn report_of(child: std::process::Child) -> (i32, serde_json::Value) {
    let out = child.wait_with_output().unwrap();
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), report)
}

/// A free TCP port on loopback (bound and released; the program under test binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` from an HTTP server on loopback: the body of a 200 reply, or `None` while nothing
/// listens or it answers otherwise.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let reply = http_reply(port, path)?;
    if !reply.starts_with("HTTP/1.1 200 OK\r\n") {
        return None;
    }
    Some(reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

fn http_reply(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// `GET /metrics` from sessiontop's endpoint: the page, or `None` while nothing listens.
pub fn scrape(port: u16) -> Option<String> {
    let reply = http_reply(port, "/metrics")?;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: text/plain; version=0.0.4"), "{reply}");
    Some(reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Scrapes until the page has a sample of `metric` whose value is `value` (the endpoint
/// renders once a second).
pub fn scrape_until(port: u16, metric: &str, value: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (prefix, suffix) = (format!("{metric}{{"), format!("}} {value}"));
    loop {
        let page = scrape(port).unwrap_or_default();
        if page.lines().any(|l| l.starts_with(&prefix) && l.ends_with(&suffix)) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "the metrics never showed {metric} {value}:\n{page}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
