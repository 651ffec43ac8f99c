//! `sessiontop demo`: a throwaway `redis-server` holding both real layouts, written with the
//! same command sequences the applications use, and a simulator that keeps it moving: sessions
//! start, advance through their stages, grow history and expire; a few stall, one lock is never
//! released, a few index entries are orphaned, and a few payloads are hostile.
//!
//! Must never touch a Redis it did not start.

pub mod local_cluster;
pub mod local_redis;
pub mod local_sentinel;
pub mod pickle;

use std::time::Duration;

use std::sync::Arc;

use crate::cli::{DemoArgs, Global};
use crate::conn::link::Failure;
use crate::conn::route::Router;
use crate::conn::target::{Target, TargetSpec};
use crate::conn::topology::{LinkUse, Topology};
use local_cluster::{ClusterOptions, LocalCluster};
use local_redis::{LocalRedis, Options};

/// The demo's two applications' prefixes.
pub const TRT_PREFIX: &str = "trt:";
pub const FLASK_PREFIX: &str = "chatmrpt:";
/// Both applications' session lifetime.
pub const LIFETIME_S: i64 = 86_400;
/// Time between simulator steps.
const STEP_INTERVAL: Duration = Duration::from_millis(500);
/// Sessions written per pipeline while filling.
const FILL_BATCH: usize = 250;

/// The TRT workflow, in order; the last substate is final.
pub const TRT_SUBSTATES: [&str; 7] = [
    "1.1_goal_and_vision",
    "1.1.5_psycho_education",
    "1.2_problem_and_body",
    "3.1_assess_readiness",
    "3.1.5_alpha_permission",
    "3.2_alpha_sequence",
    "stage_1_complete",
];
const TRT_STAGE: &str = "stage_1_safety_building";
const COMPLETION_KEYS: [&str; 15] = [
    "goal_stated",
    "vision_accepted",
    "psychoeducation_given",
    "problem_identified",
    "body_awareness_present",
    "body_location_named",
    "emotion_content",
    "sensation_described",
    "readiness_assessed",
    "resources_present",
    "alpha_permission_given",
    "alpha_sequence_started",
    "alpha_sequence_complete",
    "safety_confirmed",
    "ready_for_stage_2",
];

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Server(#[from] local_redis::LocalRedisError),
    #[error("demo store: {0}")]
    Redis(#[from] Failure),
    #[error(transparent)]
    Target(#[from] crate::conn::target::TargetError),
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
}

/// The database the demo keeps ChatMRPT's sessions in (TRT's are in 0).
const FLASK_DB: i64 = 1;

/// The demo's store: one server (ChatMRPT's sessions in a database of their own), or a
/// cluster of three primaries with a replica each (one database: the two layouts side by side).
enum Store {
    Server(LocalRedis),
    Cluster(LocalCluster),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::Server(s) => s.url(),
            Store::Cluster(c) => c.url(),
        }
    }
}

/// A connection that writes as an application would: to the one server, or to whichever node
/// of a cluster serves each key.
pub async fn writer(url: &str) -> Result<Router, DemoError> {
    let target = Target::from_spec(&TargetSpec { url: url.to_string(), ..Default::default() })?;
    let topology = Arc::new(Topology::new(&target, crate::conn::pace::Budget::Unlimited));
    Ok(Router::discover(&topology, LinkUse::Poll).await?)
}

/// Runs the demo until Ctrl-C (or until the dashboard is closed).
pub async fn run(global: &Global, args: &DemoArgs) -> Result<(), DemoError> {
    // The demo's own throwaway servers send session events (a production server is never
    // changed: sessiontop says how to turn them on there).
    let events = vec!["--notify-keyspace-events".to_string(), crate::collect::events::FLAGS.to_string()];
    let store = if args.cluster {
        Store::Cluster(LocalCluster::start(ClusterOptions {
            binary: args.redis_server.clone(),
            extra_args: events,
            ..ClusterOptions::default()
        })?)
    } else {
        Store::Server(LocalRedis::start(Options {
            binary: args.redis_server.clone(),
            listen: local_redis::Listen::Tcp,
            extra_args: events,
        })?)
    };
    let url = store.url();
    // A cluster has database 0 only.
    let flask_db = if args.cluster { 0 } else { FLASK_DB };
    let link = writer(&url).await?;
    let mut sim = Simulator::new(fastrand::Rng::new()).with_flask_db(flask_db);
    sim.fill(&link, args.sessions as usize).await?;
    let simulator = tokio::spawn(async move {
        loop {
            tokio::time::sleep(STEP_INTERVAL).await;
            if let Err(e) = sim.step(&link).await {
                tracing::warn!(error = %e, "demo simulator step failed");
            }
        }
    });
    let failovers = match (&store, args.failover_every) {
        (Store::Cluster(c), Some(every)) => Some(tokio::spawn(fail_over_now_and_then(replica_urls(c), every))),
        _ => None,
    };
    let flask_url = if flask_db == 0 { url.clone() } else { format!("{url}/{flask_db}") };
    let result = if args.no_tui {
        println!("sessiontop demo: {} at {url}", if args.cluster { "a Redis Cluster" } else { "redis-server" });
        println!("  in another terminal: sessiontop --url trt={url} --url chatmrpt={flask_url}");
        println!("  press Ctrl-C to stop; nothing is left running afterwards");
        wait_for_stop().await.map_err(DemoError::from)
    } else {
        let setup = dashboard_setup(global, &url, &flask_url)?;
        tokio::select! {
            result = crate::dashboard::run(setup) => result.map_err(DemoError::from),
            _ = wait_for_stop() => Ok(()),
        }
    };
    simulator.abort();
    if let Some(task) = failovers {
        task.abort();
    }
    drop(store);
    if !args.no_tui {
        println!("sessiontop demo: stopped the demo store at {url}");
    }
    result
}

/// Both applications' stores side by side, a tab each (they share the demo's server, as two
/// applications often share one Redis); a layout given on the command line shows that one alone.
fn dashboard_setup(global: &Global, url: &str, flask_url: &str) -> Result<crate::setup::Setup, DemoError> {
    use crate::engine::layout::{Choice, LayoutKind};
    let (urls, layouts) = match &global.layout {
        Choice::Auto => (
            vec![format!("trt={url}"), format!("chatmrpt={flask_url}")],
            vec![Choice::Builtin(LayoutKind::Trt), Choice::Builtin(LayoutKind::Chatmrpt)],
        ),
        Choice::Builtin(LayoutKind::Chatmrpt | LayoutKind::Flask) => {
            (vec![flask_url.to_string()], vec![global.layout.clone()])
        }
        given => (vec![url.to_string()], vec![given.clone()]),
    };
    let mut setup = crate::setup::Setup::new(&crate::cli::Global { url: urls, target: Vec::new(), ..global.clone() })?;
    for (target, layout) in setup.targets.iter_mut().zip(layouts) {
        target.layout.choice = layout;
    }
    Ok(setup)
}

/// The URLs of a cluster's replicas, over their unix sockets.
fn replica_urls(c: &LocalCluster) -> Vec<String> {
    c.nodes().iter().skip(c.primaries()).map(|n| n.socket_url()).collect()
}

/// Every `every`, one of the cluster's replicas takes over from its primary (`CLUSTER
/// FAILOVER`), in turn: the failover finding, on a live demo.
async fn fail_over_now_and_then(nodes: Vec<String>, every: Duration) {
    let mut turn = 0usize;
    loop {
        tokio::time::sleep(every).await;
        // Whoever is a replica now: after a failover the former primary is one.
        for offset in 0..nodes.len() {
            let url = &nodes[(turn + offset) % nodes.len()];
            // A plain connection to the node itself: these commands have no key to route by.
            let Ok(target) = Target::from_spec(&TargetSpec { url: url.clone(), ..Default::default() }) else {
                continue;
            };
            let Ok(mut link) = target.open(crate::conn::link::LoadCounter::default()).await else { continue };
            let role: Result<String, _> = link.query(redis::cmd("INFO").arg("replication")).await;
            if role.is_ok_and(|r| r.contains("role:slave")) {
                match link.query::<redis::Value>(redis::cmd("CLUSTER").arg("FAILOVER")).await {
                    Ok(_) => tracing::info!(node = %url, "demo: failing over"),
                    Err(e) => tracing::warn!(node = %url, error = %e, "demo: failover refused"),
                }
                break;
            }
        }
        turn += 1;
    }
}

async fn wait_for_stop() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// A TRT user the simulator is driving.
#[derive(Debug, Clone)]
struct TrtUser {
    id: String,
    step: usize,
    turns: u32,
    /// Turns taken in the current step.
    in_step: u32,
    /// Loops in its stage instead of advancing, with the same decision every turn: stuck.
    looping: bool,
}

/// A ChatMRPT visitor the simulator is driving.
#[derive(Debug, Clone)]
struct FlaskUser {
    sid: String,
    stage: usize,
    messages: i64,
    pickle: bool,
    session_id: String,
}

/// ChatMRPT's `workflow_stage` values in journey order (`None` for a new visit).
const FLASK_STAGES: [Option<&str>; 3] = [None, Some("uploaded"), Some("analysis_complete")];

/// Drives the demo store.
pub struct Simulator {
    rng: fastrand::Rng,
    trt_online: Vec<TrtUser>,
    flask_online: Vec<FlaskUser>,
    next_user: u64,
    /// The database ChatMRPT's sessions go to (TRT's and the other keys stay in 0).
    flask_db: i64,
}

impl Simulator {
    pub fn new(rng: fastrand::Rng) -> Self {
        Simulator { rng, trt_online: Vec::new(), flask_online: Vec::new(), next_user: 1000, flask_db: 0 }
    }

    /// ChatMRPT's sessions in database `db`: a store of their own, as the demo's second target.
    pub fn with_flask_db(mut self, db: i64) -> Self {
        self.flask_db = db;
        self
    }

    /// The commands after this write ChatMRPT's database (the simulator's connection is its
    /// own, and every pipeline switches back before it ends).
    fn select_flask(&self, pipe: &mut redis::Pipeline) {
        if self.flask_db != 0 {
            pipe.cmd("SELECT").arg(self.flask_db);
        }
    }

    /// The commands after this write TRT's database again.
    fn select_trt(&self, pipe: &mut redis::Pipeline) {
        if self.flask_db != 0 {
            pipe.cmd("SELECT").arg(0);
        }
    }

    /// Writes `per_layout` sessions of each layout with ages spread over the last day, plus the
    /// planted problems and the other keys a real database holds.
    pub async fn fill(&mut self, link: &Router, per_layout: usize) -> Result<(), Failure> {
        let now = chrono::Local::now();
        let mut pipe = redis::pipe();
        for _ in 0..per_layout {
            let age = self.age();
            let step = self.step_for_age(age);
            let id = self.trt_id();
            let turns = (step as u32 + 1) * (1 + self.rng.u32(0..3));
            let turn = Turn::first(step, turns, age, age + i64::from(turns) * 40);
            write_trt_turn(&mut pipe, &id, turn, now, &mut self.rng);
            if age < 900 && self.trt_online.len() < 120 {
                self.trt_online.push(TrtUser { id, step, turns, in_step: 0, looping: self.rng.u8(0..10) == 0 });
            }
            if pipe.len() > FILL_BATCH * 8 {
                link.pipeline(&pipe).await?;
                pipe = redis::pipe();
            }
        }
        // Fewer Flask sessions than TRT ones, so that auto-detection has a clear majority.
        self.select_flask(&mut pipe);
        for _ in 0..per_layout * 3 / 4 {
            let age = self.age();
            let user = self.new_flask_user(age);
            write_flask_request(&mut pipe, &user, age, &mut self.rng);
            if age < 900 && self.flask_online.len() < 120 {
                self.flask_online.push(user);
            }
            if pipe.len() > FILL_BATCH * 4 {
                self.select_trt(&mut pipe);
                link.pipeline(&pipe).await?;
                pipe = redis::pipe();
                self.select_flask(&mut pipe);
            }
        }
        self.select_trt(&mut pipe);
        self.plant_problems(&mut pipe, now);
        link.pipeline(&pipe).await?;
        Ok(())
    }

    /// How long ago a session was last active: a third within the last quarter hour, the rest
    /// spread over the day (older ones expire during the demo).
    fn age(&mut self) -> i64 {
        match self.rng.u8(0..100) {
            0..=34 => self.rng.i64(1..900),
            35..=59 => self.rng.i64(900..4 * 3600),
            _ => self.rng.i64(4 * 3600..LIFETIME_S - 60),
        }
    }

    /// Older sessions got further, or gave up.
    fn step_for_age(&mut self, age: i64) -> usize {
        let max = if age < 900 { 5 } else { TRT_SUBSTATES.len() - 1 };
        let step = self.rng.usize(0..=max);
        if age > 3600 && self.rng.bool() { TRT_SUBSTATES.len() - 1 } else { step }
    }

    fn trt_id(&mut self) -> String {
        self.next_user += 1;
        if self.rng.u8(0..4) == 0 { uuid4(&mut self.rng) } else { format!("user_{}", self.next_user) }
    }

    fn new_flask_user(&mut self, age: i64) -> FlaskUser {
        let stage = match age {
            0..=900 => self.rng.usize(0..FLASK_STAGES.len()),
            _ => self.rng.usize(0..FLASK_STAGES.len()).max(self.rng.usize(0..FLASK_STAGES.len())),
        };
        FlaskUser {
            sid: flask_sid(&mut self.rng),
            stage,
            messages: self.rng.i64(0..20),
            // Sessions last written by Flask-Session 0.6 are still pickles.
            pickle: age > 3600 && self.rng.u8(0..5) == 0,
            session_id: uuid4(&mut self.rng),
        }
    }

    /// Stalled sessions, a lock never released, orphaned index entries, a session without TTL,
    /// an undecodable, a hostile and an oversized payload, and keys of other applications.
    fn plant_problems(&mut self, pipe: &mut redis::Pipeline, now: chrono::DateTime<chrono::Local>) {
        for n in 0..6 {
            let id = format!("stuck_{n}");
            let age = 1200 + 900 * n;
            write_trt_turn(pipe, &id, Turn::first(3, 9, age, age + 600), now, &mut self.rng);
        }
        pipe.cmd("SET").arg(format!("{TRT_PREFIX}lock:stuck_0")).arg(uuid4(&mut self.rng));
        for n in 0..5 {
            pipe.cmd("ZADD")
                .arg(format!("{TRT_PREFIX}active_sessions"))
                .arg(now.timestamp() - LIFETIME_S - 3600 * (n + 1))
                .arg(format!("expired_user_{n}"));
        }
        // A user going round in circles: eight turns in one substate, the same decision each
        // time, the last two minutes ago; the traffic keeps them at it.
        let looping = Turn { decision: Decision::Same, ..Turn::first(2, 8, 120, 900) };
        write_trt_turn(pipe, LOOPING_USER, looping, now, &mut self.rng);
        self.trt_online.push(TrtUser { id: LOOPING_USER.into(), step: 2, turns: 8, in_step: 8, looping: true });
        write_trt_turn(pipe, "no_ttl_user", Turn::first(2, 4, 300, 900), now, &mut self.rng);
        pipe.cmd("PERSIST").arg(format!("{TRT_PREFIX}session:no_ttl_user:state"));
        // A history kept for two days while its state lives one.
        write_trt_turn(pipe, "apart_user", Turn::first(1, 3, 600, 700), now, &mut self.rng);
        pipe.cmd("EXPIRE").arg(format!("{TRT_PREFIX}session:apart_user:history")).arg(2 * LIFETIME_S);
        // A history whose trimming broke: 60 entries where the application keeps 50.
        write_trt_turn(pipe, "untrimmed_user", Turn::first(2, 10, 400, 4000), now, &mut self.rng);
        for _ in 0..60 {
            pipe.cmd("RPUSH")
                .arg(format!("{TRT_PREFIX}session:untrimmed_user:history"))
                .arg(r#"{"current_substate": "1.1_goal_and_vision"}"#);
        }
        // A session written by a server whose clock is two hours fast.
        write_trt_turn(pipe, "fast_clock_user", Turn::first(1, 2, -7200, 60), now, &mut self.rng);
        // A user hammering the service: at the rate limit (kept there by the traffic).
        write_trt_turn(pipe, HAMMERING_USER, Turn::first(1, 5, 20, 600), now, &mut self.rng);

        self.select_flask(pipe);
        let sid = flask_sid(&mut self.rng);
        pipe.cmd("SET")
            .arg(format!("{FLASK_PREFIX}{sid}"))
            .arg(b"\x80\x04\x95garbage\xff\xfe".as_slice())
            .arg("EX")
            .arg(LIFETIME_S);
        let hostile = rmpv::Value::Map(vec![
            (rmpv::Value::from("workflow_stage"), rmpv::Value::from("uploaded\u{1b}[2J\u{1b}]0;pwned\u{7}")),
            (rmpv::Value::from("data_analysis_filename"), rmpv::Value::from("\u{202e}xslx.exe")),
        ]);
        pipe.cmd("SET")
            .arg(format!("{FLASK_PREFIX}{}", flask_sid(&mut self.rng)))
            .arg(msgpack(&hostile))
            .arg("EX")
            .arg(LIFETIME_S - 120);
        let big = format!("{{\"workflow_stage\":\"uploaded\",\"df\":\"{}\"}}", "x".repeat(2 << 20));
        pipe.cmd("SET")
            .arg(format!("{FLASK_PREFIX}{}", flask_sid(&mut self.rng)))
            .arg(big)
            .arg("EX")
            .arg(LIFETIME_S - 300);
        self.select_trt(pipe);

        for n in 0..20 {
            let sid = flask_sid(&mut self.rng);
            pipe.cmd("HSET").arg(format!("conversation:{sid}:meta")).arg("title").arg(format!("Kano TPR {n}"));
            pipe.cmd("ZADD").arg(format!("user:{}:conversations", 100 + n % 4)).arg(n).arg(sid);
        }
        pipe.cmd("RPUSH").arg("rq:queue:default").arg("job-1").arg("job-2");
    }

    /// One step of traffic.
    pub async fn step(&mut self, link: &Router) -> Result<(), Failure> {
        let now = chrono::Local::now();
        let mut pipe = redis::pipe();
        // Users arrive.
        for _ in 0..self.rng.usize(0..3) {
            let id = self.trt_id();
            self.trt_online.push(TrtUser { id, step: 0, turns: 0, in_step: 0, looping: self.rng.u8(0..12) == 0 });
        }
        if self.rng.u8(0..3) == 0 {
            let user = self.new_flask_user(0);
            self.flask_online.push(FlaskUser { stage: 0, ..user });
        }
        // Some take a turn.
        for _ in 0..self.rng.usize(2..7) {
            if self.trt_online.is_empty() {
                break;
            }
            let i = self.rng.usize(0..self.trt_online.len());
            let user = &mut self.trt_online[i];
            user.turns += 1;
            user.in_step += 1;
            // A user moves on after two to four turns in a step (never six: that is stuck).
            let moves_on = user.in_step >= 4 || user.in_step >= 2 && self.rng.bool();
            if !user.looping && user.step + 1 < TRT_SUBSTATES.len() && moves_on {
                user.step += 1;
                user.in_step = 0;
            }
            let (id, step, turns, first, looping) =
                (user.id.clone(), user.step, user.turns, user.turns == 1, user.looping);
            let lock = format!("{TRT_PREFIX}lock:{id}");
            pipe.cmd("SET").arg(&lock).arg(uuid4(&mut self.rng)).arg("NX").arg("PX").arg(10_000);
            let decision = if looping { Decision::Same } else { Decision::Varied };
            let turn = Turn { step, turns, age: 0, created_age: i64::from(turns) * 40, first, decision };
            write_trt_turn(&mut pipe, &id, turn, now, &mut self.rng);
            let minute = now.timestamp() / 60;
            let counter = format!("{TRT_PREFIX}ratelimit:{id}:{minute}");
            pipe.cmd("INCR").arg(&counter).cmd("EXPIRE").arg(&counter).arg(60);
            pipe.cmd("DEL").arg(&lock);
        }
        let counter = format!("{TRT_PREFIX}ratelimit:{HAMMERING_USER}:{}", now.timestamp() / 60);
        pipe.cmd("SET").arg(&counter).arg(12).arg("EX").arg(60);
        self.select_flask(&mut pipe);
        for _ in 0..self.rng.usize(1..4) {
            if self.flask_online.is_empty() {
                break;
            }
            let i = self.rng.usize(0..self.flask_online.len());
            let user = &mut self.flask_online[i];
            user.messages += 1;
            if user.stage + 1 < FLASK_STAGES.len() && self.rng.u8(0..4) == 0 {
                user.stage += 1;
            }
            // Flask-Session 0.7+ rewrites old pickles as msgpack on their next write.
            user.pickle = false;
            let user = user.clone();
            write_flask_request(&mut pipe, &user, 0, &mut self.rng);
        }
        self.select_trt(&mut pipe);
        // Users leave: their sessions go idle, stall if mid-workflow, and expire a day later.
        if self.rng.u8(0..4) == 0 && !self.trt_online.is_empty() {
            let i = self.rng.usize(0..self.trt_online.len());
            self.trt_online.swap_remove(i);
        }
        if self.rng.u8(0..6) == 0 && !self.flask_online.is_empty() {
            let i = self.rng.usize(0..self.flask_online.len());
            self.flask_online.swap_remove(i);
        }
        link.pipeline(&pipe).await?;
        Ok(())
    }
}

/// One TRT turn, with the application's own commands: the state hash then `EXPIRE`, the index,
/// the history `LPUSH`/`LTRIM`/`EXPIRE`, and on the first turn the meta hash.
fn write_trt_turn(
    pipe: &mut redis::Pipeline,
    id: &str,
    turn: Turn,
    now: chrono::DateTime<chrono::Local>,
    rng: &mut fastrand::Rng,
) {
    let Turn { step, turns, age, created_age, first, decision } = turn;
    let at = now - chrono::Duration::seconds(age);
    let iso = at.naive_local().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let state = format!("{TRT_PREFIX}session:{id}:state");
    let history = format!("{TRT_PREFIX}session:{id}:history");
    let meta = format!("{TRT_PREFIX}session:{id}:meta");
    let ttl = (LIFETIME_S - age).max(1);
    let done = (step + 1) * COMPLETION_KEYS.len() / TRT_SUBSTATES.len();
    let completion: serde_json::Map<String, serde_json::Value> =
        COMPLETION_KEYS.iter().enumerate().map(|(i, k)| (k.to_string(), serde_json::Value::Bool(i < done))).collect();
    let substate = TRT_SUBSTATES[step.min(TRT_SUBSTATES.len() - 1)];
    pipe.cmd("HSET")
        .arg(&state)
        .arg("session_id")
        .arg(id)
        .arg("current_stage")
        .arg(TRT_STAGE)
        .arg("current_substate")
        .arg(substate)
        .arg("body_questions_asked")
        .arg((step.min(3)).to_string())
        .arg("stage_1_completion")
        .arg(serde_json::Value::Object(completion).to_string())
        .arg("last_interaction")
        .arg(&iso)
        .arg("created_at")
        .arg(&iso);
    pipe.cmd("EXPIRE").arg(&state).arg(ttl);
    pipe.cmd("ZADD").arg(format!("{TRT_PREFIX}active_sessions")).arg(at.timestamp_micros() as f64 / 1e6).arg(id);
    let entries = if first { turns.min(50) } else { 1 };
    for n in 0..entries {
        let varied = match decision {
            Decision::Varied => n as usize + rng.usize(0..2),
            Decision::Same => 0,
        };
        let (client, reply, decision) = EXCHANGES[(step + varied) % EXCHANGES.len()];
        let entry = serde_json::json!({
            "client_input": client,
            "therapist_response": reply,
            "navigation_decision": decision,
            "current_substate": substate,
            "timestamp": iso,
        });
        pipe.cmd("LPUSH").arg(&history).arg(entry.to_string());
    }
    pipe.cmd("LTRIM").arg(&history).arg(0).arg(49);
    pipe.cmd("EXPIRE").arg(&history).arg(ttl);
    if first {
        let created = now - chrono::Duration::seconds(created_age);
        pipe.cmd("HSET")
            .arg(&meta)
            .arg("created_at")
            .arg(created.naive_local().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            .arg("created_via")
            .arg("input_endpoint");
        // Meta is written once and never refreshed: a session older than a day has none.
        let meta_ttl = LIFETIME_S - created_age;
        if meta_ttl > 0 {
            pipe.cmd("EXPIRE").arg(&meta).arg(meta_ttl);
        } else {
            pipe.cmd("DEL").arg(&meta);
        }
    }
}

/// A user planted stuck: the same substate and decision turn after turn.
const LOOPING_USER: &str = "looping_user";

/// A user whose counter the traffic keeps at the rate limit.
const HAMMERING_USER: &str = "hammering_user";

/// Whether a user's turns take different decisions (the conversation moves) or the same one.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Varied,
    Same,
}

/// One TRT turn to write: the step it is in, the turns so far, how long ago it was (and the
/// session was created), whether it is the session's first write (which writes the whole
/// history and the meta hash).
#[derive(Debug, Clone, Copy)]
struct Turn {
    step: usize,
    turns: u32,
    age: i64,
    created_age: i64,
    first: bool,
    decision: Decision,
}

impl Turn {
    fn first(step: usize, turns: u32, age: i64, created_age: i64) -> Turn {
        Turn { step, turns, age, created_age, first: true, decision: Decision::Varied }
    }
}

const EXCHANGES: [(&str, &str, &str); 6] = [
    ("I want to feel calmer at work", "What would calmer look like for you?", "explore_goal"),
    ("I get a tight feeling before meetings", "Where do you notice that tightness?", "explore_problem"),
    ("In my chest, mostly", "Can you stay with that sensation for a moment?", "body_location"),
    ("It eases a little when I breathe", "Notice that. Are you ready to go on?", "assess_readiness"),
    ("Yes, I think so", "Then let's begin the sequence together.", "alpha_permission"),
    ("That felt different", "What do you notice now?", "alpha_sequence"),
];

/// One ChatMRPT request: `SET chatmrpt:<sid> <payload> EX <lifetime>`, plus the flag keys the
/// application keeps beside finished analyses.
fn write_flask_request(pipe: &mut redis::Pipeline, user: &FlaskUser, age: i64, rng: &mut fastrand::Rng) {
    let stage = FLASK_STAGES[user.stage.min(FLASK_STAGES.len() - 1)];
    let fields = flask_fields(user, stage, rng);
    let payload = if user.pickle { pickle::dict(&fields) } else { msgpack(&to_msgpack(&fields)) };
    let key = format!("{FLASK_PREFIX}{}", user.sid);
    let ttl = (LIFETIME_S - age).max(1);
    pipe.cmd("SET").arg(&key).arg(payload).arg("EX").arg(ttl);
    // ChatMRPT names its side keys by the payload's own session_id (services/redis_state.py).
    if stage == Some("analysis_complete") {
        pipe.cmd("SET").arg(format!("{FLASK_PREFIX}analysis_complete:{}", user.session_id)).arg("1").arg("EX").arg(ttl);
    }
}

fn flask_fields(user: &FlaskUser, stage: Option<&str>, rng: &mut fastrand::Rng) -> Vec<(String, pickle::Py)> {
    use pickle::Py;
    let uploaded = stage.is_some();
    let analysed = stage == Some("analysis_complete");
    // A third of the users upload TPR data, which the TPR workflow picks up until the analysis.
    let tpr = uploaded && user.session_id.bytes().next().is_some_and(|b| b % 3 == 0);
    let mut fields = vec![
        ("session_id", Py::Str(user.session_id.clone())),
        ("base_session_id", Py::Str(user.session_id.clone())),
        ("data_loaded", Py::Bool(uploaded)),
        ("csv_loaded", Py::Bool(uploaded)),
        ("shapefile_loaded", Py::Bool(uploaded && rng.bool())),
        ("analysis_complete", Py::Bool(analysed)),
        ("tpr_workflow_active", Py::Bool(tpr && !analysed)),
        ("tpr_session_id", Py::None),
        ("workflow_source", Py::Str("data_analysis_v3".into())),
    ];
    if let Some(stage) = stage {
        fields.push(("workflow_stage", Py::Str(stage.into())));
        fields.push(("has_data_analysis_file", Py::Bool(true)));
        fields.push(("data_analysis_filename", Py::Str("NMEP_TPR_Kano_2024.xlsx".into())));
        fields.push(("upload_type", Py::Str(if tpr { "tpr_excel" } else { "csv_shapefile" }.into())));
    }
    fields.extend([
        ("use_data_analysis_v3", Py::Bool(true)),
        ("active_tab", Py::Str(if analysed { "maps" } else { "chat" }.into())),
        ("message_count", Py::Int(user.messages)),
        ("current_language", Py::Str("en".into())),
        ("conversation_history", Py::List(Vec::new())),
        ("last_visualization", Py::None),
    ]);
    if analysed {
        fields.push(("analysis_type", Py::Str("dual_method".into())));
        fields.push((
            "variables_used",
            Py::List(vec![Py::Str("tpr".into()), Py::Str("rainfall".into()), Py::Str("ndvi".into())]),
        ));
        fields.push(("itn_planning_complete", Py::Bool(rng.bool())));
    }
    fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn to_msgpack(fields: &[(String, pickle::Py)]) -> rmpv::Value {
    fn value(v: &pickle::Py) -> rmpv::Value {
        match v {
            pickle::Py::None => rmpv::Value::Nil,
            pickle::Py::Bool(b) => rmpv::Value::Boolean(*b),
            pickle::Py::Int(i) => rmpv::Value::from(*i),
            pickle::Py::Str(s) => rmpv::Value::from(s.as_str()),
            pickle::Py::List(items) => rmpv::Value::Array(items.iter().map(value).collect()),
        }
    }
    rmpv::Value::Map(fields.iter().map(|(k, v)| (rmpv::Value::from(k.as_str()), value(v))).collect())
}

fn msgpack(value: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

/// `secrets.token_urlsafe(32)`: 43 characters of base64url.
pub fn flask_sid(rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..43).map(|_| ALPHABET[rng.usize(0..ALPHABET.len())] as char).collect()
}

/// A random (version 4) UUID in canonical form.
pub fn uuid4(rng: &mut fastrand::Rng) -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| rng.u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_real_shapes() {
        let mut rng = fastrand::Rng::with_seed(7);
        let sid = flask_sid(&mut rng);
        assert_eq!(sid.len(), 43);
        let u = uuid4(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn demo_payloads_decode_with_the_real_decoders() {
        let mut rng = fastrand::Rng::with_seed(1);
        let user =
            FlaskUser { sid: flask_sid(&mut rng), stage: 2, messages: 9, pickle: true, session_id: uuid4(&mut rng) };
        let fields = flask_fields(&user, FLASK_STAGES[2], &mut rng);
        for bytes in [pickle::dict(&fields), msgpack(&to_msgpack(&fields))] {
            let decoded = crate::decode::decode_payload(&bytes).unwrap();
            assert_eq!(
                decoded.value.get("workflow_stage"),
                Some(&crate::decode::Value::Str("analysis_complete".into()))
            );
            assert_eq!(decoded.value.get("message_count"), Some(&crate::decode::Value::Int(9)));
        }
    }
}
