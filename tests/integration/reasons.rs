//! Failures keep the server's reason and name the target: a write refused inside `MULTI`, a
//! full server, a TLS mix-up, a user without a password, a file that never ends.

use redis::Commands;
use sessiontop::demo::local_redis::{Listen, LocalRedis, Options};

use crate::common::*;

fn one_line(out: &std::process::Output, code: i32) -> String {
    let stderr = crate::failures::without_warnings(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("sessiontop: ") && !stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_write_refused_inside_multi_keeps_its_reason_and_is_audited() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("nounlink")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .arg("-unlink")
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}?user=nounlink&pass=pw", server.socket_url());
    let out = sessiontop(&url, &dir).args(["delete", "u1", "--yes"]).output().unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("UNLINK denied") && stderr.contains("no permissions"), "the refusal's reason: {stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(con.exists::<_, bool>("trt:session:u1:state").unwrap());
    let audit = std::fs::read_to_string(audit_path(&dir)).unwrap();
    let end: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(end["phase"], "end");
    assert!(end["outcome"].as_str().unwrap().contains("UNLINK denied"), "{end}");
}

#[test]
fn a_full_server_says_so_rather_than_broken_pipe() {
    let server = server_with(&["--maxclients", "1"]);
    let _only = conn(&server);
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["--layout", "trt", "snapshot"]).output().unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("max number of clients reached"), "{stderr}");
    assert!(stderr.contains(&server.socket_url()), "names the target: {stderr}");
}

#[test]
fn rediss_to_a_plain_port_says_so() {
    let server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url().replace("redis://", "rediss://");
    let out = sessiontop(&url, &dir).args(["--tls-insecure", "--connect-timeout", "1s", "snapshot"]).output().unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("use redis://"), "{stderr}");
}

#[test]
fn a_user_without_a_password_authenticates_as_that_user() {
    let server = server_with(&["--requirepass", "defaultpw"]);
    let mut con =
        redis::Client::open(format!("{}?pass=defaultpw", server.socket_url())).unwrap().get_connection().unwrap();
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("watcher")
        .arg("on")
        .arg("nopass")
        .arg("~*")
        .arg("+@read")
        .arg("+@connection")
        .arg("+info")
        .arg("+client")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("locked")
        .arg("on")
        .arg(">secret")
        .arg("+@all")
        .arg("~*")
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&server.socket_url(), &dir).args(["--user", "watcher", "snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1, "authenticated as watcher, not as the default user");
    let out = sessiontop(&server.socket_url(), &dir).args(["--user", "locked", "snapshot"]).output().unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("authentication failed"), "{stderr}");
}

#[test]
fn files_that_never_end_are_refused_at_once() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--password-file", "--config", "--tls-ca"] {
        let url = if flag == "--tls-ca" { "rediss://localhost:1".to_string() } else { server.socket_url() };
        let out = sessiontop(&url, &dir).args([flag, "/dev/zero", "snapshot"]).output().unwrap();
        let stderr = one_line(&out, 1);
        assert!(stderr.contains("larger than"), "{flag}: {stderr}");
    }
    let out = sessiontop(&server.socket_url(), &dir).args(["--layout", "/dev/zero.toml", "snapshot"]).output().unwrap();
    one_line(&out, 1);
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let out = sessiontop("rediss://localhost:1", &dir)
        .args(["--tls-ca", empty.to_str().unwrap(), "snapshot"])
        .output()
        .unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}

#[test]
fn the_audit_log_and_the_log_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("state/sessiontop/audit.log");
    let log = dir.path().join("logs/sessiontop.log");
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .env_remove("REDIS_URL")
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--url", &server.socket_url(), "--audit-log", audit.to_str().unwrap()])
        .args(["--log", log.to_str().unwrap(), "delete", "u1", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&audit), 0o600);
    assert_eq!(mode(audit.parent().unwrap()), 0o700);
    assert_eq!(mode(&log), 0o600);
    assert_eq!(mode(log.parent().unwrap()), 0o700);
}

#[test]
fn a_write_that_times_out_names_the_target() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(3000).arg("WRITE").query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir)
        .args(["--response-timeout", "300ms", "delete", "u1", "--yes"])
        .output()
        .unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("timed out") && stderr.contains(&server.socket_url()), "{stderr}");
}

/// The dashboard's census when the server has no connection left for it: the reason reaches
/// the model (and so the screen), with its retry.
#[test]
fn a_census_without_a_connection_says_why() {
    use sessiontop::engine::msg::Update;
    let server = server_with(&["--maxclients", "2"]);
    {
        let mut con = conn(&server);
        trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    }
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let problem = runtime.block_on(async {
        let (_collector, mut updates) = setup.spawn_collectors(fast(&setup, std::time::Duration::from_millis(100)));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv()).await {
                Ok(Some(Update::CensusBlocked(reason))) => return Some(reason),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        None
    });
    let problem = problem.expect("the census said why it cannot start");
    assert!(problem.contains("max number of clients reached") && problem.contains("retrying in"), "{problem}");
}

/// A store just flushed or restarted after a deploy: the dashboard's collectors report the
/// server, say they are waiting for sessions, and pick the layout up when keys appear.
#[test]
fn an_empty_store_is_watched_until_sessions_appear() {
    use sessiontop::engine::msg::Request;
    use sessiontop::engine::msg::Update;
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (waiting, server_seen, layout) = runtime.block_on(async {
        let (collector, mut updates) = setup.spawn_collectors(fast(&setup, std::time::Duration::from_millis(100)));
        let (mut waiting, mut server_seen, mut layout) = (None, false, None);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline && layout.is_none() {
            let Ok(Some(update)) = tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv()).await else {
                break;
            };
            match update {
                Update::LayoutUnknown { note } if waiting.is_none() => {
                    waiting = Some(note);
                    let mut con = conn(&server);
                    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
                    let _ = collector.requests.send(Request::Refresh);
                }
                Update::Server { .. } => server_seen = true,
                Update::Layout(info) => layout = Some(info.name.clone()),
                _ => {}
            }
        }
        (waiting, server_seen, layout)
    });
    let waiting = waiting.expect("said it is waiting");
    assert!(waiting.contains("empty") && waiting.contains("waiting for sessions"), "{waiting}");
    assert!(server_seen, "the server panel is filled meanwhile");
    assert_eq!(layout.as_deref(), Some("trt"));
}

#[test]
fn small_things_said_right() {
    let server = server();
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now - 5.0, true);
    // A history key of the wrong type, a stage with a bidi override, a Python JSON payload.
    trt_turn(&mut con, "trt:", "odd", "1.1_goal_and_vision", now - 3.0, true);
    let _: () = con.del("trt:session:odd:history").unwrap();
    let _: () = con.hset("trt:session:odd:history", "not", "a list").unwrap();
    let _: () = con.hset("trt:session:odd:state", "current_substate", "evil\u{202e}txt").unwrap();
    let dir = tempfile::tempdir().unwrap();

    // An id with a backslash is escaped once in the message.
    let out = sessiontop(&server.socket_url(), &dir).args(["inspect", "a\\b"]).output().unwrap();
    let stderr = one_line(&out, 1);
    assert!(stderr.contains("no session 'a\\\\b'") && !stderr.contains("a\\\\\\\\b"), "{stderr}");

    for args in [
        &["--db", "-1", "snapshot"][..],
        &["--response-timeout", "0", "snapshot"],
        &["--connect-timeout", "0s", "snapshot"],
        &["--max-value-bytes", "18446744073709551615", "snapshot"],
        &["snapshot", "--limit", "many"],
    ] {
        let out = sessiontop(&server.socket_url(), &dir).args(args).output().unwrap();
        let stderr = one_line(&out, 2);
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
    }

    let report = json(sessiontop(&server.socket_url(), &dir).args(["inspect", "odd", "--json"]));
    assert_eq!(report["history_total"], 0, "a hash is not history: {report}");
    assert_eq!(report["history"], serde_json::json!([]));
    let history_key = report["keys"].as_array().unwrap().iter().find(|k| k["role"] == "history").unwrap();
    assert_eq!(history_key["type"], "hash");
    assert_eq!(
        report["parts"]["trt:session:odd:history"],
        serde_json::json!({"not": "a list"}),
        "shown as the key it is"
    );
    assert!(report["unavailable"].to_string().contains("is a hash, not a list"), "{}", report["unavailable"]);

    // JSON on a terminal carries no raw bidi override from Redis.
    let out = sessiontop(&server.socket_url(), &dir).args(["snapshot", "--json"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{202e}') && text.contains("evil\\u202etxt"), "escaped inside the JSON string");

    // Python's json.dumps with NaN and Infinity is JSON enough.
    flask_set(&mut con, "session:", &sid(9), br#"{"workflow_stage": "uploaded", "score": NaN, "max": Infinity}"#, 600);
    let report = json(sessiontop(&server.socket_url(), &dir).args(["--layout", "flask", "inspect", &sid(9), "--json"]));
    assert_eq!(report["payload_format"], "json");
    assert_eq!(report["state"]["score"], "NaN");
    assert_eq!(report["decode_error"], serde_json::Value::Null);

    // The audit log names a user even where $USER and $LOGNAME are unset.
    let out = sessiontop(&server.socket_url(), &dir)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .args(["delete", "u1", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let audit = std::fs::read_to_string(audit_path(&dir)).unwrap();
    let begin: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert!(!begin["user"].as_str().unwrap().is_empty(), "{begin}");
}
