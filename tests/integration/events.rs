//! Session events against a real redis-server: `sessiontop events` tails what the application
//! does to sessions (created, saved, expired, deleted), filtered to the layout's keys; where
//! the server does not send them it says how to turn them on and changes nothing; and the
//! dashboard's collectors (run by `serve`) read a session saved between census passes.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;

use crate::common::*;

/// Waits until someone subscribes to a pattern on the server (the tail is listening).
fn wait_for_subscriber(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis::cmd("PUBSUB").arg("NUMPAT").query::<i64>(con).unwrap() == 0 {
        assert!(Instant::now() < deadline, "nobody subscribed");
        std::thread::yield_now();
    }
}

#[test]
fn events_tails_what_happens_to_sessions() {
    let server = server_with(&["--notify-keyspace-events", "Kg$hlzxen"]);
    let mut con = conn(&server);
    let now = now_epoch();
    trt_turn(&mut con, "trt:", "alpha_user", "1.1_goal_and_vision", now, true);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .env_remove("REDIS_URL")
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--url", &server.socket_url(), "--layout", "trt", "events", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    wait_for_subscriber(&mut con);
    // A new user's first turn; another turn of alpha; alpha's state expires; bravo's is
    // deleted; keys that are not sessions' (a lock, another application's) are not said.
    trt_turn(&mut con, "trt:", "bravo_user", "1.1_goal_and_vision", now, true);
    let _: () = con.set_ex("trt:lock:bravo_user", "1", 10).unwrap();
    let _: () = con.set("other:app:key", "1").unwrap();
    trt_turn(&mut con, "trt:", "alpha_user", "1.2_problem_and_body", now, false);
    let _: () = con.pexpire("trt:session:alpha_user:state", 1).unwrap();
    let _: () = con.del("trt:session:bravo_user:state").unwrap();
    // Until all four are said (the expiry comes when Redis finds the key expired); a new
    // session's own first writes may follow its creation as a save.
    let wanted =
        [("created", "bravo_user"), ("saved", "alpha_user"), ("expired", "alpha_user"), ("deleted", "bravo_user")];
    let mut seen: Vec<serde_json::Value> = Vec::new();
    while !wanted.iter().all(|(k, i)| seen.iter().any(|l| l["kind"] == *k && l["id"] == *i)) {
        let line = lines.next().expect("the tail ended").unwrap();
        seen.push(serde_json::from_str(&line).unwrap());
    }
    let _ = child.kill();
    let _ = child.wait();
    for l in &seen {
        let said = (l["kind"].as_str().unwrap(), l["id"].as_str().unwrap());
        assert!(wanted.contains(&said) || said == ("saved", "bravo_user"), "{said:?} was not asked for: {seen:?}");
    }
    // Its turn's writes name its parts: in one line, or in two when the writes straddle two
    // batches of the tail.
    let mut parts: Vec<&str> = seen
        .iter()
        .filter(|l| l["kind"] == "saved" && l["id"] == "alpha_user")
        .flat_map(|l| l["parts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()))
        .collect();
    parts.sort_unstable();
    parts.dedup();
    assert_eq!(parts, ["history", "session"], "{seen:?}");
    assert!(seen[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn where_events_are_off_it_says_how_to_turn_them_on_and_changes_nothing() {
    let server = server();
    let mut con = conn(&server);
    trt_turn(&mut con, "trt:", "alpha_user", "1.1_goal_and_vision", now_epoch(), true);
    let dir = tempfile::tempdir().unwrap();
    let out = sessiontop(&server.socket_url(), &dir).args(["--layout", "trt", "events"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("CONFIG SET notify-keyspace-events Kg$hlzxen") && stderr.contains("ElastiCache"),
        "{stderr}"
    );
    let flags: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query(&mut con).unwrap();
    assert_eq!(flags[1], "", "sessiontop changed the server's configuration");
}

/// Flask-Session has no index: between census passes only events say a session was made. The
/// watch's count of live sessions goes on from the last pass by them.
#[test]
fn the_watch_reads_a_session_saved_between_passes() {
    let server = server_with(&["--notify-keyspace-events", "Kg$hlzxen"]);
    let mut con = conn(&server);
    for i in 0..3 {
        flask_set(&mut con, "chatmrpt:", &sid(i), &chatmrpt_msgpack(Some("uploaded"), 1), 86_400);
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = port.to_string();
    let mut serving = crate::serve::Serving::start(
        &server.socket_url(),
        &dir,
        &["--layout", "chatmrpt", "--metrics-listen", &listen],
    );
    serving.wait_for("connected", |v| v["event"] == "connected");
    scrape_until(port, "sessiontop_live_sessions", "3");
    wait_for_subscriber(&mut con);
    // Saved now, long after the pass: a new session in the stage of its own.
    flask_set(&mut con, "chatmrpt:", &sid(7), &chatmrpt_msgpack(Some("analysis_complete"), 2), 86_400);
    scrape_until(port, "sessiontop_live_sessions_now", "4");
    let (status, _) = serving.terminate();
    assert!(status.success());
}

/// A cluster's events are each node's own: after a failover the subscription moves to the new
/// primary, whose expiries are expiries (the demoted one only hears the `DEL` its primary sends).
#[test]
fn after_a_failover_session_events_come_from_the_new_primary() {
    use sessiontop::demo::local_cluster::{ClusterOptions, LocalCluster};
    use sessiontop::engine::domain::{EventKind, EventsState};
    let flags = vec!["--notify-keyspace-events".to_string(), "Kg$hlzxen".to_string()];
    let c = LocalCluster::start(ClusterOptions { extra_args: flags, ..ClusterOptions::default() }).unwrap();
    let mut con = crate::cluster::cluster_client(&c);
    let now = now_epoch();
    for i in 0..30 {
        trt_turn(&mut con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now, true);
    }
    // Ids whose state key is in the first primary's slots (0-5460), the ones failed over.
    let mut ids = (0..)
        .map(|i| format!("moved_{i}"))
        .filter(|id| sessiontop::conn::slot::of(format!("trt:session:{id}:state").as_bytes()) <= 5460);
    let replica = c.primaries();
    let mut failed_over = false;
    let mut last_write = std::time::Instant::now();
    let (model, done) =
        crate::cluster::watch(&c.url(), &["--layout", "trt"], std::time::Duration::from_secs(60), |m, _| {
            let subscribed = matches!(m.events_state, EventsState::On { .. });
            if !failed_over && subscribed && m.census.complete.is_some() {
                let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut c.connection(replica).unwrap()).unwrap();
                failed_over = true;
            }
            // Now and then a session that lives a moment in the failed-over slots.
            if failed_over && last_write.elapsed() > std::time::Duration::from_millis(400) {
                last_write = std::time::Instant::now();
                let id = ids.next().unwrap();
                let state = format!("trt:session:{id}:state");
                let _: () = redis::cmd("HSET").arg(&state).arg("current_stage").arg("s").query(&mut con).unwrap();
                let _: () = redis::cmd("PEXPIRE").arg(&state).arg(50).query(&mut con).unwrap();
            }
            m.events.iter().any(|e| e.kind == EventKind::Expired && e.id.escaped().starts_with("moved_"))
        });
    let said: Vec<String> = model
        .events
        .iter()
        .filter(|e| e.id.escaped().starts_with("moved_"))
        .map(|e| format!("{} {}", e.kind.word(), e.id.escaped()))
        .collect();
    assert!(done, "no expiry heard from the new primary; heard: {said:?} ({:?})", model.events_state);
}

/// The calls of each command the servers have answered (`pttl`, `memory|usage`), summed.
fn calls(cons: &mut [redis::Connection]) -> std::collections::HashMap<String, u64> {
    let mut sum = std::collections::HashMap::new();
    for con in cons {
        let text: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
        for (name, (calls, _)) in sessiontop::conn::pace::parse_commandstats(&text) {
            *sum.entry(name).or_default() += calls;
        }
    }
    sum
}

/// What one census pass sent and found.
struct Passed {
    /// The calls of each command it sent.
    sent: std::collections::HashMap<String, u64>,
    tally: sessiontop::engine::domain::CensusTally,
    rows: Vec<sessiontop::engine::domain::SessionRow>,
}

impl Passed {
    fn sent(&self, command: &str) -> u64 {
        self.sent.get(command).copied().unwrap_or(0)
    }
}

/// A watch's census as the dashboard runs it: subscribed to its layout's events, pass after
/// pass with what it carries from one to the next.
struct Watch {
    setup: sessiontop::setup::Setup,
    layout: std::sync::Arc<sessiontop::engine::layout::Layout>,
    links: sessiontop::collect::census::CensusLinks,
    changes: std::sync::Arc<sessiontop::collect::events::Changes>,
    carried: sessiontop::collect::carry::Carried,
    generation: u64,
    _subscription: sessiontop::collect::events::Subscription,
    /// A connection to each primary, for the commands a pass sends.
    stats: Vec<redis::Connection>,
}

impl Watch {
    async fn open(url: &str, dir: &tempfile::TempDir, stats: Vec<redis::Connection>) -> Watch {
        Watch::open_layout(url, dir, stats, &["--layout", "trt"]).await
    }

    /// [`Watch::open`] of the layout `args` name.
    async fn open_layout(url: &str, dir: &tempfile::TempDir, stats: Vec<redis::Connection>, args: &[&str]) -> Watch {
        use sessiontop::collect::{census::CensusLinks, events};
        let setup = setup_for(url, dir, &[args, &["--budget", "0"]].concat());
        let store = sessiontop::headless::open(&setup).await.unwrap();
        let layout = std::sync::Arc::new(store.layout.clone().unwrap());
        let changes = std::sync::Arc::new(events::Changes::default());
        let subscription = events::subscribe(&store.topology, &layout, 0, Some(changes.clone())).await.unwrap();
        changes.subscribed();
        let links = CensusLinks::open(&store.topology).await.unwrap();
        let carried = Default::default();
        Watch { setup, layout, links, changes, carried, generation: 0, _subscription: subscription, stats }
    }

    /// One pass: the `EXISTS` it sent, and what it counted.
    async fn pass(&mut self) -> (u64, sessiontop::engine::domain::CensusTally) {
        let passed = self.pass_sending().await;
        (passed.sent("exists"), passed.tally)
    }

    /// One pass: what it sent, counted, and read of each session.
    async fn pass_sending(&mut self) -> Passed {
        use sessiontop::collect::census::{self, LightReads};
        self.generation += 1;
        let before = calls(&mut self.stats);
        let light = LightReads { changes: &self.changes, carried: &mut self.carried };
        let census = self.setup.collect.census;
        let mut rows = Vec::new();
        let outcome =
            census::run_pass(&mut self.links, &self.layout, census, self.generation, None, Some(light), |p| {
                rows.extend(p.rows)
            })
            .await
            .unwrap();
        let mut sent = calls(&mut self.stats);
        for (command, n) in sent.iter_mut() {
            *n -= before.get(command).copied().unwrap_or(0);
        }
        // The questions asked of the counts are not the census's.
        *sent.entry("info".into()).or_default() -= self.stats.len() as u64;
        sent.retain(|_, n| *n > 0);
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Passed { sent, tally: outcome.tally, rows }
    }

    /// Waits until events have told of a write to `id`.
    async fn heard(&self, id: &str) {
        let ids = [sessiontop::engine::names::SessionId::from(id)];
        let since = Instant::now();
        while self.changes.unchanged(&ids) != [false] {
            assert!(since.elapsed() < Duration::from_secs(5), "the write to {id} was never heard");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// TRT sessions `user_0`… last active a minute ago.
fn trt_sessions(con: &mut impl redis::ConnectionLike, n: u64) {
    let now = now_epoch();
    for i in 0..n {
        trt_turn(con, "trt:", &format!("user_{i}"), "1.1_goal_and_vision", now - 60.0 - i as f64, true);
    }
}

/// With events heard without a break since its last pass, a watch's census reads the sessions
/// nothing wrote to since without their parts' `PTTL` and their related keys' `EXISTS`, and
/// still counts what those found; a lock set on such a session is heard and read whole at the
/// next pass (and from then on); a break in the events, or the server's setting turned off,
/// makes the next pass read every session whole.
#[test]
fn a_watch_reads_unwritten_sessions_light_and_loses_no_finding() {
    use sessiontop::engine::domain::{CensusTally, FindingKind};

    const SESSIONS: u64 = 40;
    let server = server_with(&["--notify-keyspace-events", "Kg$hlzxen"]);
    let mut con = conn(&server);
    trt_sessions(&mut con, SESSIONS);
    // A history that never expires, from before the watch.
    let _: bool = con.persist("trt:session:user_1:history").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut watch = Watch::open(&server.socket_url(), &dir, vec![conn(&server)]).await;
        let count = |t: &CensusTally, kind| t.evidence.count(kind);

        let (exists, tally) = watch.pass().await;
        assert_eq!((exists, tally.total), (SESSIONS, SESSIONS), "the first pass reads every session whole");
        assert_eq!(count(&tally, FindingKind::NoTtl), 1);

        let (exists, tally) = watch.pass().await;
        assert_eq!((exists, tally.total), (0, SESSIONS), "nothing was written: every session read light");
        assert_eq!(count(&tally, FindingKind::NoTtl), 1, "the history without a TTL is still counted");

        // A lock that never expires, on a session otherwise left alone.
        let _: () = con.set("trt:lock:user_5", "worker-3").unwrap();
        watch.heard("user_5").await;
        let (exists, tally) = watch.pass().await;
        assert_eq!(exists, 1, "only the session written to is read whole");
        assert_eq!(count(&tally, FindingKind::StaleLock), 1);
        assert_eq!(count(&tally, FindingKind::NoTtl), 2, "the history and the lock");

        // Events missed: the next pass cannot know what changed.
        watch.changes.broken();
        watch.changes.subscribed();
        let (exists, tally) = watch.pass().await;
        assert_eq!(exists, SESSIONS, "after a break every session is read whole");
        assert_eq!((count(&tally, FindingKind::StaleLock), count(&tally, FindingKind::NoTtl)), (1, 2));

        // Heard again without a break; a session with a lock is always read whole.
        let (exists, tally) = watch.pass().await;
        assert_eq!(exists, 1);
        assert_eq!((count(&tally, FindingKind::StaleLock), count(&tally, FindingKind::NoTtl)), (1, 2));

        // The setting turned off during the watch: the subscription hears nothing from now on,
        // which proves nothing; a lock set now is found at the next pass all the same.
        let _: () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("").query(&mut con).unwrap();
        let _: () = con.set("trt:lock:user_7", "worker-4").unwrap();
        let (exists, tally) = watch.pass().await;
        assert_eq!(exists, SESSIONS, "with the setting off every session is read whole");
        assert_eq!((count(&tally, FindingKind::StaleLock), count(&tally, FindingKind::NoTtl)), (2, 3));
    });
}

/// The rows of a pass that read sessions settled are those of a whole pass before it, their TTLs
/// counted down by the time between the two (within a second).
fn assert_rows_as_read_whole(whole: &Passed, settled: &Passed) {
    use sessiontop::engine::domain::{SessionRow, Ttl};
    let near = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1_000,
        (a, b) => a == b,
    };
    let end = |t: Ttl| match t {
        Ttl::ExpiresAt(at) => Some(at),
        _ => None,
    };
    let shown = |r: &SessionRow| {
        let findings: Vec<String> = r.findings.iter().map(|f| format!("{f:?}")).collect();
        let labels = (r.stage.clone(), r.substate.clone(), r.status.clone(), r.decode_error.clone());
        (r.id.clone(), labels, r.last_interaction, r.history_len, findings, r.markers, r.app_ids)
    };
    assert_eq!(whole.rows.len(), settled.rows.len());
    for (w, s) in whole.rows.iter().zip(&settled.rows) {
        assert_eq!(shown(w), shown(s));
        assert!(near(end(w.ttl), end(s.ttl)) && near(w.created_expiry, s.created_expiry), "{w:?}\n{s:?}");
        assert!(matches!(s.ttl, Ttl::ExpiresAt(_)), "{s:?}");
    }
}

/// A session nothing wrote to since its last whole read is read settled: its fields alone
/// (`HMGET`), its TTLs counted down and its lengths and size as that read found them, and its
/// row is the one a whole read makes. A session written to is read whole again: a field grown
/// past the read cap is measured and not read, a new turn shows.
#[test]
fn a_watch_reads_unwritten_sessions_settled_and_their_rows_are_as_read_whole() {
    use sessiontop::engine::domain::FindingKind;

    const SESSIONS: u64 = 30;
    let server = server_with(&["--notify-keyspace-events", "Kg$hlzxen"]);
    let mut con = conn(&server);
    trt_sessions(&mut con, SESSIONS);
    let _: bool = con.persist("trt:session:user_1:history").unwrap();
    let _: bool = con.expire("trt:session:user_2:meta", 3_600).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut watch = Watch::open(&server.socket_url(), &dir, vec![conn(&server)]).await;
        let whole = watch.pass_sending().await;
        assert_eq!(whole.sent("pttl"), 3 * SESSIONS, "the first pass reads every session whole");
        let settled = watch.pass_sending().await;
        for command in ["pttl", "hlen", "llen", "memory|usage", "exists", "hstrlen"] {
            assert_eq!(settled.sent(command), 0, "{command} sent in a settled pass: {:?}", settled.sent);
        }
        assert_eq!(settled.sent("hmget"), SESSIONS, "{:?}", settled.sent);
        assert_eq!((whole.tally.read_settled, settled.tally.read_settled, settled.tally.read_light), (0, SESSIONS, 0));
        assert_rows_as_read_whole(&whole, &settled);
        assert_eq!(settled.tally.evidence.count(FindingKind::NoTtl), 1, "the history without a TTL");

        // A field grown past the read cap, and a new turn.
        let huge = "x".repeat(2 << 20);
        let _: () = con.hset("trt:session:user_3:state", "current_stage", huge).unwrap();
        trt_turn(&mut con, "trt:", "user_4", "1.2_body_awareness", now_epoch(), false);
        watch.heard("user_3").await;
        watch.heard("user_4").await;
        // Then read whole; at the pass after, the one over the cap light (a session whose fields
        // were not all read is not kept), the other settled.
        for pttls in [2 * 3, 2] {
            let after = watch.pass_sending().await;
            assert_eq!(after.sent("pttl"), pttls, "{:?}", after.sent);
            let settled = if pttls == 2 { SESSIONS - 1 } else { SESSIONS - 2 };
            assert_eq!((after.tally.read_settled, after.tally.read_light), (settled, u64::from(pttls == 2)));
            let row = |id: &str| after.rows.iter().find(|r| r.id.escaped() == id).unwrap();
            let why = row("user_3").decode_error.clone().unwrap_or_default();
            assert!(why.contains("over the read cap"), "{why}");
            assert_eq!(after.tally.oversized, 1);
            assert_eq!(row("user_4").substate.as_deref(), Some("1.2_body_awareness"));
            assert_eq!(row("user_4").history_len, Some(2));
        }
    });
}

/// Where the server's setting cannot be read (`CONFIG` refused, as on ElastiCache) a
/// subscription that hears nothing may be one to a server that sends nothing: every pass reads
/// whole, and a lock set between two passes is found.
#[test]
fn a_watch_that_cannot_read_the_setting_reads_every_pass_whole() {
    use sessiontop::engine::domain::FindingKind;

    const SESSIONS: u64 = 20;
    // Events off, as ElastiCache's default parameter group has them.
    let server = server();
    let mut con = conn(&server);
    trt_sessions(&mut con, SESSIONS);
    let rules = ["SETUSER", "watcher", "on", ">pw", "~*", "&*", "+@all", "-config"];
    let _: () = redis::cmd("ACL").arg(&rules[..]).query(&mut con).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("{}?user=watcher&pass=pw", server.socket_url());
        let mut watch = Watch::open(&url, &dir, vec![conn(&server)]).await;
        let (exists, _) = watch.pass().await;
        assert_eq!(exists, SESSIONS);
        let _: () = con.set("trt:lock:user_3", "worker-1").unwrap();
        for _ in 0..2 {
            let (exists, tally) = watch.pass().await;
            assert_eq!(exists, SESSIONS, "nothing heard proves nothing written: every session read whole");
            assert_eq!(tally.evidence.count(FindingKind::StaleLock), 1, "the lock set between passes is found");
        }
    });
}

/// On a cluster, sessions spread over three primaries are read settled as on one server, every
/// primary's setting confirmed first.
#[test]
fn on_a_cluster_a_watch_reads_unwritten_sessions_settled() {
    use sessiontop::demo::local_cluster::{ClusterOptions, LocalCluster};
    const SESSIONS: u64 = 30;
    let flags = vec!["--notify-keyspace-events".to_string(), "Kg$hlzxen".to_string()];
    let c = LocalCluster::start(ClusterOptions { extra_args: flags, ..ClusterOptions::default() }).unwrap();
    let mut con = crate::cluster::cluster_client(&c);
    trt_sessions(&mut con, SESSIONS);
    let _: bool = con.persist("trt:session:user_1:history").unwrap();
    let stats = (0..c.primaries()).map(|i| c.connection(i).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut watch = Watch::open(&c.url(), &dir, stats).await;
        let whole = watch.pass_sending().await;
        assert_eq!(whole.sent("pttl"), 3 * SESSIONS, "{:?}", whole.sent);
        let settled = watch.pass_sending().await;
        assert_eq!((settled.sent("pttl"), settled.sent("hmget")), (0, SESSIONS), "{:?}", settled.sent);
        assert_eq!(settled.sent("config|get"), c.primaries() as u64, "each primary's setting read");
        assert_rows_as_read_whole(&whole, &settled);
    });
}

/// Flask-Session's string sessions are read settled too: their payload alone (`GETRANGE`),
/// decoded afresh, their TTL counted down; a payload that does not decode is never kept, and is
/// read light.
#[test]
fn a_watch_reads_unwritten_flask_sessions_settled() {
    const SESSIONS: u64 = 20;
    let server = server_with(&["--notify-keyspace-events", "Kg$hlzxen"]);
    let mut con = conn(&server);
    for n in 0..SESSIONS as u32 {
        let payload = if n % 2 == 0 {
            chatmrpt_msgpack(Some("tpr_analysis"), i64::from(n))
        } else {
            chatmrpt_pickle(Some("risk_analysis"), i64::from(n))
        };
        flask_set(&mut con, "chatmrpt:", &sid(n), &payload, 86_400 - u64::from(n));
    }
    flask_set(&mut con, "chatmrpt:", &sid(99), b"\x00not a session", 86_400);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let args = ["--layout", "flask", "--prefix", "chatmrpt:"];
        let mut watch = Watch::open_layout(&server.socket_url(), &dir, vec![conn(&server)], &args).await;
        let whole = watch.pass_sending().await;
        assert_eq!((whole.sent("pttl"), whole.tally.undecodable), (SESSIONS + 1, 1), "{:?}", whole.sent);
        let settled = watch.pass_sending().await;
        assert_eq!(settled.sent("pttl"), 1, "only the undecodable one is read light: {:?}", settled.sent);
        assert_eq!(settled.sent("getrange"), SESSIONS + 1, "{:?}", settled.sent);
        assert_eq!((settled.tally.read_settled, settled.tally.read_light), (SESSIONS, 1));
        assert_eq!(settled.tally.undecodable, 1);
        assert_rows_as_read_whole(&whole, &settled);
        let stages: Vec<_> = settled.rows.iter().filter_map(|r| r.stage.as_deref()).collect();
        assert_eq!(stages.len() as u64, SESSIONS, "every decodable payload decoded: {stages:?}");
    });
}
