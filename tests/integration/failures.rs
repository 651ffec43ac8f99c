//! Bad input ends in one clear line and a non-zero exit; a denied or unknown command costs one
//! field, not the run.

use redis::Commands;

use crate::common::*;

/// Runs the binary and checks the failure is one clean line: no panic, no backtrace.
fn fails(cmd: &mut assert_cmd::Command, code: i32) -> String {
    let out = cmd.env("RUST_BACKTRACE", "1").output().unwrap();
    let stderr = without_warnings(&String::from_utf8(out.stderr).unwrap());
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(stderr.starts_with("sessiontop: "), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
    assert!(out.stdout.is_empty());
    stderr
}

/// Stderr without the warning a password typed in `--url` earns (said once, on its own line).
pub fn without_warnings(stderr: &str) -> String {
    stderr.lines().filter(|l| !l.starts_with("sessiontop: warning:")).map(|l| format!("{l}\n")).collect()
}

fn bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_sessiontop"));
    cmd.env_remove("REDIS_URL").env_remove("REDISCLI_AUTH");
    cmd
}

#[test]
fn bad_urls_are_named_without_their_password() {
    for (url, expect) in [
        ("redis://user:hunter2@localhost:notaport", "invalid Redis URL 'redis://user:***@localhost:notaport'"),
        ("http://user:hunter2@localhost", "unsupported scheme 'http'"),
        ("localhost:6379", "unsupported scheme 'localhost'"),
        ("redis://:hunter2@host/notadb", "invalid Redis URL"),
    ] {
        let stderr = fails(bin().args(["--url", url, "snapshot"]), 1);
        assert!(stderr.contains(expect), "{url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn a_password_typed_in_the_url_is_warned_about_once_and_never_shown() {
    let server = server_with(&["--requirepass", "hunter2"]);
    let url = format!("{}?pass=hunter2", server.socket_url());
    let out = bin().args(["--url", &url, "--layout", "trt", "snapshot", "--json"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sessiontop: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("--password-file") && warnings[0].contains("REDISCLI_AUTH"), "{stderr}");
    assert!(!stderr.contains("hunter2"));
    let out = bin()
        .env("REDISCLI_AUTH", "hunter2")
        .args(["--url", &server.socket_url(), "--layout", "trt", "snapshot"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8(out.stderr).unwrap().contains("warning"), "a password from the environment: no warning");
}

#[test]
fn a_refused_connection_is_one_line() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let stderr = fails(bin().args(["--url", &url, "snapshot"]), 1);
    assert!(stderr.contains(&format!("cannot connect to redis://:***@127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn a_server_that_went_away_is_one_line() {
    let mut server = server();
    let url = server.socket_url();
    server.stop();
    let stderr = fails(bin().args(["--url", &url, "snapshot"]), 1);
    assert!(stderr.contains("cannot connect to redis+unix://"), "{stderr}");
}

#[test]
fn a_wrong_password_is_named_and_never_echoed() {
    let server = server_with(&["--requirepass", "right-password"]);
    let dir = tempfile::tempdir().unwrap();
    let wrong = format!("redis+unix://{}?pass=wrong-password", server.socket_path().display());
    let stderr = fails(bin().args(["--url", &wrong, "snapshot"]), 1);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong-password") && !stderr.contains("right-password"), "{stderr}");

    // The right password from a file, from $REDISCLI_AUTH, and none at all.
    let file = dir.path().join("pw");
    std::fs::write(&file, "right-password\n").unwrap();
    let mut con =
        redis::Client::open(format!("{}?pass=right-password", server.socket_url())).unwrap().get_connection().unwrap();
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let ok = bin()
        .args(["--url", &server.socket_url(), "--password-file", file.to_str().unwrap(), "snapshot"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let ok = bin()
        .env("REDISCLI_AUTH", "right-password")
        .args(["--url", &server.socket_url(), "snapshot"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let stderr = fails(bin().args(["--url", &server.socket_url(), "snapshot"]), 1);
    assert!(stderr.contains("authentication failed") || stderr.contains("NOAUTH"), "{stderr}");
    let stderr =
        fails(bin().args(["--url", &server.socket_url(), "--password-file", "/nonexistent/pw", "snapshot"]), 1);
    assert!(stderr.contains("cannot read password file /nonexistent/pw"), "{stderr}");
}

#[test]
fn unknown_session_ids_and_usage_errors() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["inspect", "nobody"][..],
        &["expire", "nobody", "10"],
        &["persist", "nobody"],
        &["delete", "nobody", "--yes"],
    ] {
        let stderr = fails(sessiontop(&server.socket_url(), &dir).args(cmd), 1);
        assert!(stderr.contains("no session 'nobody'"), "{stderr}");
    }
    let out = sessiontop(&server.socket_url(), &dir).args(["expire", "u1", "-5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let stderr = fails(sessiontop(&server.socket_url(), &dir).args(["--layout", "/nonexistent.toml", "snapshot"]), 1);
    assert!(stderr.contains("cannot read layout file /nonexistent.toml"), "{stderr}");
}

#[test]
fn renamed_config_and_a_user_without_memory_degrade_one_field() {
    // ElastiCache disables CONFIG; sessiontop never needs it.
    let server = server_with(&["--rename-command", "CONFIG", ""]);
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch() - 30.0, true);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("dash")
        .arg("on")
        .arg(">dashpw")
        .arg("~*")
        .arg("+@read")
        .arg("+info")
        .arg("+dbsize")
        .arg("+ping")
        .arg("+scan")
        .arg("-memory")
        .query(&mut con)
        .unwrap();
    let url = format!("{}?user=dash&pass=dashpw", server.socket_url());
    let dir = tempfile::tempdir().unwrap();
    let snap = json(sessiontop(&url, &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1);
    assert_eq!(snap["sessions"]["items"][0]["memory_bytes"], serde_json::Value::Null);
    let unavailable = snap["sessions"]["unavailable"].as_array().unwrap();
    assert!(unavailable.iter().any(|u| u.as_str().unwrap().starts_with("MEMORY USAGE denied")), "{unavailable:?}");
    assert!(snap["server"]["used_memory_bytes"].as_u64().is_some());
    let report = json(sessiontop(&url, &dir).args(["inspect", "u1", "--json"]));
    assert_eq!(report["keys"][0]["memory_bytes"], serde_json::Value::Null);
    assert_eq!(report["state"]["current_substate"], "1.1_goal_and_vision");
}

#[test]
fn a_user_without_info_still_sees_sessions() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("noinfo")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@read")
        .arg("+scan")
        .arg("-info")
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap =
        json(sessiontop(&format!("{}?user=noinfo&pass=pw", server.socket_url()), &dir).args(["snapshot", "--json"]));
    assert_eq!(snap["sessions"]["total"], 1);
    assert_eq!(snap["server"]["redis_version"], serde_json::Value::Null, "unknown, not invented");
    let unavailable = snap["server"]["unavailable"].as_array().unwrap();
    assert!(unavailable.iter().any(|u| u.as_str().unwrap().starts_with("INFO denied")), "{unavailable:?}");
    // CLIENT LIST is not @read either: the clients are one field that says so.
    let clients = &snap["clients"];
    assert_eq!(clients["hosts"], serde_json::json!([]), "{clients}");
    let why = clients["unavailable"].as_str().unwrap_or_default();
    assert!(why.starts_with("CLIENT LIST: ") && why.contains("denied"), "{clients}");
}

#[test]
fn noperm_on_the_session_keys_is_one_line() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch(), true);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("other")
        .arg("on")
        .arg(">pw")
        .arg("~other:*")
        .arg("+@all")
        .query(&mut con)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}?user=other&pass=pw", server.socket_url());
    let stderr = fails(sessiontop(&url, &dir).args(["--layout", "trt", "snapshot"]), 1);
    assert!(stderr.contains("denied"), "{stderr}");
    let stderr = fails(sessiontop(&url, &dir).args(["--layout", "trt", "delete", "u1", "--yes"]), 1);
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(con.exists::<_, bool>("trt:session:u1:state").unwrap());
}

#[test]
fn old_spellings_of_flags_and_config_still_work() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "u1", "1.1_goal_and_vision", now_epoch() - 3600.0, true);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "default_target = \"t\"\n[keys]\nquit = [\"x\"]\n[targets.t]\nurl = \"{}\"\nschema = \"trt\"\n",
            server.socket_url()
        ),
    )
    .unwrap();
    let out = bin()
        .args(["--config", config.to_str().unwrap(), "--stuck-after", "10m", "snapshot", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["layout"]["kind"], "trt");
    assert_eq!(snap["layout"]["detection"], serde_json::Value::Null, "given in the config, not detected");
    assert_eq!(snap["sessions"]["stalled_after_seconds"], 600);
    assert_eq!(snap["sessions"]["stalled"], 1);
    let out = bin().args(["--url", &server.socket_url(), "--schema", "flask", "snapshot", "--json"]).output().unwrap();
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["layout"]["kind"], "flask");
}

#[test]
fn several_targets_are_for_the_dashboard_and_a_command_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop("prod=redis://127.0.0.1:1", &dir)
        .args(["--url", "staging=redis://127.0.0.1:2", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 targets given") && err.contains("a command takes one") && err.lines().count() == 1,
        "{err}"
    );
}

/// When Redis is away is when an on-call engineer most needs to see whether the application's
/// host is alive: the host is sampled on its own tick, whatever the link does, so the host line
/// keeps updating through an outage.
#[test]
fn the_host_line_keeps_updating_while_redis_is_away() {
    use sessiontop::engine::domain::LinkState;
    let mut server = server();
    let dir = tempfile::tempdir().unwrap();
    let setup = setup_for(&server.socket_url(), &dir, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (samples_while_away, still_away) = runtime.block_on(async {
        let poll = std::time::Duration::from_millis(100);
        let (_collector, mut updates) = setup.spawn_collectors(fast(&setup, poll));
        let (host_task, mut host) = sessiontop::collect::host::spawn(Vec::new(), poll);
        let now = sessiontop::collect::now_millis;
        let mut model =
            sessiontop::engine::model::Model::new(setup.first().info.clone(), setup.model_settings(), now());
        let host_samples = |m: &sessiontop::engine::model::Model| {
            m.history.get("host_memory").map_or(0, |h| h.recent(usize::MAX).len())
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut away_since: Option<(usize, tokio::time::Instant)> = None;
        let mut stopped = false;
        while tokio::time::Instant::now() < deadline {
            let update = tokio::select! {
                Some(u) = updates.recv() => u,
                Some(u) = host.recv() => u,
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => break,
            };
            model.tick(now(), 0);
            model.apply(update);
            let connected = matches!(model.link, LinkState::Connected { .. });
            if connected && model.host.is_some() && !stopped {
                // Redis goes away under an open dashboard.
                server.stop();
                stopped = true;
            }
            if stopped && !connected && away_since.is_none() {
                away_since = Some((host_samples(&model), tokio::time::Instant::now()));
            }
            if let Some((_, since)) = away_since
                && since.elapsed() >= std::time::Duration::from_millis(1500)
            {
                break;
            }
        }
        host_task.abort();
        let (before, _) = away_since.expect("the outage was seen");
        (host_samples(&model) - before, !matches!(model.link, LinkState::Connected { .. }))
    });
    assert!(still_away, "Redis stayed away");
    assert!(samples_while_away >= 5, "the host was sampled {samples_while_away} times in 1.5 s of outage");
}

#[test]
fn a_server_that_takes_the_connection_but_answers_nothing_fails_within_the_connect_timeout() {
    use sessiontop::demo::local_redis::{Listen, LocalRedis, Options};
    let server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap();
    let mut con = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    // Every client's commands wait (the paused server still accepts connections).
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(6_000).arg("ALL").query(&mut con).unwrap();
    let started = std::time::Instant::now();
    let err = fails(bin().args(["--url", &server.url(), "--connect-timeout", "1s", "snapshot"]), 1);
    let took = started.elapsed();
    assert!(err.contains("no answer within the connect timeout of 1s"), "{err}");
    // Bounded by the connect timeout, not by the response timeout (10 s) nor by the pause
    // (6 s): waiting on either would take longer than this.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}
