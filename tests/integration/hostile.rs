//! Hostile data through every collector and decoder: wrong types for every part of a session,
//! huge, deep and non-UTF-8 values, ids and field names, random and truncated payloads. Each
//! path (the headless commands, and the dashboard's poller and census with the inspector open
//! on every planted session) must answer, bounded, without a panic.

use redis::Commands;

use crate::common::*;

/// Plants one TRT session whose `part` key holds `value` of the given type.
fn plant_wrong_type(con: &mut redis::Connection, id: &str, part: &str, ty: &str) {
    trt_turn(con, "trt:", id, "1.2_problem_and_body", now_epoch() - 20.0, true);
    let key = format!("trt:session:{id}:{part}");
    let _: () = con.del(&key).unwrap();
    let _: () = match ty {
        "string" => con.set(&key, "\u{1b}[2Jnot a hash").unwrap(),
        "list" => con.rpush(&key, &["a", "b"]).unwrap(),
        "set" => con.sadd(&key, &["a", "b"]).unwrap(),
        "zset" => con.zadd(&key, "a", 1).unwrap(),
        _ => con.hset(&key, "f", "v").unwrap(),
    };
}

/// Random bytes from a fixed seed, so a failure can be replayed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn plant_everything(con: &mut redis::Connection) -> (Vec<String>, u32) {
    let mut ids = Vec::new();
    for (part, ty) in [
        ("state", "string"),
        ("state", "list"),
        ("state", "set"),
        ("state", "zset"),
        ("history", "string"),
        ("history", "hash"),
        ("history", "set"),
        ("meta", "list"),
        ("meta", "string"),
    ] {
        let id = format!("wrong_{part}_{ty}");
        plant_wrong_type(con, &id, part, ty);
        ids.push(id);
    }
    // Deep JSON, binary fields, non-UTF-8 field names, a huge number of fields.
    trt_turn(con, "trt:", "deep", "1.1_goal_and_vision", now_epoch() - 10.0, true);
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let _: () = con.hset("trt:session:deep:state", "stage_1_completion", &deep).unwrap();
    let _: () = con.hset("trt:session:deep:state", "current_stage", noise(1, 300)).unwrap();
    let _: () =
        redis::cmd("HSET").arg("trt:session:deep:state").arg(noise(2, 40)).arg(noise(3, 40)).query(con).unwrap();
    for n in 0..3000 {
        let _: () = con.hset("trt:session:deep:meta", format!("f{n}"), n).unwrap();
    }
    let _: () = con.lpush("trt:session:deep:history", noise(4, 5000)).unwrap();
    let _: () = con.lpush("trt:session:deep:history", &deep).unwrap();
    ids.push("deep".into());
    // Index members that are not sessions: a huge one, odd scores, a binary one.
    let _: () = con.zadd("trt:active_sessions", "x".repeat(200_000), now_epoch()).unwrap();
    let _: () = con.zadd("trt:active_sessions", "neg", -1e300).unwrap();
    let _: () = con.zadd("trt:active_sessions", "inf", f64::INFINITY).unwrap();
    let _: () = redis::cmd("ZADD").arg("trt:active_sessions").arg(5).arg(noise(5, 16)).query(con).unwrap();
    // Locks and counters of the wrong type and with binary names.
    let _: () = con.hset("trt:lock:deep", "held", "yes").unwrap();
    let mut counter = b"trt:ratelimit:deep:".to_vec();
    counter.extend(noise(6, 12));
    let _: () = redis::cmd("SET").arg(counter).arg(noise(7, 8)).query(con).unwrap();
    // Flask payloads: random, truncated pickles, a pickle that calls, msgpack claiming gigabytes.
    let mut payloads: Vec<Vec<u8>> = (0..20).map(|n| noise(100 + n, 1 + (n as usize * 37) % 600)).collect();
    let real = payload("pickle_p4_full_0.6.0");
    for cut in [1, 2, 5, real.len() / 2, real.len() - 1] {
        payloads.push(real[..cut].to_vec());
    }
    payloads.push(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idR.".to_vec());
    payloads.push(vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]);
    payloads.push(vec![0xdf, 0xff, 0xff, 0xff, 0xff]);
    payloads.push([vec![0x91; 100_000], vec![0xc0]].concat());
    for (n, p) in payloads.iter().enumerate() {
        flask_set(con, "chatmrpt:", &sid(n as u32), p, 3600);
    }
    (ids, payloads.len() as u32)
}

#[test]
fn hostile_data_through_the_headless_commands() {
    let server = server();
    let mut con = conn(&server);
    let (ids, flask_sessions) = plant_everything(&mut con);
    let dir = tempfile::tempdir().unwrap();
    let url = server.socket_url();

    for args in [&["--layout", "trt", "snapshot", "--json"][..], &["--layout", "trt", "snapshot"]] {
        let out = sessiontop(&url, &dir).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.len() < 256 << 10, "{args:?}: {} bytes", out.stdout.len());
    }
    let snap = json(sessiontop(&url, &dir).args(["--layout", "trt", "snapshot", "--json"]));
    let s = &snap["sessions"];
    let accounted = s["total"].as_u64().unwrap() + s["orphaned"].as_u64().unwrap() + s["vanished"].as_u64().unwrap();
    assert_eq!(accounted, snap["census"]["examined"].as_u64().unwrap(), "the counts add up: {s}");

    for id in &ids {
        for json_flag in [true, false] {
            let mut cmd = sessiontop(&url, &dir);
            cmd.args(["--layout", "trt", "inspect", id]);
            if json_flag {
                cmd.arg("--json");
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(out.stdout.len() < 512 << 10, "{id}: {} bytes", out.stdout.len());
            if !json_flag {
                let text = String::from_utf8(out.stdout).unwrap();
                assert!(!text.contains('\u{1b}'), "{id}: raw escape reached the terminal");
            }
        }
    }
    let out = sessiontop(&url, &dir).args(["--layout", "flask", "--prefix", "chatmrpt:", "snapshot"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for n in 0..flask_sessions {
        let out = sessiontop(&url, &dir)
            .args(["--layout", "flask", "--prefix", "chatmrpt:", "inspect", &sid(n)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{n}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
    }
}

/// The dashboard's collectors on the same store, the inspector opened on each planted session
/// in turn: updates keep coming, the connection is never dropped, nothing panics.
#[test]
fn hostile_data_through_the_dashboards_collectors() {
    use sessiontop::engine::domain::LinkState;
    use sessiontop::engine::msg::Request;
    use sessiontop::engine::msg::Update;
    use sessiontop::engine::names::SessionId;

    let server = server();
    let ids = {
        let mut con = conn(&server);
        plant_everything(&mut con).0
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &["--layout", "trt"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (reports, reconnects, passes) = runtime.block_on(async {
        let (collector, mut updates) = setup.spawn_collectors(fast(&setup, std::time::Duration::from_millis(100)));
        let (mut reports, mut reconnects, mut passes) = (Vec::new(), Vec::new(), 0);
        let mut queue = ids.iter();
        let mut current = queue.next().cloned();
        if let Some(id) = &current {
            let _ = collector.requests.send(Request::Inspect(Some(SessionId::from(id.as_str()))));
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
        while tokio::time::Instant::now() < deadline && current.is_some() {
            let Ok(Some(update)) = tokio::time::timeout(std::time::Duration::from_secs(10), updates.recv()).await
            else {
                break;
            };
            match update {
                Update::Inspect(report) if Some(&report.id) == current.as_deref().map(SessionId::from).as_ref() => {
                    reports.push(report.id.escaped());
                    current = queue.next().cloned();
                    let next = current.as_deref().map(SessionId::from);
                    let _ = collector.requests.send(Request::Inspect(next));
                }
                Update::Link(LinkState::Reconnecting { error, .. }) => reconnects.push(error),
                Update::CensusDone { .. } => passes += 1,
                _ => {}
            }
        }
        (reports, reconnects, passes)
    });
    assert!(reconnects.is_empty(), "{reconnects:?}");
    assert_eq!(reports.len(), ids.len(), "every planted session was inspected: {reports:?}");
    assert!(passes >= 1, "the census finished a pass over it");
}
