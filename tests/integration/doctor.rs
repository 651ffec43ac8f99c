//! `sessiontop doctor` against a real redis-server and real ACL users: it names what a narrow
//! user lacks and what each costs, and the ACL it suggests, applied to a fresh user, lets every
//! read (and, in the write variant, every write) work without one refusal in `ACL LOG`.

use std::process::Command;

use redis::Commands;

use crate::common::*;

/// The binary as `user` (password `pw`) on `server`'s socket.
fn as_user(server: &sessiontop::demo::local_redis::LocalRedis, user: &str, dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sessiontop"));
    cmd.env_remove("REDIS_URL")
        .env_remove("REDISCLI_AUTH")
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .args(["--url", &format!("redis+unix://{}?pass=pw", server.socket_path().display()), "--user", user])
        .arg("--audit-log")
        .arg(audit_path(dir))
        .args(["--layout", "trt"]);
    cmd
}

/// Applies a suggested `ACL SETUSER sessiontop on >CHANGE-ME …` as user `name` with password
/// `pw`, word for word.
fn apply(con: &mut redis::Connection, rule: &str, name: &str) {
    let words: Vec<String> = rule
        .split_whitespace()
        .map(|w| match w {
            "sessiontop" => name.to_string(),
            ">CHANGE-ME" => ">pw".to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(&words[..2], ["ACL", "SETUSER"], "{rule}");
    let mut cmd = redis::cmd("ACL");
    for w in &words[1..] {
        cmd.arg(w);
    }
    let _: () = cmd.query(con).unwrap_or_else(|e| panic!("{rule}: {e}"));
}

/// What `ACL LOG` holds: each refusal's user, reason and object; but the one `CONFIG GET` each
/// watch asks at start to learn whether session events are on (left out of the suggested rules
/// on purpose: it would read the whole configuration; refused, it is not asked again).
fn refusals(con: &mut redis::Connection) -> Vec<String> {
    let all = all_refusals(con);
    let config: Vec<&String> = all.iter().filter(|r| r.contains("object=config|get")).collect();
    assert!(config.iter().all(|r| r.contains("count=int(1)")), "CONFIG GET asked again: {config:?}");
    all.into_iter().filter(|r| !r.contains("object=config|get")).collect()
}

fn all_refusals(con: &mut redis::Connection) -> Vec<String> {
    let log: Vec<redis::Value> = redis::cmd("ACL").arg("LOG").query(con).unwrap();
    log.iter()
        .map(|entry| {
            let redis::Value::Array(fields) = entry else { return format!("{entry:?}") };
            let text = |v: &redis::Value| match v {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            };
            fields.chunks(2).map(|kv| format!("{}={}", text(&kv[0]), text(&kv[1]))).collect::<Vec<_>>().join(" ")
        })
        .collect()
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn doctor_names_what_a_narrow_user_lacks_and_its_acl_lets_every_read_and_write_work() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    for (i, id) in ["alpha_user", "bravo_user", "charlie_user"].into_iter().enumerate() {
        trt_turn(&mut con, "trt:", id, "1.2_problem_and_body", now - 30.0 * (i as f64 + 1.0), true);
    }
    let minute = (now as u64 / 60).to_string();
    let _: () = con.set_ex("trt:lock:alpha_user", "1", 30).unwrap();
    let _: () = con.incr(format!("trt:ratelimit:alpha_user:{minute}"), 1).unwrap();
    let _: () = con.zadd("trt:active_sessions", "gone_user", now - 600.0).unwrap();
    apply(
        &mut con,
        "ACL SETUSER sessiontop on >CHANGE-ME ~trt:* resetchannels -@all +ping +info +scan +type +pttl +hmget \
         +zrangebyscore +zrevrange +zcard +exists +llen +lrange +hlen +zscore +acl|whoami",
        "narrow",
    );
    let dir = tempfile::tempdir().unwrap();

    // The narrow user: each missing command named with what it costs.
    let (code, stdout, stderr) = run(as_user(&server, "narrow", &dir).args(["doctor", "--json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["user"], "narrow");
    assert!(report["verdict"].as_str().is_some_and(|v| v.starts_with("WARNING")), "{report}");
    let permission = |name: &str| -> serde_json::Value {
        report["permissions"].as_array().unwrap().iter().find(|p| p["command"] == name).cloned().unwrap_or_default()
    };
    for denied in ["memory|usage", "dbsize", "client|list", "hstrlen", "getrange"] {
        let p = permission(denied);
        assert_eq!(p["allowed"], false, "{denied}: {p}");
        assert!(p["costs"].as_str().is_some_and(|c| !c.is_empty()), "{p}");
        assert!(p["said"].as_str().is_some_and(|s| s.contains("denied")), "{p}");
    }
    for allowed in ["hmget", "zrangebyscore", "pttl", "scan"] {
        assert_eq!(permission(allowed)["allowed"], true, "{allowed}");
    }
    // The narrow user may not ask ACL DRYRUN: its writes were tried as no-ops, and refused.
    assert_eq!(permission("unlink")["allowed"], false);
    assert_eq!(permission("unlink")["how"], "tried");
    let (_, text, _) = run(as_user(&server, "narrow", &dir).arg("doctor"));
    assert!(
        text.lines().any(|l| l.contains("DENIED") && l.contains("MEMORY|USAGE") && l.contains("oversized")),
        "{text}"
    );
    // What sessiontop needs, the narrow user's gaps among it: session events' one channel too.
    let needed =
        "ACL SETUSER sessiontop on >CHANGE-ME resetkeys ~trt:* resetchannels &__keyspace@0__:trt:* -@all +ping";
    assert!(text.contains(needed), "{text}");
    assert_eq!(permission("psubscribe")["allowed"], false);
    // The no-op writes changed nothing.
    assert_eq!(keyspace(&mut con).len(), 3 * 3 + 3, "{:?}", keyspace(&mut con));

    // The read-only rule, applied to a fresh user: every read works, and nothing is refused.
    let read_only = report["acl_read_only"].as_str().unwrap().to_string();
    let with_writes = report["acl_with_writes"].as_str().unwrap().to_string();
    assert!(!read_only.contains("+unlink") && with_writes.contains("+unlink") && with_writes.contains("+multi"));
    apply(&mut con, &read_only, "reader");
    let _: () = redis::cmd("ACL").arg("LOG").arg("RESET").query(&mut con).unwrap();
    let (code, stdout, stderr) = run(as_user(&server, "reader", &dir).args(["snapshot", "--json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let snapshot: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(snapshot["sessions"]["total"], 3, "{snapshot}");
    assert_eq!(snapshot["sessions"]["orphaned"], 1, "{snapshot}");
    let (code, _, stderr) = run(as_user(&server, "reader", &dir).args(["inspect", "alpha_user", "--json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = run(as_user(&server, "reader", &dir).args(["check", "--json"]));
    assert!(matches!(code, Some(0 | 1)), "{stdout}{stderr}");
    // The dashboard's collectors too (the server poll, the clients, the page), as serve runs them.
    let port = free_port().to_string();
    let url = format!("redis+unix://{}?pass=pw", server.socket_path().display());
    let mut serving = crate::serve::Serving::start(&url, &dir, &["--user", "reader", "--metrics-listen", &port]);
    serving.wait_for("connected", |v| v["event"] == "connected");
    // A census pass done means server polls done, and the first of them lists the clients.
    scrape_until(port.parse().unwrap(), "sessiontop_live_sessions", "3");
    let (status, _) = serving.terminate();
    assert!(status.success());
    assert_eq!(refusals(&mut con), Vec::<String>::new(), "the read-only rule refused a read");
    // The doctor itself finds nothing missing for reading (its own probes of what it may not
    // do, the writes, are refused, as they should be).
    let (code, stdout, _) = run(as_user(&server, "reader", &dir).args(["doctor", "--json"]));
    let again: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(code, Some(0), "{again}");
    assert!(again["verdict"].as_str().is_some_and(|v| v.contains("writes will be refused")), "{again}");
    // Its writes are refused by the server, as they should be.
    let (code, _, stderr) = run(as_user(&server, "reader", &dir).args(["expire", "alpha_user", "600"]));
    assert_eq!(code, Some(1), "{stderr}");
    let _: () = redis::cmd("ACL").arg("LOG").arg("RESET").query(&mut con).unwrap();

    // The rule with writes: expire, delete and a fix go through, and nothing is refused.
    apply(&mut con, &with_writes, "writer");
    let (code, _, stderr) = run(as_user(&server, "writer", &dir).args(["expire", "alpha_user", "600"]));
    assert_eq!(code, Some(0), "{stderr}");
    let ttl: i64 = con.ttl("trt:session:alpha_user:state").unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    let (code, _, stderr) = run(as_user(&server, "writer", &dir).args(["delete", "bravo_user", "--yes"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!con.exists::<_, bool>("trt:session:bravo_user:state").unwrap());
    let (code, _, stderr) = run(as_user(&server, "writer", &dir).args(["fix", "orphaned", "--yes"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(con.zscore::<_, _, Option<f64>>("trt:active_sessions", "gone_user").unwrap(), None);
    assert_eq!(refusals(&mut con), Vec::<String>::new(), "the rule with writes refused something");
}

#[test]
fn doctor_as_a_full_user_asks_acl_dryrun_for_writes_and_says_ok() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "alpha_user", "1.1_goal_and_vision", now_epoch(), true);
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["doctor", "--json"]).output().unwrap();
    let (code, stdout, stderr) =
        (out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["layout"].as_str().is_some_and(|l| l.starts_with("trt, prefix 'trt:'")), "{report}");
    assert_eq!(report["server"]["kind"], "standalone");
    assert!(report["round_trip_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{report}");
    let writes: Vec<&serde_json::Value> =
        report["permissions"].as_array().unwrap().iter().filter(|p| p["write"] == true).collect();
    assert!(writes.len() >= 6 && writes.iter().all(|p| p["how"] == "acl dryrun" && p["allowed"] == true), "{writes:?}");
}
