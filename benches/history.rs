//! A day of history through the dashboard's model: a server poll every second for 24 hours
//! (every figure the dashboard charts) and a census pass every 10 seconds (live sessions and
//! seven stages), then the bytes the history holds and what recording cost
//! (`cargo bench --bench history`). No Redis: the polls are made up, the store is the real one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

use std::time::Instant;

use sessiontop::conn::info::ServerStats;
use sessiontop::engine::domain::{CensusTally, LinkState, TargetInfo};
use sessiontop::engine::model::{Model, ModelSettings};
use sessiontop::engine::msg::Update;

const START_MS: i64 = 1_800_000_000_000;
/// Seven stages, as the TRT layout has.
const STAGES: [&str; 7] = sessiontop::demo::TRT_SUBSTATES;

fn main() {
    let target = TargetInfo { url: "redis://bench".into(), name: None, read_only: true };
    let mut model = Model::new(target, ModelSettings::default(), START_MS);
    model.apply(Update::Link(LinkState::Connected { since: START_MS }));
    let seconds: i64 = 24 * 60 * 60;
    let started = Instant::now();
    let mut checkpoints = Vec::new();
    for s in 0..seconds {
        let now = START_MS + s * 1000;
        model.tick(now, (s as u64) * 300);
        let stats = ServerStats::from_info(&format!(
            "used_memory:{}\r\nused_memory_rss:{}\r\nmaxmemory:4294967296\r\nmem_fragmentation_ratio:1.{:02}\r\n\
             connected_clients:{}\r\nblocked_clients:0\r\ninstantaneous_ops_per_sec:{}\r\nkeyspace_hits:{}\r\n\
             keyspace_misses:{}\r\nevicted_keys:0\r\nexpired_keys:{}\r\nuptime_in_seconds:{}\r\nrole:master\r\n\
             run_id:abc\r\n",
            500_000_000 + s * 100,
            600_000_000 + s * 100,
            s % 50,
            40 + s % 7,
            1500 + s % 300,
            s * 90,
            s * 10,
            s / 3,
            100_000 + s
        ));
        model.apply(Update::Server { stats: Box::new(stats), unavailable: Vec::new() });
        if s % 10 == 0 {
            let mut tally = CensusTally { total: 100_000 + (s as u64 % 1000), ..CensusTally::default() };
            for (i, stage) in STAGES.iter().enumerate() {
                tally.by_substate.insert(stage.to_string(), 10_000 + i as u64 * 100 + (s as u64 % 50));
            }
            model.apply(Update::CensusDone {
                generation: (s / 10) as u64,
                tally,
                duration_ms: 900,
                orphan_ids: Vec::new(),
            });
            model.set_stalled(600, vec![(STAGES[2].to_string(), 600)], Some((s / 10) as u64));
        }
        if (s + 1) % (6 * 60 * 60) == 0 {
            checkpoints.push(((s + 1) / 3600, model.history.bytes()));
        }
    }
    let elapsed = started.elapsed();
    for (hours, bytes) in &checkpoints {
        println!(
            "history  after {hours:>2} h at a 1 s poll: {:>9} bytes ({:.2} MiB)",
            bytes,
            *bytes as f64 / (1 << 20) as f64
        );
    }
    println!(
        "history  {} series; {} server polls and {} passes recorded in {:.2} s ({:.1} µs a poll, findings included)",
        model.history.len(),
        seconds,
        seconds / 10,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / seconds as f64
    );
}
