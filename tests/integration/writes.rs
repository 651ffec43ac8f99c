//! `expire`, `persist` and `delete` change exactly the session's keys and index entry; under
//! `--read-only` nothing changes; every write is in the audit log.

use redis::Commands;

use crate::common::*;

/// Keys of other sessions and applications must come out of a write as they went in.
fn others(con: &mut redis::Connection, session: &str) -> Vec<(String, String, bool)> {
    keyspace(con).into_iter().filter(|(k, _, _)| !k.contains(session)).map(|(k, t, ttl)| (k, t, ttl >= 0)).collect()
}

fn fill(con: &mut redis::Connection) {
    let now = now_epoch();
    trt_turn(con, "trt:", "target", "1.2_problem_and_body", now - 60.0, true);
    trt_turn(con, "trt:", "bystander", "1.2_problem_and_body", now - 60.0, true);
    let _: () = con.set("trt:lock:target", "token").unwrap();
    let _: () = con.set_ex("trt:ratelimit:target:29000001", 4, 60).unwrap();
    let _: () = con.set_ex("trt:ratelimit:bystander:29000001", 1, 60).unwrap();
}

#[test]
fn expire_and_persist_change_only_the_sessions_own_keys() {
    let server = server();
    let mut con = conn(&server);
    fill(&mut con);
    let before = others(&mut con, "target");
    let dir = tempfile::tempdir().unwrap();

    let out = sessiontop(&server.socket_url(), &dir).args(["expire", "target", "120"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("expired session 'target': 3 keys"), "{text}");
    for part in ["state", "history", "meta"] {
        let ttl: i64 = con.ttl(format!("trt:session:target:{part}")).unwrap();
        assert!((115..=120).contains(&ttl), "{part}: {ttl}");
    }
    assert_eq!(con.ttl::<_, i64>("trt:lock:target").unwrap(), -1, "locks are not given the session's TTL");
    assert!(con.ttl::<_, i64>("trt:ratelimit:target:29000001").unwrap() <= 60);
    let score: Option<f64> = con.zscore("trt:active_sessions", "target").unwrap();
    assert!(score.is_some(), "expire leaves the index entry, as the application's own expiry does");

    let out = sessiontop(&server.socket_url(), &dir).args(["persist", "target"]).output().unwrap();
    assert!(out.status.success());
    for part in ["state", "history", "meta"] {
        assert_eq!(con.ttl::<_, i64>(format!("trt:session:target:{part}")).unwrap(), -1);
    }
    assert!(con.ttl::<_, i64>("trt:ratelimit:target:29000001").unwrap() > 0, "counters keep expiring");
    assert_eq!(others(&mut con, "target"), before);

    let audit = std::fs::read_to_string(audit_path(&dir)).unwrap();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "a begin and an end line per write");
    assert_eq!(lines[0]["phase"], "begin");
    assert_eq!(lines[0]["action"], "expire");
    assert_eq!(lines[0]["seconds"], 120);
    assert_eq!(lines[1]["phase"], "end");
    assert_eq!(lines[3]["action"], "persist");
    assert_eq!(lines[3]["session"], "target");
}

#[test]
fn delete_removes_every_key_and_the_index_entry_atomically() {
    let server = server();
    let mut con = conn(&server);
    fill(&mut con);
    let before = others(&mut con, "target");
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "target", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("deleted session 'target': 5 keys and its index entry"), "{text}");
    let left: Vec<String> = con.scan_match::<_, String>("*target*").unwrap().map(Result::unwrap).collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(con.zscore::<_, _, Option<f64>>("trt:active_sessions", "target").unwrap(), None);
    assert_eq!(others(&mut con, "target"), before, "nothing else changed");
    let audit = std::fs::read_to_string(audit_path(&dir)).unwrap();
    assert!(audit.contains("\"action\":\"delete\"") && audit.contains("trt:lock:target"), "{audit}");

    // Deleting it again finds nothing.
    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "target", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session 'target'"));
}

#[test]
fn delete_of_an_orphan_removes_its_index_entry() {
    let server = server();
    let mut con = conn(&server);
    fill(&mut con);
    let _: () = con.zadd("trt:active_sessions", "ghost", 1.0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "ghost", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("deleted session 'ghost': 0 keys and its index entry"));
    assert_eq!(con.zcard::<_, u64>("trt:active_sessions").unwrap(), 2);
}

#[test]
fn flask_delete_takes_the_flag_keys_beside_the_session() {
    let server = server();
    let mut con = conn(&server);
    let p = "chatmrpt:";
    flask_set(&mut con, p, &sid(1), &chatmrpt_msgpack(Some("analysis_complete"), 2), 86_400);
    flask_set(&mut con, p, &sid(2), &chatmrpt_msgpack(Some("analysis_complete"), 2), 86_400);
    let _: () = con.set_ex(format!("{p}analysis_complete:{}", sid(1)), "1", 86_400).unwrap();
    let _: () = con.set_ex(format!("{p}custom:itn_parameters:{}", sid(1)), "{}", 86_400).unwrap();
    let _: () = con.set_ex(format!("{p}analysis_complete:{}", sid(2)), "1", 86_400).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir)
        .args(["--layout", "flask", "--prefix", p, "delete", &sid(1), "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut left: Vec<String> = con.scan::<String>().unwrap().map(Result::unwrap).collect();
    left.sort();
    assert_eq!(left, vec![format!("{p}{}", sid(2)), format!("{p}analysis_complete:{}", sid(2))]);
}

#[test]
fn read_only_changes_nothing_and_exits_2() {
    let server = server();
    let mut con = conn(&server);
    fill(&mut con);
    let before = keyspace(&mut con);
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--read-only", "expire", "target", "5"],
        vec!["--read-only", "persist", "target"],
        vec!["--read-only", "delete", "target", "--yes"],
    ] {
        let out = sessiontop(&server.socket_url(), &dir).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1);
        assert!(stderr.contains("read-only"), "{stderr}");
    }
    let after = keyspace(&mut con);
    let same = before.len() == after.len()
        && before.iter().zip(&after).all(|(b, a)| b.0 == a.0 && b.1 == a.1 && (b.2 - a.2).abs() <= 2);
    assert!(same, "{before:?}\n{after:?}");
    assert!(!audit_path(&dir).exists(), "nothing was attempted");

    // A target marked read-only in the config is read-only without the flag.
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[targets.prod]\nurl = \"{}\"\nread_only = true\n", server.socket_url())).unwrap();
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sessiontop"));
    cmd.env_remove("REDIS_URL")
        .args(["--config", config.to_str().unwrap(), "--target", "prod", "--audit-log"])
        .arg(audit_path(&dir))
        .args(["delete", "target", "--yes"]);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(con.exists::<_, bool>("trt:session:target:state").unwrap());
}

#[test]
fn delete_without_yes_refuses_when_stdin_is_not_a_terminal() {
    let server = server();
    let mut con = conn(&server);
    fill(&mut con);
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["delete", "target"]).write_stdin("y\n").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin is not a terminal"));
    assert!(con.exists::<_, bool>("trt:session:target:state").unwrap());
}

#[test]
fn ids_that_begin_with_a_dash_are_ids_and_expire_takes_the_dialogs_durations() {
    // `secrets.token_urlsafe` gives one Flask-Session id in 64 a leading `-`.
    let server = server();
    let mut con = conn(&server);
    let (id, other) = ("-yVjY1aQ2w", "bystander");
    flask_set(&mut con, "chatmrpt:", id, &chatmrpt_msgpack(Some("tpr_analysis"), 3), 86_400);
    flask_set(&mut con, "chatmrpt:", other, &chatmrpt_msgpack(Some("tpr_analysis"), 3), 86_400);
    let dir = tempfile::tempdir().unwrap();
    let layout = ["--layout", "flask", "--prefix", "chatmrpt:"];
    let inspect = json(sessiontop(&server.socket_url(), &dir).args(layout).args(["inspect", id, "--json"]));
    assert_eq!(inspect["id"], id);
    assert_eq!(inspect["session"]["stage"], "tpr_analysis", "{inspect}");

    let out = sessiontop(&server.socket_url(), &dir).args(layout).args(["expire", id, "15m"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ttl: i64 = con.ttl(format!("chatmrpt:{id}")).unwrap();
    assert!((895..=900).contains(&ttl), "15m is 900 s: {ttl}");
    let out = sessiontop(&server.socket_url(), &dir).args(layout).args(["expire", id, "90"]).output().unwrap();
    assert!(out.status.success(), "a bare number is seconds");
    assert!(con.ttl::<_, i64>(format!("chatmrpt:{id}")).unwrap() <= 90);
    for bad in ["0", "soon"] {
        let out = sessiontop(&server.socket_url(), &dir).args(layout).args(["expire", id, bad]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: a usage error");
    }

    let out = sessiontop(&server.socket_url(), &dir).args(layout).args(["delete", id, "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!con.exists::<_, bool>(format!("chatmrpt:{id}")).unwrap());
    assert!(con.exists::<_, bool>(format!("chatmrpt:{other}")).unwrap(), "only that session");
}

#[test]
fn a_bare_budget_other_than_0_is_refused_naming_both_forms() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["--budget", "1", "snapshot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1% (a share of one Redis core) or 1/s (commands a second)"), "{err}");
    assert!(err.contains("--budget"), "{err}");
}
