//! What sessiontop's commands cost Redis, and pacing by it.
//!
//! `--budget` is a share of one Redis core (`2%`), a command rate (`20000/s`), or `0` for no
//! limit. Every command sessiontop sends is counted by kind ([`Kind`]); the cost of one call of
//! each kind is learnt from `INFO commandstats` deltas (the server's own `usec` over its
//! `calls`), or, where `INFO` is denied, from the service time of sessiontop's own batches.
//! Work that can wait (the census, the search for wildcard keys) asks the [`Pacer`] before each
//! batch and waits until the batch's estimated cost fits the share; the page poll and writes are
//! only charged. Pages are sized by measured cost so that no single command costs Redis more
//! than [`COMMAND_TARGET_US`], and the pacer slows down when Redis does (its round trips take
//! longer than their own recent baseline) and recovers when it is quick again.
//!
//! Must never do I/O: the callers send the commands and report what they saw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most Redis time one command may take, by its estimated cost, when sessiontop sizes a
/// page or a `SCAN` (half of the 1 ms no command may reach).
pub const COMMAND_TARGET_US: f64 = 400.0;
/// The dashboard's default budget: 2% of one Redis core.
pub const DEFAULT_DASHBOARD_SHARE: f64 = 0.02;
/// One-shot commands' default: they are short and someone waits for them, so they may take
/// half of one Redis core while they run (and back off when Redis slows down).
pub const DEFAULT_ONE_SHOT_SHARE: f64 = 0.5;
/// How often the costs are learnt again from `INFO commandstats`.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// How often the first [`EARLY_SAMPLES`] samples are taken.
const EARLY_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
const EARLY_SAMPLES: u32 = 10;
/// The bucket holds at most this much time of the share, so a long rest is not spent at once.
const BURST: Duration = Duration::from_millis(250);

/// The commands sessiontop sends, by kind; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pttl,
    Hstrlen,
    Hmget,
    Llen,
    Zscore,
    Strlen,
    Getrange,
    MemoryUsage,
    Zrangebyscore,
    Zrevrange,
    Zrevrangebyscore,
    Scan,
    Exists,
    Type,
    Info,
    Get,
    Hlen,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::Pttl,
        Kind::Hstrlen,
        Kind::Hmget,
        Kind::Llen,
        Kind::Zscore,
        Kind::Strlen,
        Kind::Getrange,
        Kind::MemoryUsage,
        Kind::Zrangebyscore,
        Kind::Zrevrange,
        Kind::Zrevrangebyscore,
        Kind::Scan,
        Kind::Exists,
        Kind::Type,
        Kind::Info,
        Kind::Get,
        Kind::Hlen,
        Kind::Other,
    ];

    /// The kind of a command by its name and first argument (`MEMORY USAGE`), as `INFO
    /// commandstats` names it: one table of names for both.
    pub fn of(name: &[u8], sub: Option<&[u8]>) -> Kind {
        if name.eq_ignore_ascii_case(b"memory") {
            return if sub.is_some_and(|s| s.eq_ignore_ascii_case(b"usage")) { Kind::MemoryUsage } else { Kind::Other };
        }
        Kind::ALL
            .into_iter()
            .find(|k| *k != Kind::MemoryUsage && k.stat_name().is_some_and(|s| name.eq_ignore_ascii_case(s.as_bytes())))
            .unwrap_or(Kind::Other)
    }

    /// The `cmdstat_` name `INFO commandstats` reports the kind under.
    fn stat_name(self) -> Option<&'static str> {
        Some(match self {
            Kind::Pttl => "pttl",
            Kind::Hstrlen => "hstrlen",
            Kind::Hmget => "hmget",
            Kind::Llen => "llen",
            Kind::Zscore => "zscore",
            Kind::Strlen => "strlen",
            Kind::Getrange => "getrange",
            Kind::MemoryUsage => "memory|usage",
            Kind::Zrangebyscore => "zrangebyscore",
            Kind::Zrevrange => "zrevrange",
            Kind::Zrevrangebyscore => "zrevrangebyscore",
            Kind::Scan => "scan",
            Kind::Exists => "exists",
            Kind::Type => "type",
            Kind::Info => "info",
            Kind::Get => "get",
            Kind::Hlen => "hlen",
            Kind::Other => return None,
        })
    }

    /// What one call costs before anything is measured, in µs (measured on redis-server 7.0 at
    /// a million sessions, rounded up).
    fn default_cost_us(self) -> f64 {
        match self {
            Kind::Pttl | Kind::Exists | Kind::Type | Kind::Strlen | Kind::Get => 1.5,
            Kind::Hstrlen | Kind::Hlen => 1.0,
            Kind::Hmget | Kind::Zscore | Kind::Getrange | Kind::MemoryUsage => 2.5,
            Kind::Llen => 1.8,
            Kind::Info => 150.0,
            // Per member or per COUNT unit: see `per_unit`.
            Kind::Zrangebyscore | Kind::Zrevrange | Kind::Zrevrangebyscore => 1.0,
            Kind::Scan => 3.0,
            Kind::Other => 5.0,
        }
    }

    /// Whether the cost grows with a count (members returned, `SCAN COUNT`).
    fn per_unit(self) -> bool {
        matches!(self, Kind::Zrangebyscore | Kind::Zrevrange | Kind::Zrevrangebyscore | Kind::Scan)
    }
}

/// Commands sent, by kind, across all of sessiontop's connections.
#[derive(Debug, Default)]
pub struct Counts([AtomicU64; Kind::ALL.len()]);

impl Counts {
    pub fn add(&self, kind: Kind, n: u64) {
        self.0[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind as usize].load(Ordering::Relaxed)
    }

    /// Every kind's count, in [`Kind::ALL`]'s order.
    pub fn snapshot(&self) -> [u64; Kind::ALL.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// The shortest round trip that can count as slow.
pub const SLOW_ROUND_TRIP: Duration = Duration::from_millis(5);

/// Round trips that only teach the pacer what is usual before any is judged slow.
const WARM_UP_ROUND_TRIPS: u32 = 20;

/// Seconds in which a slowed pacer doubles its pace again while it sees no round trip.
pub const SLOWDOWN_HALF_LIFE_S: f64 = 5.0;

/// What `--budget` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// A share of one Redis core (0.02 is 2%).
    Share(f64),
    /// Commands per second.
    Rate(f64),
    Unlimited,
}

/// Why text is not a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("'{0}' is not a budget like 2%, 20000/s or 0")]
    NotABudget(String),
    #[error("'{0}': a share is more than 0% and at most 100%")]
    ShareOutOfRange(String),
    #[error(
        "'{0}' is a bare number: say {0}% (a share of one Redis core) or {0}/s (commands a second); 0 alone is no limit"
    )]
    Bare(String),
}

impl std::str::FromStr for Budget {
    type Err = BudgetError;
    fn from_str(text: &str) -> Result<Self, BudgetError> {
        let t = text.trim();
        let bad = || BudgetError::NotABudget(text.to_string());
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return match p {
                p if p.is_finite() && p > 0.0 && p <= 100.0 => Ok(Budget::Share(p / 100.0)),
                0.0 => Ok(Budget::Unlimited),
                _ => Err(BudgetError::ShareOutOfRange(text.to_string())),
            };
        }
        let Some(rate) = t.strip_suffix("/s") else {
            // A bare number is a share or a rate only by guessing (`1` would be one command a
            // second, a snapshot of minutes in silence): only 0, no limit, is taken bare.
            return match t.parse::<f64>() {
                Ok(0.0) => Ok(Budget::Unlimited),
                Ok(_) => Err(BudgetError::Bare(t.to_string())),
                Err(_) => Err(bad()),
            };
        };
        let r: f64 = rate.trim().parse().map_err(|_| bad())?;
        match r {
            0.0 => Ok(Budget::Unlimited),
            r if r.is_finite() && r > 0.0 => Ok(Budget::Rate(r)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Share(s) => write!(f, "{}%", (s * 1000.0).round() / 10.0),
            Budget::Rate(r) => write!(f, "{r:.0}/s"),
            Budget::Unlimited => f.write_str("0 (no limit)"),
        }
    }
}

/// The cost book and the bucket, shared by every collector of a target.
#[derive(Debug)]
pub struct Pacer {
    budget: Budget,
    /// µs per call (or per unit, for the counted kinds).
    cost: [f64; Kind::ALL.len()],
    /// The count a counted kind was last sent with, to turn a call's cost into a unit's.
    last_count: [u64; Kind::ALL.len()],
    /// Units available (µs of Redis time for a share, commands for a rate); may go negative.
    available: f64,
    refilled: Instant,
    /// 1 when Redis is as quick as usual; down to 1/16 while it is slow (as of `slow_at`).
    slowdown: f64,
    slow_at: Option<Instant>,
    /// Round trip per command, as usual lately (µs).
    baseline_us: Option<f64>,
    /// Round trips seen so far: the first [`WARM_UP_ROUND_TRIPS`] only teach the baseline.
    round_trips: u32,
    sample: Option<Sample>,
    /// `INFO commandstats` could not be read: costs come from round trips.
    commandstats_denied: bool,
    /// Redis CPU share sessiontop used between the last two samples.
    share: Option<f64>,
    /// µs of Redis time sessiontop's commands cost since the start, by the cost book.
    spent_us: f64,
    /// µs of Redis time measured by `INFO commandstats` since the first sample, and when that was.
    measured_us: f64,
    first_sample: Option<Instant>,
    /// Samples of `INFO commandstats` taken so far.
    samples_taken: u32,
    /// Redis's CPU per µs of commandstats `usec`, learnt when commands keep it busy.
    overhead: f64,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    server: HashMap<String, (u64, u64)>,
    own: [u64; Kind::ALL.len()],
    /// Redis's own CPU time so far (`used_cpu_user` + `used_cpu_sys`), µs.
    cpu_us: Option<f64>,
}

/// What Redis spends on a command beyond the `usec` commandstats gives it (reading, parsing and
/// answering it), as a factor, before it is measured: 1.6 on redis-server 7.0 under pipelined
/// reads on loopback.
const DEFAULT_OVERHEAD: f64 = 1.6;

impl Pacer {
    pub fn new(budget: Budget) -> Pacer {
        Pacer {
            budget,
            cost: std::array::from_fn(|i| Kind::ALL[i].default_cost_us()),
            last_count: [1; Kind::ALL.len()],
            available: 0.0,
            refilled: Instant::now(),
            slowdown: 1.0,
            slow_at: None,
            baseline_us: None,
            round_trips: 0,
            sample: None,
            commandstats_denied: false,
            share: None,
            spent_us: 0.0,
            measured_us: 0.0,
            first_sample: None,
            samples_taken: 0,
            overhead: DEFAULT_OVERHEAD,
        }
    }

    /// A pacer shared by a target's collectors.
    pub fn shared(budget: Budget) -> Arc<Mutex<Pacer>> {
        Arc::new(Mutex::new(Pacer::new(budget)))
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The estimated Redis time of `n` calls of `kind` (each with `count` units for the counted
    /// kinds), in µs.
    pub fn cost_us(&self, kind: Kind, n: u64, count: u64) -> f64 {
        let units = if kind.per_unit() { count.max(1) } else { 1 };
        self.cost[kind as usize] * (n * units) as f64
    }

    /// How many members or `COUNT` units one command of `kind` may ask for, so that it costs
    /// Redis about [`COMMAND_TARGET_US`] at most (never more than `max`, never less than 10).
    pub fn page_size(&self, kind: Kind, max: usize) -> usize {
        let per = self.cost[kind as usize].max(0.01);
        ((COMMAND_TARGET_US / per) as usize).clamp(10.min(max), max.max(1))
    }

    /// Remembers the count a counted command was sent with.
    pub fn sent_with(&mut self, kind: Kind, count: u64) {
        self.last_count[kind as usize] = count.max(1);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        let (rate, burst) = match self.budget {
            Budget::Share(s) => (s * 1e6 * self.slowdown(), s * 1e6 * BURST.as_secs_f64()),
            Budget::Rate(r) => (r * self.slowdown(), r * BURST.as_secs_f64().max(1.0)),
            Budget::Unlimited => (0.0, 0.0),
        };
        self.available = (self.available + elapsed * rate).min(burst.max(1.0));
    }

    /// Charges the commands counted in `sent` since `before` (work done without waiting for
    /// the budget: the page poll, the inspector, writes), by the cost book; `before` becomes
    /// `sent`. `SCAN`s are not charged here: a walk that can wait paid for each before it was
    /// sent, and detection's bounded sample is not held back.
    pub fn charge_sent(&mut self, before: &mut [u64; Kind::ALL.len()], sent: &Counts) {
        let now = sent.snapshot();
        let (mut cost, mut commands) = (0.0, 0);
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Scan) {
            let n = now[kind as usize].saturating_sub(before[kind as usize]);
            cost += self.cost_us(kind, n, self.last_count[kind as usize]);
            commands += n;
        }
        *before = now;
        if commands > 0 {
            self.charge(cost, commands);
        }
    }

    /// Charges work already done (the page poll, a write), in the budget's unit.
    pub fn charge(&mut self, cost_us: f64, commands: u64) {
        self.spent_us += cost_us;
        self.refill(Instant::now());
        self.available -= match self.budget {
            Budget::Share(_) => cost_us,
            Budget::Rate(_) => commands as f64,
            Budget::Unlimited => 0.0,
        };
    }

    /// Charges work about to be sent and says how long to wait first (zero when it fits).
    pub fn reserve(&mut self, cost_us: f64, commands: u64) -> Duration {
        if self.budget == Budget::Unlimited {
            self.spent_us += cost_us;
            return Duration::ZERO;
        }
        self.charge(cost_us, commands);
        if self.available >= 0.0 {
            return Duration::ZERO;
        }
        let rate = match self.budget {
            Budget::Share(s) => s * 1e6 * self.slowdown(),
            Budget::Rate(r) => r * self.slowdown(),
            Budget::Unlimited => f64::INFINITY,
        };
        Duration::from_secs_f64((-self.available / rate).min(60.0))
    }

    /// A batch's round trip: the pacer slows down when round trips grow past their baseline
    /// (Redis is busy with others), and learns costs from them where `INFO` is denied.
    pub fn observe(&mut self, commands: u64, round_trip: Duration) {
        if commands == 0 {
            return;
        }
        let per = round_trip.as_secs_f64() * 1e6 / commands as f64;
        let baseline = *self.baseline_us.get_or_insert(per);
        self.round_trips = self.round_trips.saturating_add(1);
        // A short round trip is never slow, whatever it comes to per command: a few commands
        // (a cluster node's part of a batch, a paced page) cost the network's latency, not Redis's.
        // Nor is one judged against a baseline of a few round trips (a fresh server answers its
        // first quickly, then fills): the first ones only teach it, meeting it halfway.
        let warming = self.round_trips <= WARM_UP_ROUND_TRIPS;
        let slow = !warming && per > 3.0 * baseline && round_trip >= SLOW_ROUND_TRIP;
        if slow {
            tracing::debug!(per, baseline, commands, ?round_trip, "slow round trip");
        }
        self.slowdown = if slow { (self.slowdown() / 2.0).max(1.0 / 16.0) } else { (self.slowdown() * 1.1).min(1.0) };
        // The stored factor is as of now; it recovers with time from here.
        self.slow_at = (self.slowdown < 1.0).then(Instant::now);
        // The baseline follows quick round trips fast and slow ones slowly, but never jumps to
        // one unusually quick batch: pinned to the quickest ever, every ordinary batch after it
        // looked slow and the pace stayed at its floor.
        let rate = if warming {
            0.5
        } else if per < baseline {
            0.3
        } else {
            0.01
        };
        self.baseline_us = Some(baseline + (per - baseline) * rate);
        if self.commandstats_denied {
            // The round trip bounds the server's time from above: a careful estimate.
            for c in self.cost.iter_mut() {
                *c = *c * 0.9 + per * 0.1;
            }
        }
    }

    /// Whether the pacer is holding back because Redis is slow.
    pub fn backing_off(&self) -> bool {
        self.slowdown() < 0.99
    }

    /// How much of the budget is used while Redis is slow: halved by each slow round trip,
    /// back by a tenth with each ordinary one, and doubling every [`SLOWDOWN_HALF_LIFE_S`]
    /// seconds after the last round trip seen (a pause between passes observes nothing, and
    /// is no reason to stay slow).
    fn slowdown(&self) -> f64 {
        match self.slow_at {
            Some(at) => (self.slowdown * 2f64.powf(at.elapsed().as_secs_f64() / SLOWDOWN_HALF_LIFE_S)).min(1.0),
            None => self.slowdown,
        }
    }

    /// Whether the costs should be learnt again now.
    pub fn sample_due(&self) -> bool {
        // The first samples come quickly, so that a pass of a few seconds is paced by measured
        // costs rather than the defaults.
        let interval = if self.samples_taken < EARLY_SAMPLES { EARLY_SAMPLE_INTERVAL } else { SAMPLE_INTERVAL };
        !self.commandstats_denied && self.sample.as_ref().is_none_or(|s| s.at.elapsed() >= interval)
    }

    /// `INFO commandstats` could not be read (denied, renamed): costs come from round trips.
    pub fn commandstats_unavailable(&mut self) {
        self.commandstats_denied = true;
    }

    /// Learns the costs from `INFO commandstats` (and `INFO cpu`, where given) and works out
    /// sessiontop's share of a core since the last sample, with `own`, the commands sessiontop
    /// has sent. The share is of Redis's CPU, not only of the `usec` commandstats counts: the
    /// costs are scaled by what the server spends beyond it (reading, parsing, answering),
    /// measured whenever commands keep the server busy enough for it to show.
    pub fn record_commandstats(&mut self, text: &str, cpu_text: Option<&str>, own: &Counts) {
        let server = parse_commandstats(text);
        let own_now = own.snapshot();
        let at = Instant::now();
        let cpu_us = cpu_text.and_then(parse_cpu_us);
        if let Some(before) = self.sample.take() {
            let wall_us = at.duration_since(before.at).as_secs_f64() * 1e6;
            let all_usec: u64 = server
                .iter()
                .map(|(name, &(_, usec))| usec.saturating_sub(before.server.get(name).map_or(0, |s| s.1)))
                .sum();
            if let (Some(now), Some(then)) = (cpu_us, before.cpu_us) {
                // Only when commands took a tenth of the server or more: an idle server's own
                // housekeeping would swamp the factor otherwise.
                if wall_us > 0.0 && all_usec as f64 >= 0.1 * wall_us {
                    self.overhead = ((now - then) / all_usec as f64).clamp(1.0, 3.0);
                }
            }
            let mut used_us = 0.0;
            for kind in Kind::ALL {
                let Some(name) = kind.stat_name() else { continue };
                let Some(&(calls, usec)) = server.get(name) else { continue };
                // A command first called since the last sample is not listed in it yet.
                let (calls0, usec0) = before.server.get(name).copied().unwrap_or((0, 0));
                let (dcalls, dusec) = (calls.saturating_sub(calls0), usec.saturating_sub(usec0));
                let ours = own_now[kind as usize].saturating_sub(before.own[kind as usize]);
                if dcalls > 0 {
                    let per_call = dusec as f64 / dcalls as f64 * self.overhead;
                    let per = if kind.per_unit() { per_call / self.last_count[kind as usize] as f64 } else { per_call };
                    self.cost[kind as usize] = per;
                    used_us += per_call * ours.min(dcalls) as f64;
                }
            }
            let wall = at.duration_since(before.at).as_secs_f64();
            if wall > 0.0 {
                self.share = Some(used_us / (wall * 1e6));
            }
            self.measured_us += used_us;
        }
        self.first_sample.get_or_insert(at);
        self.samples_taken = self.samples_taken.saturating_add(1);
        self.sample = Some(Sample { at, server, own: own_now, cpu_us });
    }

    /// The share of one Redis core sessiontop used lately (from `INFO commandstats`), or, where
    /// that cannot be read, its own estimate.
    pub fn share(&self) -> Option<f64> {
        self.share
    }

    /// The share of one Redis core sessiontop used from its first look at `INFO commandstats`
    /// to its last (what a one-shot command cost while it ran).
    pub fn share_overall(&self) -> Option<f64> {
        let first = self.first_sample?;
        let wall = self.sample.as_ref()?.at.duration_since(first).as_secs_f64();
        (wall > 0.0).then(|| self.measured_us / (wall * 1e6))
    }

    /// µs of Redis time spent so far, by the cost book.
    pub fn spent_us(&self) -> f64 {
        self.spent_us
    }
}

/// `cmdstat_hmget:calls=10,usec=25,usec_per_call=2.50,…` -> name -> (calls, usec).
pub fn parse_commandstats(text: &str) -> HashMap<String, (u64, u64)> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim_end().strip_prefix("cmdstat_") else { continue };
        let Some((name, fields)) = rest.split_once(':') else { continue };
        let field =
            |key: &str| fields.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<u64>().ok());
        if let (Some(calls), Some(usec)) = (field("calls"), field("usec")) {
            out.insert(name.to_ascii_lowercase(), (calls, usec));
        }
    }
    out
}

/// `used_cpu_user` + `used_cpu_sys` from `INFO cpu`, in µs.
fn parse_cpu_us(text: &str) -> Option<f64> {
    let field = |key: &str| text.lines().find_map(|l| l.trim_end().strip_prefix(key)?.parse::<f64>().ok());
    Some((field("used_cpu_user:")? + field("used_cpu_sys:")?) * 1e6)
}

/// Sizes one page of `kind` (members or `COUNT` units, at most `max`) by its measured cost,
/// and waits until that cost fits the budget: what every paced walk does before it asks for a
/// page.
pub async fn paced_page(pacer: &Mutex<Pacer>, kind: Kind, max: usize) -> usize {
    let (count, cost) = pacer
        .lock()
        .map(|mut p| {
            let count = p.page_size(kind, max);
            p.sent_with(kind, count as u64);
            (count, p.cost_us(kind, 1, count as u64))
        })
        .unwrap_or((max, 0.0));
    pace(pacer, cost, 1).await;
    count
}

/// Waits until `cost_us` of work fits `pacer`'s budget.
pub async fn pace(pacer: &Mutex<Pacer>, cost_us: f64, commands: u64) {
    let wait = pacer.lock().map(|mut p| p.reserve(cost_us, commands)).unwrap_or_default();
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        assert_eq!("2%".parse::<Budget>(), Ok(Budget::Share(0.02)));
        assert_eq!("0.5%".parse::<Budget>(), Ok(Budget::Share(0.005)));
        assert_eq!("20000/s".parse::<Budget>(), Ok(Budget::Rate(20_000.0)));
        assert_eq!("0".parse::<Budget>(), Ok(Budget::Unlimited));
        assert_eq!("0/s".parse::<Budget>(), Ok(Budget::Unlimited));
        for bare in ["1", "20000", "2.5"] {
            let refused = bare.parse::<Budget>().unwrap_err().to_string();
            assert!(
                refused.contains(&format!("{bare}% (a share")) && refused.contains(&format!("{bare}/s")),
                "{refused}"
            );
        }
        assert!("150%".parse::<Budget>().is_err());
        assert!("fast".parse::<Budget>().is_err());
        assert_eq!(Budget::Share(0.02).to_string(), "2%");
    }

    #[test]
    fn a_share_makes_work_wait_by_its_cost() {
        let mut p = Pacer::new(Budget::Share(0.01));
        // 10 ms of Redis time at 1% of a core: about a second.
        let wait = p.reserve(10_000.0, 1000);
        assert!(wait >= Duration::from_millis(900) && wait <= Duration::from_millis(1100), "{wait:?}");
        let mut unlimited = Pacer::new(Budget::Unlimited);
        assert_eq!(unlimited.reserve(1e9, 1), Duration::ZERO);
        let mut rate = Pacer::new(Budget::Rate(1000.0));
        let wait = rate.reserve(0.0, 500);
        assert!(wait >= Duration::from_millis(400), "{wait:?}");
    }

    #[test]
    fn costs_and_the_share_come_from_commandstats() {
        let counts = Counts::default();
        let mut p = Pacer::new(Budget::Share(0.02));
        p.sent_with(Kind::Zrangebyscore, 500);
        let cpu = |s: f64| format!("used_cpu_sys:0.000000\r\nused_cpu_user:{s:.6}\r\n");
        p.record_commandstats(
            "cmdstat_hmget:calls=100,usec=200,usec_per_call=2.00\r\ncmdstat_zrangebyscore:calls=1,usec=450,usec_per_call=450.00\r\n",
            Some(&cpu(1.0)),
            &counts,
        );
        counts.add(Kind::Hmget, 1000);
        counts.add(Kind::Zrangebyscore, 2);
        p.record_commandstats(
            "cmdstat_hmget:calls=2100,usec=6200,usec_per_call=2.95\r\ncmdstat_zrangebyscore:calls=3,usec=2450,usec_per_call=816.67\r\n",
            // 8000 µs of commands took 12000 µs of Redis's CPU: a factor of 1.5.
            Some(&cpu(1.012)),
            &counts,
        );
        assert!((p.cost_us(Kind::Hmget, 1, 1) - 4.5).abs() < 1e-6, "(6200-200)/(2100-100), times 1.5");
        assert!((p.cost_us(Kind::Zrangebyscore, 1, 500) - 1500.0).abs() < 1e-6, "2 calls of 500 members cost 2000 µs");
        assert_eq!(p.page_size(Kind::Zrangebyscore, 1000), 133, "dear pages get smaller");
        assert!(p.share().unwrap() > 0.0);
    }

    /// A pacer past its warm-up, whose usual round trip is `usual`.
    fn warmed(usual: Duration) -> Pacer {
        let mut p = Pacer::new(Budget::Share(0.02));
        for _ in 0..WARM_UP_ROUND_TRIPS {
            p.observe(1000, usual);
        }
        p
    }

    #[test]
    fn a_fresh_baseline_is_learnt_before_any_round_trip_is_judged_slow() {
        // A fresh server answers the first batch quickly, then fills: not a slow Redis.
        let mut p = Pacer::new(Budget::Share(0.02));
        p.observe(1000, Duration::from_micros(300));
        for _ in 0..WARM_UP_ROUND_TRIPS - 1 {
            p.observe(1000, Duration::from_millis(8));
            assert!(!p.backing_off());
        }
        // Past the warm-up, the usual is what the filled server does.
        p.observe(1000, Duration::from_millis(9));
        assert!(!p.backing_off(), "{:?}", p.baseline_us);
        p.observe(1000, Duration::from_millis(40));
        assert!(p.backing_off());
    }

    #[test]
    fn slow_round_trips_make_it_back_off_and_quick_ones_recover() {
        let mut p = warmed(Duration::from_millis(2));
        assert!(!p.backing_off());
        p.observe(1000, Duration::from_millis(20));
        assert!(p.backing_off());
        for _ in 0..50 {
            p.observe(1000, Duration::from_millis(2));
        }
        assert!(!p.backing_off());
        // One unusually quick batch does not make every ordinary one after it look slow.
        let mut p = warmed(Duration::from_millis(4));
        p.observe(1000, Duration::from_micros(500));
        for _ in 0..10 {
            p.observe(1000, Duration::from_millis(5));
        }
        assert!(!p.backing_off(), "ordinary round trips after a quick one");
    }

    #[test]
    fn a_slowed_pacer_recovers_with_time_when_it_sees_no_round_trip() {
        let mut p = warmed(Duration::from_millis(2));
        p.observe(1000, Duration::from_millis(20));
        p.observe(1000, Duration::from_millis(20));
        assert!(p.backing_off());
        // A pause between passes: nothing observed for four half-lives.
        p.slow_at = p.slow_at.map(|at| at - Duration::from_secs_f64(4.0 * SLOWDOWN_HALF_LIFE_S));
        assert!(!p.backing_off(), "{}", p.slowdown());
    }

    #[test]
    fn work_done_without_waiting_is_charged_once() {
        let counts = Counts::default();
        let mut p = Pacer::new(Budget::Share(0.01));
        let mut before = [0; Kind::ALL.len()];
        counts.add(Kind::Pttl, 1000);
        counts.add(Kind::Scan, 50);
        p.charge_sent(&mut before, &counts);
        assert!((p.spent_us() - 1500.0).abs() < 1e-6, "1000 PTTL at 1.5 µs; the SCANs paid already");
        p.charge_sent(&mut before, &counts);
        assert!((p.spent_us() - 1500.0).abs() < 1e-6, "nothing new sent, nothing charged");
        // The budget is spent: paced work now waits for it.
        assert!(p.reserve(10.0, 1) > Duration::from_millis(100));
    }

    #[test]
    fn kinds_are_told_by_name() {
        assert_eq!(Kind::of(b"hmget", None), Kind::Hmget);
        assert_eq!(Kind::of(b"MEMORY", Some(b"usage")), Kind::MemoryUsage);
        assert_eq!(Kind::of(b"hlen", None), Kind::Hlen);
        assert_eq!(Kind::of(b"HGETALL", None), Kind::Other);
        assert_eq!(Kind::of(b"Scan", None), Kind::Scan);
        assert_eq!(Kind::of(b"memory", Some(b"STATS")), Kind::Other);
        for kind in Kind::ALL.into_iter().filter(|k| !matches!(k, Kind::MemoryUsage | Kind::Other)) {
            let name = kind.stat_name().unwrap().to_ascii_uppercase();
            assert_eq!(Kind::of(name.as_bytes(), None), kind, "{name}");
        }
    }
}
