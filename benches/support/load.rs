//! Loading many sessions into a redis-server fast: the applications' own write commands as
//! RESP, streamed into `redis-cli --pipe`. Shared by the benchmarks (`#[path]`-included).

use std::io::Write;
use std::process::{Command, Stdio};

/// Which application's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Trt,
    Flask,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Trt => "trt",
            Kind::Flask => "flask",
        }
    }
}

/// The TRT workflow, as the demo has it.
const SUBSTATES: [&str; 7] = sessiontop::demo::TRT_SUBSTATES;
const STAGES: [&str; 4] = ["uploaded", "tpr_analysis", "risk_analysis", "analysis_complete"];

pub fn resp(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A ChatMRPT-like Flask-Session 0.8 payload: a msgpack map, about 200 bytes.
fn flask_payload(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    v.push(0x86); // fixmap(6)
    // fixstr up to 31 bytes, str8 beyond.
    let s = |v: &mut Vec<u8>, text: &str| {
        match text.len() {
            n @ 0..=31 => v.push(0xa0 | n as u8),
            n => v.extend_from_slice(&[0xd9, n as u8]),
        }
        v.extend_from_slice(text.as_bytes());
    };
    s(&mut v, "session_id");
    s(&mut v, &format!("{:08x}-4f51-4b7e-9c4a-2d0e8f1a6b3c", n));
    s(&mut v, "workflow_stage");
    s(&mut v, STAGES[n % STAGES.len()]);
    s(&mut v, "data_loaded");
    v.push(0xc3);
    s(&mut v, "message_count");
    v.push((n % 100) as u8);
    s(&mut v, "csv_loaded");
    v.push(0xc2);
    s(&mut v, "upload_type");
    s(&mut v, "tpr_excel");
    v
}

/// The commands that write session `n` as the application does, into `out`.
pub fn session(out: &mut Vec<u8>, kind: Kind, n: usize, now: f64) {
    session_with(&mut |args: &[&[u8]]| resp(out, args), kind, n, now);
}

/// The commands that write session `n` as the application does, each given to `emit`.
pub fn session_with(emit: &mut impl FnMut(&[&[u8]]), kind: Kind, n: usize, now: f64) {
    match kind {
        Kind::Trt => {
            let id = format!("user_{n}");
            let at = now - (n % 86_000) as f64 - (n % 997) as f64 / 1000.0;
            // The application writes its last interaction as naive local time, at the same save
            // as the index score: the two agree.
            let iso = chrono::DateTime::from_timestamp_micros((at * 1e6) as i64)
                .expect("a time in range")
                .with_timezone(&chrono::Local)
                .naive_local()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
                .to_string();
            let state = format!("trt:session:{id}:state");
            let history = format!("trt:session:{id}:history");
            let meta = format!("trt:session:{id}:meta");
            let sub = SUBSTATES[n % SUBSTATES.len()];
            emit(&[
                b"HSET",
                state.as_bytes(),
                b"session_id",
                id.as_bytes(),
                b"current_stage",
                b"stage_1_safety_building",
                b"current_substate",
                sub.as_bytes(),
                b"body_questions_asked",
                b"2",
                b"stage_1_completion",
                br#"{"goal_stated": true, "vision_accepted": true, "problem_identified": false}"#,
                b"last_interaction",
                iso.as_bytes(),
                b"created_at",
                iso.as_bytes(),
            ]);
            emit(&[b"EXPIRE", state.as_bytes(), b"86400"]);
            emit(&[b"ZADD", b"trt:active_sessions", format!("{at:.6}").as_bytes(), id.as_bytes()]);
            let entry = format!(
                r#"{{"client_input": "turn", "therapist_response": "reply", "navigation_decision": "explore_problem", "current_substate": "{sub}", "timestamp": "{iso}"}}"#
            );
            emit(&[b"LPUSH", history.as_bytes(), entry.as_bytes()]);
            emit(&[b"LTRIM", history.as_bytes(), b"0", b"49"]);
            emit(&[b"EXPIRE", history.as_bytes(), b"86400"]);
            // The meta hash is written on a session's first turn; a few sessions never had one.
            if n.is_multiple_of(2) {
                emit(&[b"HSET", meta.as_bytes(), b"created_at", iso.as_bytes(), b"created_via", b"input_endpoint"]);
                emit(&[b"EXPIRE", meta.as_bytes(), b"86400"]);
            }
        }
        Kind::Flask => {
            let key = format!("chatmrpt:{:0>43}", format!("s{n}_AbCdEfGhIjKlMnOp"));
            let ttl = (86_400 - (n % 86_000)).to_string();
            emit(&[b"SET", key.as_bytes(), &flask_payload(n), b"EX", ttl.as_bytes()]);
        }
    }
}

/// Loads `sessions` sessions into a cluster: each command through `redis-cli --pipe` to the
/// primary that serves its key's slot (`owner` gives the index into `ports` of a slot's).
pub fn load_cluster(ports: &[u16], owner: impl Fn(u16) -> usize, kind: Kind, sessions: usize) {
    let mut children: Vec<std::process::Child> = ports
        .iter()
        .map(|port| {
            Command::new("redis-cli")
                .args(["-p", &port.to_string(), "--pipe"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-cli (Debian: apt-get install redis-tools) for loading")
        })
        .collect();
    let mut stdins: Vec<_> = children.iter_mut().map(|c| c.stdin.take().unwrap()).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut bufs: Vec<Vec<u8>> = ports.iter().map(|_| Vec::with_capacity(4 << 20)).collect();
    for n in 0..sessions {
        session_with(
            &mut |args: &[&[u8]]| {
                let node = owner(sessiontop::conn::slot::of(args[1]));
                resp(&mut bufs[node], args);
            },
            kind,
            n,
            now,
        );
        for (buf, stdin) in bufs.iter_mut().zip(&mut stdins) {
            if buf.len() > 4 << 20 {
                stdin.write_all(buf).unwrap();
                buf.clear();
            }
        }
    }
    for (buf, mut stdin) in bufs.into_iter().zip(stdins) {
        stdin.write_all(&buf).unwrap();
        drop(stdin.flush());
    }
    for mut child in children {
        assert!(child.wait().unwrap().success(), "redis-cli --pipe failed");
    }
}

/// Loads `sessions` sessions into the server on `port` through `redis-cli --pipe`.
pub fn load(port: u16, kind: Kind, sessions: usize) {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli (Debian: apt-get install redis-tools) for loading");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut stdin = child.stdin.take().unwrap();
    let mut buf = Vec::with_capacity(8 << 20);
    for n in 0..sessions {
        session(&mut buf, kind, n, now);
        if buf.len() > 4 << 20 {
            stdin.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    stdin.write_all(&buf).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "redis-cli --pipe failed");
}
