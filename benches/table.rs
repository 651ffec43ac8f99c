//! The sessions table's engine alone, at a million rows: what taking rows in, a sort, and each
//! keystroke of a filter cost on the engine's thread, and the bytes the store holds. No Redis:
//! this isolates the work the dashboard does off its UI thread (`cargo bench --bench table`).
//!
//! Three id shapes: TRT's `user_<n>`, Flask-Session's 43-character random ids, and ids that
//! share a long common prefix (`000…0s<n>_AbCd…`, as the scale benchmark's loader writes them).
//! `SESSIONTOP_BENCH_ROWS` sets the row count (default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test, a bench or a generator: a failure should stop it loudly

use std::sync::Arc;
use std::time::{Duration, Instant};

use sessiontop::engine::domain::{SessionRow, Ttl};
use sessiontop::engine::layout::IdleSource;
use sessiontop::engine::table::{Engine, Message, Rules, SortColumn, TableRequest};

const NOW_MS: i64 = 1_800_000_000_000;

fn main() {
    let rows: usize = std::env::var("SESSIONTOP_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    for shape in [Shape::Trt, Shape::FlaskRandom, Shape::FlaskPadded] {
        bench(shape, rows);
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Trt,
    FlaskRandom,
    FlaskPadded,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Trt => "trt user_<n>",
            Shape::FlaskRandom => "flask random 43",
            Shape::FlaskPadded => "flask padded 43",
        }
    }

    fn id(self, n: usize, rng: &mut fastrand::Rng) -> String {
        const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        match self {
            Shape::Trt => format!("user_{n}"),
            Shape::FlaskRandom => (0..43).map(|_| URLSAFE[rng.usize(..64)] as char).collect(),
            Shape::FlaskPadded => format!("{:0>43}", format!("s{n}_AbCdEfGhIjKlMnOp")),
        }
    }

    fn rules(self) -> Rules {
        match self {
            Shape::Trt => Rules { by_substate: true, ..Rules::default() },
            _ => Rules { idle: IdleSource::Ttl, lifetime_s: Some(86_400), ..Rules::default() },
        }
    }
}

fn bench(shape: Shape, count: usize) {
    let mut rng = fastrand::Rng::with_seed(7);
    let stages: Vec<Arc<str>> =
        ["uploaded", "tpr_analysis", "risk_analysis", "itn_planning", "analysis_complete"].map(Arc::from).to_vec();
    let substates: Vec<Arc<str>> = sessiontop::demo::TRT_SUBSTATES.map(Arc::from).to_vec();
    // Rows arrive in the order a walk of the keyspace finds them, which is not the order shown.
    let mut arrival: Vec<usize> = (0..count).collect();
    rng.shuffle(&mut arrival);
    let batches: Vec<Vec<SessionRow>> = arrival
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&n| {
                    let trt = matches!(shape, Shape::Trt);
                    SessionRow {
                        stage: Some(stages[n % stages.len()].clone()),
                        substate: trt.then(|| substates[n % substates.len()].clone()),
                        last_interaction: trt.then(|| (NOW_MS - (n % 86_000) as i64 * 1000) * 1000 - n as i64 % 997),
                        ttl: Ttl::ExpiresAt(NOW_MS + (86_400 - (n % 86_000) as i64) * 1000),
                        history_len: trt.then_some((n % 50) as u64),
                        generation: 1,
                        ..SessionRow::new(shape.id(n, &mut rng))
                    }
                })
                .collect()
        })
        .collect();
    // The same rows seen again by a second pass, but one in twenty.
    let pass_two: Vec<SessionRow> = batches
        .iter()
        .flatten()
        .enumerate()
        .filter(|(i, _)| i % 20 != 0)
        .map(|(_, r)| SessionRow { generation: 2, ..r.clone() })
        .collect();
    // A store larger than --max-rows is trimmed as rows come (SESSIONTOP_BENCH_MAX_ROWS).
    let max_rows = std::env::var("SESSIONTOP_BENCH_MAX_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(count);
    let mut engine = Engine::new(max_rows);
    engine.apply(Message::Rules(shape.rules()));
    engine.apply(Message::Clock(NOW_MS));
    let started = Instant::now();
    // The longest one batch holds the table's thread: a key pressed meanwhile waits that long.
    let mut longest = Duration::ZERO;
    for rows in batches {
        let batch = Instant::now();
        engine.apply(Message::Rows { rows, generation: Some(1) });
        longest = longest.max(batch.elapsed());
    }
    engine.apply(Message::PassDone { generation: 1 });
    let taken = started.elapsed();
    let mut serial = 0;
    let mut view = |engine: &mut Engine, sort: SortColumn, reverse: bool, filter: &str| -> (Duration, usize) {
        serial += 1;
        let request =
            TableRequest { sort, reverse, filter: filter.into(), rows: 40, serial, ..TableRequest::default() };
        let started = Instant::now();
        engine.apply(Message::Request(request));
        let v = engine.view(Instant::now()).expect("a view after a request");
        (started.elapsed(), v.len)
    };
    view(&mut engine, SortColumn::Id, false, "");
    println!(
        "\n== {} rows, ids {} ==\ntake in          {:>8.0} ms ({:.0} ns a row, the longest batch of 1000 {:.0} ms); store {} MiB",
        count,
        shape.name(),
        ms(taken),
        taken.as_nanos() as f64 / count as f64,
        ms(longest),
        engine.store().heap_bytes() >> 20
    );
    // A second pass that no longer sees one row in twenty: the end of a pass drops them (and a
    // store past --max-rows is trimmed), holding the table's thread; a key pressed then waits.
    for rows in pass_two.chunks(1000) {
        engine.apply(Message::Rows { rows: rows.to_vec(), generation: Some(2) });
    }
    let ended = Instant::now();
    engine.apply(Message::PassDone { generation: 2 });
    let pass_end = ended.elapsed();
    let (after, _) = view(&mut engine, SortColumn::Idle, true, "");
    println!("pass end         {:>8.1} ms, then a sort {:.1} ms", ms(pass_end), ms(after));
    let mut worst = Duration::ZERO;
    for column in SortColumn::ALL {
        for reverse in [false, true] {
            let (t, _) = view(&mut engine, column, reverse, "");
            worst = worst.max(t);
            print!("sort {:<8}{} {:>6.1} ms  ", column.title(), if reverse { "▼" } else { "▲" }, ms(t));
        }
        println!();
    }
    println!("sort worst       {:>8.1} ms", ms(worst));
    // A filter typed a key at a time, then one from scratch (pasted), then cleared.
    let typed = match shape {
        Shape::Trt => format!("user_{}", count - 1).chars().take(10).collect(),
        Shape::FlaskRandom => "tpr".to_string(),
        Shape::FlaskPadded => format!("s{}_AbCd", count - 1).chars().take(10).collect::<String>(),
    };
    let mut per_key = Vec::new();
    for end in 1..=typed.len() {
        per_key.push(view(&mut engine, SortColumn::Idle, false, &typed[..end]));
    }
    let keys: Vec<String> = per_key.iter().map(|(t, _)| format!("{:.1}", ms(*t))).collect();
    println!(
        "filter '{typed}' key by key: {} ms; {} rows match",
        keys.join(" "),
        per_key.last().map_or(0, |(_, n)| *n)
    );
    view(&mut engine, SortColumn::Idle, false, "");
    let (pasted, n) = view(&mut engine, SortColumn::Idle, false, &typed);
    println!("filter pasted    {:>8.1} ms, {n} rows", ms(pasted));
    let (cleared, n) = view(&mut engine, SortColumn::Idle, false, "");
    println!("filter cleared   {:>8.1} ms, {n} rows", ms(cleared));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
