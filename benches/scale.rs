//! The scale benchmark: sessiontop against 100,000 and 1,000,000 sessions of each layout, all
//! figures from one run, each store in its own redis-server on TCP loopback.
//!
//! `cargo bench --bench scale` (both layouts, both sizes; about a quarter of an hour here).
//! `SESSIONTOP_BENCH_SIZES=100000` and `SESSIONTOP_BENCH_LAYOUTS=trt` choose fewer;
//! `SESSIONTOP_BENCH_NO_DASHBOARD=1` leaves out the dashboard's figures (tmux).
//! `SESSIONTOP_BENCH_CLUSTER=3000000` measures that many TRT sessions on a Redis Cluster of three
//! primaries instead (beside 1,000,000 on one server, in the same run): the figures below are
//! then summed over the primaries (Redis CPU, commandstats floor, slowlog), the dearest command
//! the dearest on any, and while watching each node's share is printed. Both stores are then
//! kept, and their censuses at `--budget 0` are run in pairs, back to back, three times: the
//! ratio of each pair, and the median.
//!
//! For each store it prints:
//! - the first screen headless (`snapshot --no-census`) and in the dashboard (tmux: until the
//!   first session row is drawn);
//! - the census (`snapshot --json`) at `--budget 0` and at the one-shot default, beside its
//!   floor: the Redis CPU its own reads cost (the sum of `usec` in `INFO commandstats`, reset
//!   before each run), the peak RSS and CPU time of the process, and at `--budget 0` what each
//!   command cost per session (calls and Redis µs, summed over the servers); and the census at
//!   `--budget 0` beside a bare `SCAN` walk of the same keys (`COUNT 1000`), in three pairs run
//!   back to back; and a watch's census passes with keyspace events on, each pass after a
//!   break in the events (every session read whole) beside one after a pass with them heard
//!   throughout (the sessions nothing wrote to read light);
//! - at 100,000 TRT sessions, the application's own listing (its Python code on redis-py,
//!   `benches/trt_naive_client.py`; needs `pip install redis`) and `--budget 2%`'s Redis CPU;
//! - the dashboard (tmux, 160x48): RSS after a full census (at `--budget 0`, so that it is
//!   quick), the key-to-redraw time of a sort and of a 10-character filter (typed at ten keys a
//!   second, and pasted), and the Redis CPU share while it watches at the default budget
//!   (`INFO cpu` delta, less the idle server's own);
//! - the dearest command sessiontop sent: the largest `usec_per_call` by `INFO commandstats`,
//!   and the `SLOWLOG` entries at 1 ms or more.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

#[path = "support/load.rs"]
mod load;

use std::process::Command;
use std::time::{Duration, Instant};

use sessiontop::demo::local_cluster::{ClusterOptions, LocalCluster};
use sessiontop::demo::local_redis::{Listen, LocalRedis, Options};

fn main() {
    let tmux = std::env::var_os("SESSIONTOP_BENCH_NO_DASHBOARD").is_none()
        && Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if let Some(n) = std::env::var("SESSIONTOP_BENCH_CLUSTER").ok().and_then(|n| n.parse::<usize>().ok()) {
        let mut one = bench(load::Kind::Trt, n / 3, tmux);
        let mut cluster = bench_cluster(n, tmux);
        side_by_side(&mut one, &mut cluster);
        return;
    }
    let sizes: Vec<usize> = std::env::var("SESSIONTOP_BENCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let layouts: Vec<load::Kind> = std::env::var("SESSIONTOP_BENCH_LAYOUTS")
        .unwrap_or_else(|_| "trt,flask".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "trt" => Some(load::Kind::Trt),
            "flask" => Some(load::Kind::Flask),
            _ => None,
        })
        .collect();
    if !tmux && std::env::var_os("SESSIONTOP_BENCH_NO_DASHBOARD").is_none() {
        println!("scale bench: the dashboard figures need tmux (apt-get install tmux); measuring the rest");
    }
    for &kind in &layouts {
        for &n in &sizes {
            drop(bench(kind, n, tmux));
        }
    }
}

/// The servers of a store: one, or a cluster's primaries (held so that they run as long as
/// the store).
#[expect(dead_code, reason = "held, never read: dropping them stops the servers")]
enum Servers {
    One(LocalRedis),
    Cluster(LocalCluster),
}

struct Store {
    _servers: Servers,
    /// A connection to each server (each primary of a cluster).
    cons: Vec<redis::Connection>,
    url: String,
    kind: load::Kind,
    sessions: usize,
}

impl Store {
    /// `args` on every server, each reply.
    fn each<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> Vec<T> {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        self.cons.iter_mut().map(|con| c.query(con).unwrap()).collect()
    }

    /// `args` on the (first) server.
    fn cmd<T: redis::FromRedisValue>(&mut self, args: &[&str]) -> T {
        self.each(args).into_iter().next().unwrap()
    }

    fn reset_stats(&mut self) {
        let _: Vec<()> = self.each(&["CONFIG", "RESETSTAT"]);
        let _: Vec<()> = self.each(&["SLOWLOG", "RESET"]);
    }

    /// Each server's `INFO commandstats`.
    fn commandstats(&mut self) -> Vec<std::collections::HashMap<String, (u64, u64)>> {
        let texts: Vec<String> = self.each(&["INFO", "commandstats"]);
        texts.iter().map(|t| sessiontop::conn::pace::parse_commandstats(t)).collect()
    }

    /// Redis time (µs) of every command since the reset, but the bench's own, over the servers.
    fn floor_us(&mut self) -> u64 {
        self.commandstats()
            .iter()
            .flat_map(|stats| stats.iter().filter(|(name, _)| !is_bench_own(name)).map(|(_, (_, usec))| *usec))
            .sum()
    }

    /// What each command sessiontop sent cost per session since the reset, summed over the
    /// servers: calls and Redis µs, the dearest first.
    fn per_session(&mut self) -> String {
        let mut by_name: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for stats in self.commandstats() {
            for (name, (calls, usec)) in stats.into_iter().filter(|(name, _)| !is_bench_own(name)) {
                let entry = by_name.entry(name).or_default();
                entry.0 += calls;
                entry.1 += usec;
            }
        }
        let mut rows: Vec<(String, (u64, u64))> = by_name.into_iter().collect();
        rows.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
        let n = self.sessions.max(1) as f64;
        let shown: Vec<String> = rows
            .iter()
            .take(8)
            .map(|(name, (calls, usec))| format!("{name} {:.2}x {:.2} µs", *calls as f64 / n, *usec as f64 / n))
            .collect();
        shown.join(", ")
    }

    /// The dearest command by its mean cost since the reset on any server, but the bench's own.
    fn dearest(&mut self) -> (String, f64) {
        self.commandstats()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !is_bench_own(name))
            .filter(|(_, (calls, _))| *calls > 0)
            .map(|(name, (calls, usec))| (name, usec as f64 / calls as f64))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or_default()
    }

    /// Commands of 1 ms or more since the reset, as `SLOWLOG` has them (the slowest few, and
    /// how many there were). The slowlog times the command's wall clock inside Redis, so on a
    /// loaded machine a preempted O(1) command lands there too.
    fn slow_commands(&mut self) -> (u64, Vec<(i64, String)>) {
        let count: u64 = self.each::<u64>(&["SLOWLOG", "LEN"]).into_iter().sum();
        let entries: Vec<redis::Value> =
            self.each::<Vec<redis::Value>>(&["SLOWLOG", "GET", "128"]).into_iter().flatten().collect();
        let mut slow: Vec<(i64, String)> = entries
            .iter()
            .filter_map(|e| match e {
                redis::Value::Array(fields) if fields.len() >= 4 => {
                    let us: i64 = redis::from_redis_value(fields[2].clone()).ok()?;
                    let args: Vec<String> = redis::from_redis_value(fields[3].clone()).ok()?;
                    let name = args.first()?.to_ascii_lowercase();
                    let shown: Vec<&str> = args.iter().take(4).map(String::as_str).collect();
                    (!is_bench_own(&name)).then(|| (us, shown.join(" ")))
                }
                _ => None,
            })
            .collect();
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        slow.truncate(3);
        (count, slow)
    }

    /// A bare `SCAN` walk of every key, `COUNT` [`SCAN_COUNT`], cursor after cursor on each
    /// server in turn: what any tool that lists the keys must spend at least.
    fn scan_walk(&mut self) -> Duration {
        let started = Instant::now();
        let mut seen = 0u64;
        for con in &mut self.cons {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT).query(con).unwrap();
                seen += keys.len() as u64;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        assert!(seen >= self.sessions as u64, "the walk saw every session");
        started.elapsed()
    }

    /// Redis's own CPU seconds so far (user + system), summed over the servers.
    fn cpu_s(&mut self) -> f64 {
        self.cpu_each().iter().sum()
    }

    /// Each server's own CPU seconds so far (user + system).
    fn cpu_each(&mut self) -> Vec<f64> {
        let texts: Vec<String> = self.each(&["INFO", "cpu"]);
        texts
            .iter()
            .map(|text| {
                text.lines()
                    .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
                    .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                    .sum()
            })
            .collect()
    }

    fn layout_args(&self) -> Vec<String> {
        match self.kind {
            load::Kind::Trt => vec!["--layout".into(), "trt".into()],
            load::Kind::Flask => vec!["--layout".into(), "flask".into(), "--prefix".into(), "chatmrpt:".into()],
        }
    }

    fn live_text(&self) -> String {
        format!("{} live", sessiontop::util::text::grouped(self.sessions as u64))
    }
}

fn is_bench_own(name: &str) -> bool {
    ["config", "slowlog", "info", "flushall", "dbsize"].iter().any(|own| name.starts_with(own))
}

fn bench(kind: load::Kind, sessions: usize, tmux: bool) -> Store {
    let server = LocalRedis::start(Options { listen: Listen::Tcp, ..Options::default() }).unwrap_or_else(|e| {
        eprintln!("scale bench: {e}");
        std::process::exit(1);
    });
    let url = server.url();
    let port: u16 = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a TCP url");
    let started = Instant::now();
    load::load(port, kind, sessions);
    let con = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let store = Store { _servers: Servers::One(server), cons: vec![con], url, kind, sessions };
    measure(store, "one server", started.elapsed(), tmux)
}

/// `sessions` TRT sessions on a cluster of three primaries (no replicas: the machine's memory
/// goes to the sessions).
fn bench_cluster(sessions: usize, tmux: bool) -> Store {
    let cluster = LocalCluster::start(ClusterOptions { replicas_per_primary: 0, ..ClusterOptions::default() })
        .unwrap_or_else(|e| {
            eprintln!("scale bench: {e}");
            std::process::exit(1);
        });
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port().unwrap()).collect();
    // The cluster gave the primaries equal shares of the slots, in order.
    let share = sessiontop::conn::slot::SLOTS / ports.len();
    let owner = |slot: u16| (usize::from(slot) / share).min(ports.len() - 1);
    let started = Instant::now();
    load::load_cluster(&ports, owner, load::Kind::Trt, sessions);
    let cons = (0..ports.len()).map(|i| cluster.connection(i).unwrap()).collect();
    let url = cluster.url();
    let store = Store { _servers: Servers::Cluster(cluster), cons, url, kind: load::Kind::Trt, sessions };
    measure(store, "three primaries", started.elapsed(), tmux)
}

/// The census at `--budget 0` of both stores, one after the other, three times: this machine
/// is shared, and a busy spell slows whichever run it meets, so the two are compared in pairs
/// run back to back, and the median pair's ratio is the figure.
fn side_by_side(one: &mut Store, cluster: &mut Store) {
    let mut ratios = Vec::new();
    for round in 1..=3 {
        let census = |store: &mut Store| {
            let before = store.cpu_s();
            let run = snapshot(store, &["--json", "--limit", "20", "--budget", "0"]);
            assert_eq!(run.json["sessions"]["total"], store.sessions as u64, "the census counted every session");
            (run.took, store.cpu_s() - before, run.cpu_s)
        };
        let (a, a_redis, a_own) = census(one);
        let (b, b_redis, b_own) = census(cluster);
        let ratio = b.as_secs_f64() / a.as_secs_f64();
        ratios.push(ratio);
        println!(
            "side by side {round}  census --budget 0: {} on one server {:.0} ms (Redis {:.1} s, sessiontop {:.1} s of CPU), {} on three primaries {:.0} ms (Redis {:.1} s, sessiontop {:.1} s): {ratio:.2}x (target <= 3x)",
            sessiontop::util::text::grouped(one.sessions as u64),
            ms(a),
            a_redis,
            a_own,
            sessiontop::util::text::grouped(cluster.sessions as u64),
            ms(b),
            b_redis,
            b_own,
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!("side by side    median ratio {:.2}x (target <= 3x)", ratios[ratios.len() / 2]);
}

fn measure(mut store: Store, on: &str, loaded: Duration, tmux: bool) -> Store {
    let (kind, sessions) = (store.kind, store.sessions);
    let keys: u64 = store.each::<u64>(&["DBSIZE"]).into_iter().sum();
    let _: Vec<()> = store.each(&["CONFIG", "SET", "slowlog-log-slower-than", "1000"]);
    let _: Vec<()> = store.each(&["CONFIG", "SET", "slowlog-max-len", "100000"]);
    let info: String = store.cmd(&["INFO", "server"]);
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string();
    println!(
        "\n== {} {} sessions on {on} ({} keys), loaded in {loaded:.1?}, redis-server {version} ==",
        sessiontop::util::text::grouped(sessions as u64),
        kind.name(),
        sessiontop::util::text::grouped(keys),
    );

    let mut dear = Dearest::default();

    // The first screen, headless.
    let mut firsts = Vec::new();
    for _ in 0..3 {
        firsts.push(snapshot(&store, &["--no-census", "--limit", "20"]).took);
    }
    println!("first screen    snapshot --no-census        {:>9.0} ms (median of 3)", ms(median(firsts)));

    // The census, at --budget 0 and at the default, beside its floor.
    for budget in [Some("0"), None] {
        store.reset_stats();
        let mut args = vec!["--json", "--limit", "20"];
        if let Some(b) = budget {
            args.extend(["--budget", b]);
        }
        let before = store.cpu_s();
        let Run { took: t, rss_kib, cpu_s: own_cpu, json } = snapshot(&store, &args);
        let cpu = store.cpu_s() - before;
        let floor = store.floor_us() as f64 / 1e6;
        assert_eq!(json["sessions"]["total"], sessions as u64, "the census counted every session");
        assert_eq!(json["sessions"]["undecodable"], 0, "the loaded payloads decode");
        assert_eq!(json["sessions"]["no_stage"], 0, "every loaded session has a stage");
        println!(
            "census          --budget {:<18} {:>9.0} ms  floor {:>7.0} ms  ratio {:.2}x  peak RSS {:>4} MiB  Redis CPU {:>4.0}% of a core, {:.2}x the floor (own_load says {}); sessiontop CPU {:.1} s ({:.1} µs a session)",
            budget.unwrap_or("default (50%)"),
            ms(t),
            floor * 1e3,
            t.as_secs_f64() / floor,
            rss_kib / 1024,
            cpu / t.as_secs_f64() * 100.0,
            cpu / floor,
            percent(&json["own_load"]["redis_cpu_share"]),
            own_cpu,
            own_cpu * 1e6 / sessions.max(1) as f64,
        );
        if budget == Some("0") {
            println!("  per session     {}", store.per_session());
        }
        dear.take(&mut store);
    }
    census_beside_scan(&mut store);

    if kind == load::Kind::Trt && on == "one server" {
        watch_passes(&mut store);
    }

    if sessions <= 100_000 {
        if kind == load::Kind::Trt {
            let t = snapshot(&store, &["--json", "--limit", "20"]).took;
            match naive_python(&store.url) {
                Some(naive) => println!(
                    "own listing     the app's Python client     {:>9.0} ms  plain snapshot {:.0} ms: {:.1}x faster (target >= 10x)",
                    ms(naive),
                    ms(t),
                    naive.as_secs_f64() / t.as_secs_f64()
                ),
                None => println!("own listing     skipped: needs python3 with redis-py (pip install redis)"),
            }
        }
        store.reset_stats();
        let before = store.cpu_s();
        let Run { took: t, json, .. } = snapshot(&store, &["--json", "--limit", "20", "--budget", "2%"]);
        let cpu = store.cpu_s() - before;
        println!(
            "census          --budget 2%                 {:>9.0} ms  Redis CPU {:.1}% of a core (target <= 3%; own_load says {})",
            ms(t),
            cpu / t.as_secs_f64() * 100.0,
            percent(&json["own_load"]["redis_cpu_share"]),
        );
        dear.take(&mut store);
    }

    if tmux {
        store.reset_stats();
        dashboard(&mut store);
        dear.take(&mut store);
    }

    dear.print();
    store
}

/// The census at `--budget 0` beside a bare `SCAN` walk of the same keyspace, in pairs run back
/// to back, three times: the ratio of each pair and the median (target <= 1.5x).
fn census_beside_scan(store: &mut Store) {
    let mut ratios = Vec::new();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        let scan = store.scan_walk();
        let census = snapshot(store, &["--json", "--limit", "20", "--budget", "0"]).took;
        ratios.push(census.as_secs_f64() / scan.as_secs_f64());
        pairs.push(format!("{:.0}/{:.0}", ms(census), ms(scan)));
    }
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "beside SCAN     census --budget 0 / bare SCAN walk (COUNT {SCAN_COUNT}) ms: {} = {}, median {:.2}x (target <= 1.5x)",
        pairs.join(", "),
        shown.join(", "),
        ratios[ratios.len() / 2]
    );
}

/// The `COUNT` of a bare `SCAN` walk.
const SCAN_COUNT: usize = 1000;

/// A watch's census passes with keyspace events on, as the dashboard and `serve` run them, each
/// beside a bare `SCAN` walk run just before it: a pass after a break in the events reads every
/// session whole; one after a pass with the events heard throughout reads settled (or light,
/// past what it keeps) the sessions nothing wrote to: here all of them, then all but a tenth
/// written as the application writes a turn. Three rounds; wall time, the commandstats floor and
/// the ratio to the walk of each, and the median ratio of each kind.
fn watch_passes(store: &mut Store) {
    use sessiontop::collect::carry::Carried;
    use sessiontop::collect::census::{self, CensusLinks, LightReads};
    use sessiontop::collect::events::{self, Changes};
    use std::sync::Arc;

    let _: Vec<()> = store.each(&["CONFIG", "SET", "notify-keyspace-events", "Kg$hlzxen"]);
    let mut argv = vec!["sessiontop".to_string(), "--url".into(), store.url.clone(), "--budget".into(), "0".into()];
    argv.extend(store.layout_args());
    let cli = <sessiontop::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    let setup = sessiontop::setup::Setup::new(&cli.global).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kinds = ["whole", "settled", "a tenth written"];
    let mut shown = Vec::new();
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    runtime.block_on(async {
        let opened = sessiontop::headless::open(&setup).await.unwrap();
        let layout = Arc::new(opened.layout.clone().unwrap());
        let changes = Arc::new(Changes::default());
        let _subscription = events::subscribe(&opened.topology, &layout, 0, Some(changes.clone())).await.unwrap();
        changes.subscribed();
        let mut links = CensusLinks::open(&opened.topology).await.unwrap();
        let mut carried = Carried::default();
        let mut generation = 0;
        for round in 0..3 {
            for (k, kind) in kinds.iter().enumerate() {
                match k {
                    0 => {
                        changes.broken();
                        changes.subscribed();
                    }
                    2 => {
                        let written = write_a_tenth(store, round);
                        let since = Instant::now();
                        while changes.unchanged(&written).iter().any(|quiet| *quiet) {
                            assert!(since.elapsed() < Duration::from_secs(60), "the writes were never all heard");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    _ => {}
                }
                let walk = store.scan_walk();
                store.reset_stats();
                generation += 1;
                let started = Instant::now();
                let light = LightReads { changes: &changes, carried: &mut carried };
                let outcome =
                    census::run_pass(&mut links, &layout, setup.collect.census, generation, None, Some(light), |_| {})
                        .await
                        .unwrap();
                let took = started.elapsed();
                assert_eq!(outcome.tally.total, store.sessions as u64, "the pass counted every session");
                let ratio = took.as_secs_f64() / walk.as_secs_f64();
                ratios[k].push(ratio);
                shown.push(format!(
                    "{kind} {:.0}/{:.0} ms = {ratio:.2}x (floor {:.0} ms)",
                    ms(took),
                    ms(walk),
                    store.floor_us() as f64 / 1e3
                ));
            }
        }
    });
    let medians: Vec<String> = kinds
        .iter()
        .zip(&mut ratios)
        .map(|(kind, r)| {
            r.sort_by(f64::total_cmp);
            format!("{kind} {:.2}x", r[r.len() / 2])
        })
        .collect();
    println!("watch passes    --budget 0, events on, pass/walk: {}", shown.join(", "));
    println!("                medians: {} (target <= 1.5x)", medians.join(", "));
}

/// A turn of every tenth session (a different tenth each round), as the application writes it;
/// the ids written.
fn write_a_tenth(store: &mut Store, round: usize) -> Vec<sessiontop::engine::names::SessionId> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let written: Vec<usize> = (0..store.sessions).filter(|n| n % 10 == round).collect();
    let mut pipe = redis::pipe();
    for n in &written {
        let mut add = |args: &[&[u8]]| {
            let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
            for a in &args[1..] {
                c.arg(*a);
            }
            pipe.add_command(c).ignore();
        };
        load::session_with(&mut add, store.kind, *n, now);
    }
    let _: () = pipe.query(&mut store.cons[0]).unwrap();
    written.into_iter().map(|n| format!("user_{n}").into()).collect()
}

/// The dearest commands seen over the runs on one store.
#[derive(Default)]
struct Dearest {
    by_mean: Vec<(String, f64)>,
    slow_count: u64,
    slowest: Vec<(i64, String)>,
}

impl Dearest {
    /// What the server recorded since its stats were last reset.
    fn take(&mut self, store: &mut Store) {
        self.by_mean.push(store.dearest());
        let (n, some) = store.slow_commands();
        self.slow_count += n;
        self.slowest.extend(some);
    }

    fn print(mut self) {
        let (name, us) = self.by_mean.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or_default();
        println!("dearest command {name:<27} {us:>9.0} µs per call (target < 1000)");
        self.slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
        self.slowest.truncate(3);
        let slowest: Vec<String> = self.slowest.iter().map(|(us, c)| format!("{c} ({us} µs)")).collect();
        println!(
            "slowlog         {} commands of 1 ms or more by wall clock; slowest: {}",
            self.slow_count,
            slowest.join("; ")
        );
    }
}

/// A run of the real binary.
struct Run {
    took: Duration,
    /// Peak RSS.
    rss_kib: i64,
    /// CPU time (user + system).
    cpu_s: f64,
    /// Its JSON (when it printed any).
    json: serde_json::Value,
}

/// The real binary, run to its end.
#[expect(clippy::zombie_processes, reason = "the child is reaped by wait4, for its own rusage")]
fn snapshot(store: &Store, args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiontop"))
        .arg("--url")
        .arg(&store.url)
        .args(store.layout_args())
        .arg("snapshot")
        .args(args)
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let (status, rss_kib, cpu_s) = wait_with_rusage(child.id() as i32);
    let took = started.elapsed();
    assert!(status == 0, "snapshot {args:?} exited with {status}");
    let json = serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null);
    Run { took, rss_kib, cpu_s, json }
}

/// Waits for one child and returns its exit status, peak RSS (KiB) and CPU seconds.
fn wait_with_rusage(pid: i32) -> (i32, i64, f64) {
    let mut status = 0;
    // SAFETY: wait4 fills the status and rusage we pass for the child we spawned.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (libc::WEXITSTATUS(status), usage.ru_maxrss, seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn naive_python(url: &str) -> Option<Duration> {
    let ok = Command::new("python3").args(["-c", "import redis"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/trt_naive_client.py");
    let out = Command::new("python3").arg(script).arg(url).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let seconds: f64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
}

/// A dashboard in a detached tmux session, read back with `capture-pane`.
struct Dashboard {
    name: String,
    _dir: tempfile::TempDir,
}

impl Dashboard {
    fn start(store: &Store, extra: &[&str]) -> Dashboard {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("sessiontop-bench-{}", std::process::id());
        let mut command = vec![env!("CARGO_BIN_EXE_sessiontop").to_string(), "--url".into(), store.url.clone()];
        command.extend(store.layout_args());
        command.extend(extra.iter().map(|s| s.to_string()));
        let shell =
            format!("XDG_STATE_HOME={d} XDG_CONFIG_HOME={d} exec {}", command.join(" "), d = dir.path().display());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "48", &shell])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux new-session");
        Dashboard { name, _dir: dir }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        Command::new("tmux").args(["send-keys", "-t", &self.name]).args(keys).status().unwrap();
    }

    /// Waits until `done` holds for the screen; the time it took, or `None` after `limit`.
    fn wait(&self, limit: Duration, done: impl Fn(&str) -> bool) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if done(&self.screen()) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// (RSS now, peak RSS) of the dashboard process, KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let out = Command::new("tmux").args(["display", "-p", "-t", &self.name, "#{pane_pid}"]).output().unwrap();
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).status();
    }
}

/// The first data row of the sessions table (the line after its column header).
fn first_row(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    lines
        .iter()
        .position(|l| l.contains("IDLE") && l.contains("TTL"))
        .and_then(|i| lines.get(i + 1))
        .map(|l| l.to_string())
        .unwrap_or_default()
}

fn dashboard(store: &mut Store) {
    let row_marker = match store.kind {
        load::Kind::Trt => "user_",
        load::Kind::Flask => "_AbCdEf",
    };
    let wait = Duration::from_secs(900);
    {
        let dash = Dashboard::start(store, &["--budget", "0"]);
        let first = dash.wait(Duration::from_secs(30), |s| first_row(s).contains(row_marker));
        println!("first screen    dashboard, first rows       {:>9.0} ms", first.map_or(f64::NAN, ms));
        let live = store.live_text();
        let census = dash.wait(wait, |s| s.contains(&live));
        let (rss, peak) = dash.rss_kib();
        println!(
            "dashboard       full census (--budget 0)    {:>9.0} ms  \"{live}\"  RSS {} MiB (peak {} MiB)",
            census.map_or(f64::NAN, ms),
            rss / 1024,
            peak / 1024
        );

        // Sort: reverse the order and wait for the first row to change.
        let mut sorts = Vec::new();
        for _ in 0..6 {
            let before = first_row(&dash.screen());
            let started = Instant::now();
            dash.keys(&["S"]);
            if dash.wait(Duration::from_secs(10), |s| first_row(s) != before).is_some() {
                sorts.push(started.elapsed());
            }
        }
        sorts.sort();
        println!(
            "dashboard       sort (S) key to redraw      {:>9.0} ms median, {:.0} ms worst of {}",
            sorts.get(sorts.len() / 2).map_or(f64::NAN, |d| ms(*d)),
            sorts.last().map_or(f64::NAN, |d| ms(*d)),
            sorts.len()
        );

        // Filter: ten characters typed as a fast typist types them (ten a second), then the
        // rows that match after the last; and the same ten pasted at once.
        // A session the table holds: past --max-rows (a million) it keeps the most recently
        // active, and the loader makes session n as recent as n modulo 86,000.
        let n = if store.sessions <= 1_000_000 { store.sessions - 1 } else { 86_000 * ((store.sessions - 1) / 86_000) };
        let target = match store.kind {
            load::Kind::Trt => format!("user_{n}"),
            load::Kind::Flask => format!("s{n}_AbCd"),
        };
        let typed: String = target.chars().take(10).collect();
        dash.keys(&["/"]);
        let (head, last) = typed.split_at(typed.len() - 1);
        for c in head.chars() {
            dash.keys(&["-l", &c.to_string()]);
            std::thread::sleep(Duration::from_millis(100));
        }
        let started = Instant::now();
        dash.keys(&["-l", last]);
        let echo = dash.wait(Duration::from_secs(10), |s| s.contains(&typed));
        let rows = dash.wait(Duration::from_secs(10), |s| first_row(s).contains(&typed));
        let rows = rows.map(|_| started.elapsed());
        dash.keys(&["Escape"]);
        dash.wait(Duration::from_secs(10), |s| !s.contains(&typed));
        dash.keys(&["/"]);
        dash.keys(&["-l", &typed]);
        let pasted = dash.wait(Duration::from_secs(10), |s| first_row(s).contains(&typed));
        println!(
            "dashboard       filter '{typed}' typed: last key echoed {:.0} ms, rows {:.0} ms after it; pasted: rows after {:.0} ms",
            echo.map_or(f64::NAN, ms),
            rows.map_or(f64::NAN, ms),
            pasted.map_or(f64::NAN, ms)
        );
    }

    // What watching costs Redis at the default budget: the idle server's own CPU first.
    let window = Duration::from_secs(30);
    let before = store.cpu_each();
    std::thread::sleep(window);
    let idle: Vec<f64> = store.cpu_each().iter().zip(&before).map(|(a, b)| (a - b) / window.as_secs_f64()).collect();
    let dash = Dashboard::start(store, &[]);
    dash.wait(Duration::from_secs(30), |s| first_row(s).contains(row_marker));
    std::thread::sleep(Duration::from_secs(5));
    let before = store.cpu_each();
    std::thread::sleep(window);
    let each: Vec<f64> = store.cpu_each().iter().zip(&before).map(|(a, b)| (a - b) / window.as_secs_f64()).collect();
    if each.len() > 1 {
        let shares: Vec<String> = each.iter().zip(&idle).map(|(w, i)| format!("{:.1}%", (w - i) * 100.0)).collect();
        println!("dashboard       each node's Redis CPU while watching: {} (target <= 2% each)", shares.join(", "));
    }
    let (watching, idle): (f64, f64) = (each.iter().sum(), idle.iter().sum());
    let target = if each.len() > 1 { "summed over the nodes" } else { "target <= 2%" };
    let header = dash.screen().lines().next().unwrap_or_default().to_string();
    let shown = header.split(" │ ").find(|p| p.contains("% redis")).unwrap_or("(not shown)").trim().to_string();
    println!(
        "dashboard       Redis CPU while watching    {:>8.1}% of a core (idle server {:.1}%, with the dashboard {:.1}%; {target}); header: {shown}",
        (watching - idle) * 100.0,
        idle * 100.0,
        watching * 100.0
    );
}

fn percent(v: &serde_json::Value) -> String {
    v.as_f64().map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
