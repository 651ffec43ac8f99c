//! Every figure the dashboard shows, over a day, in bounded memory: the last hour at full
//! resolution (at most [`FINE_MAX`] samples), then min/mean/max buckets of a minute out to
//! [`COARSE_SPAN_MS`]. An outage is a gap: nothing is invented for the time nothing was heard,
//! and a chart breaks its line there instead of drawing zeros or a straight line across.
//!
//! Memory: a series holds at most `FINE_MAX` samples of 16 bytes and `COARSE_MAX` buckets of
//! 32 (in ring buffers of 4,096 and 2,048: 128 KiB at most), and [`Histories`] keeps at most
//! [`MAX_SERIES`] of them, so 8 MiB at the very most; a day of the dashboard's figures at a 1 s
//! poll holds about 2.3 MiB (`cargo bench --bench history` pushes a day of samples through the
//! model and prints the bytes).

use std::collections::{BTreeMap, VecDeque};

use crate::engine::domain::Millis;

/// How far back samples are kept as they came.
pub const FINE_SPAN_MS: Millis = 60 * 60 * 1000;
/// The most samples kept as they came: an hour at one a second. Faster polls keep less than an
/// hour at full resolution.
pub const FINE_MAX: usize = 3600;
/// The width of a bucket of older samples.
pub const BUCKET_MS: Millis = 60 * 1000;
/// How far back buckets are kept (a day and the hour before it, so a 24 h window is always full).
pub const COARSE_SPAN_MS: Millis = 25 * 60 * 60 * 1000;
/// The most buckets a series keeps.
pub const COARSE_MAX: usize = (COARSE_SPAN_MS / BUCKET_MS) as usize;
/// The most series [`Histories`] keeps (fixed figures, then per-stage ones as they appear).
pub const MAX_SERIES: usize = 64;

/// Older samples of one minute: their least, mean and greatest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    start: Millis,
    min: f32,
    max: f32,
    sum: f64,
    n: u32,
}

impl Bucket {
    fn new(start: Millis, value: f32) -> Bucket {
        Bucket { start, min: value, max: value, sum: f64::from(value), n: 1 }
    }

    fn add(&mut self, value: f32) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += f64::from(value);
        self.n += 1;
    }

    fn point(&self) -> Point {
        Point {
            at: self.start,
            min: f64::from(self.min),
            mean: self.sum / f64::from(self.n.max(1)),
            max: f64::from(self.max),
        }
    }
}

/// A figure at one time (or over one bucket: its least, mean and greatest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: Millis,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Point {
    fn single(at: Millis, value: f64) -> Point {
        Point { at, min: value, mean: value, max: value }
    }
}

/// One figure over time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Samples as they came, oldest first; `NaN` marks the start of a gap.
    fine: VecDeque<(Millis, f32)>,
    /// Buckets of older samples, oldest first; a missing minute is a gap.
    coarse: VecDeque<Bucket>,
}

/// What a chart draws of a series over a window: runs of points without gaps, and the
/// resolution they have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub runs: Vec<Vec<Point>>,
    /// Milliseconds a point stands for: the sampling step, a bucket, or several.
    pub resolution_ms: Millis,
}

impl Window {
    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(Vec::is_empty)
    }

    /// The least and greatest values drawn.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        let mut points = self.runs.iter().flatten();
        let first = points.next()?;
        Some(points.fold((first.min, first.max), |(lo, hi), p| (lo.min(p.min), hi.max(p.max))))
    }
}

impl History {
    /// A sample at `at` (not before the last one; an older one is ignored).
    pub fn push(&mut self, at: Millis, value: f64) {
        if !value.is_finite() || self.fine.back().is_some_and(|(last, _)| at < *last) {
            return;
        }
        self.fine.push_back((at, value as f32));
        self.settle(at);
    }

    /// Nothing was heard from `at` on, until the next sample.
    pub fn gap(&mut self, at: Millis) {
        match self.fine.back() {
            Some((_, v)) if v.is_nan() => {}
            Some((last, _)) if at >= *last => self.fine.push_back((at, f32::NAN)),
            _ => {}
        }
    }

    /// Moves samples older than the fine span (or beyond [`FINE_MAX`]) into buckets, and drops
    /// buckets older than the coarse span.
    fn settle(&mut self, now: Millis) {
        while let Some((at, value)) = self.fine.front().copied() {
            if now - at <= FINE_SPAN_MS && self.fine.len() <= FINE_MAX {
                break;
            }
            self.fine.pop_front();
            if value.is_nan() {
                continue;
            }
            let start = at - at.rem_euclid(BUCKET_MS);
            match self.coarse.back_mut() {
                Some(b) if b.start == start => b.add(value),
                _ => self.coarse.push_back(Bucket::new(start, value)),
            }
        }
        while self.coarse.front().is_some_and(|b| now - b.start > COARSE_SPAN_MS) || self.coarse.len() > COARSE_MAX {
            self.coarse.pop_front();
        }
    }

    /// The newest `n` samples as they came, oldest first, across gaps: what a trend beside a
    /// figure draws.
    pub fn recent(&self, n: usize) -> Vec<f64> {
        let mut out: Vec<f64> =
            self.fine.iter().rev().filter(|(_, v)| !v.is_nan()).take(n).map(|(_, v)| f64::from(*v)).collect();
        out.reverse();
        out
    }

    /// How much a counter grew from each of its newest samples to the next, oldest first, at most
    /// `n` of them (a counter that went down, a restart, starts over).
    pub fn recent_increases(&self, n: usize) -> Vec<f64> {
        let values = self.recent(n.saturating_add(1));
        values.windows(2).filter(|w| w[1] >= w[0]).map(|w| w[1] - w[0]).collect()
    }

    /// The newest sample.
    pub fn last(&self) -> Option<(Millis, f64)> {
        match self.fine.back() {
            Some((at, v)) if !v.is_nan() => Some((*at, f64::from(*v))),
            Some(_) => None,
            None => self.coarse.back().map(|b| (b.start, b.point().mean)),
        }
    }

    /// The figure at `t`: the sample (or bucket) covering it, `None` in a gap or beyond the
    /// series. A sample covers the time until the next one, but not past `max_step`.
    pub fn at(&self, t: Millis, max_step: Millis) -> Option<Point> {
        if self.fine.front().is_some_and(|(first, _)| t >= *first) {
            let i = self.fine.partition_point(|(at, _)| *at <= t);
            let (at, v) = self.fine[i.checked_sub(1)?];
            return (!v.is_nan() && t - at <= max_step).then(|| Point::single(at, f64::from(v)));
        }
        let start = t - t.rem_euclid(BUCKET_MS);
        let i = self.coarse.partition_point(|b| b.start < start);
        self.coarse.get(i).filter(|b| b.start == start).map(Bucket::point)
    }

    /// The figure at `t`, or the first after it when the series begins later (a baseline
    /// set before sessiontop started): what a change since `t` is measured from.
    pub fn at_or_after(&self, t: Millis) -> Option<Point> {
        if let Some(p) = self.at(t, Millis::MAX) {
            return Some(p);
        }
        let start = t - t.rem_euclid(BUCKET_MS);
        if let Some(b) = self.coarse.iter().find(|b| b.start >= start) {
            return Some(b.point());
        }
        self.fine.iter().find(|(at, v)| *at >= t && !v.is_nan()).map(|(at, v)| Point::single(*at, f64::from(*v)))
    }

    /// What a chart of `[from, to]` draws, with at most `max_points` points a run (neighbours
    /// merged into min/mean/max beyond that). Samples further apart than `max_step` (and the
    /// gaps marked) break the line.
    pub fn window(&self, from: Millis, to: Millis, max_step: Millis, max_points: usize) -> Window {
        let mut runs = Runs::default();
        let mut step = self.typical_step();
        // Both tiers are in time order: only the part inside the window is walked.
        let fine_start = self.fine.front().map_or(Millis::MAX, |(at, _)| *at);
        let first = self.coarse.partition_point(|b| b.start + BUCKET_MS <= from);
        for b in self.coarse.range(first..).take_while(|b| b.start <= to && b.start < fine_start) {
            step = step.max(BUCKET_MS);
            runs.push(b.point(), BUCKET_MS);
        }
        let first = self.fine.partition_point(|(at, _)| *at < from);
        for (at, v) in self.fine.range(first..).take_while(|(at, _)| *at <= to) {
            if v.is_nan() {
                runs.gap();
            } else {
                runs.push(Point::single(*at, f64::from(*v)), max_step.max(1));
            }
        }
        let mut runs = runs.finish();
        let total: usize = runs.iter().map(Vec::len).sum();
        let per = total.div_ceil(max_points.max(1)).max(1);
        if per > 1 {
            runs = runs.into_iter().map(|r| merge(&r, per)).collect();
        }
        let span = (to - from).max(1);
        let resolution_ms = if per > 1 { (span / max_points.max(1) as Millis).max(step) } else { step };
        Window { runs, resolution_ms }
    }

    /// The usual time between samples: the median step of the newest ones (a second when
    /// there are too few to tell).
    pub fn typical_step(&self) -> Millis {
        let mut steps: Vec<Millis> = self
            .fine
            .iter()
            .rev()
            .take(33)
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| !w[0].1.is_nan() && !w[1].1.is_nan())
            .map(|w| w[0].0 - w[1].0)
            .collect();
        if steps.is_empty() {
            return if self.fine.is_empty() && !self.coarse.is_empty() { BUCKET_MS } else { 1000 };
        }
        steps.sort_unstable();
        steps[steps.len() / 2]
    }

    /// Bytes this series holds.
    pub fn bytes(&self) -> usize {
        self.fine.capacity() * std::mem::size_of::<(Millis, f32)>()
            + self.coarse.capacity() * std::mem::size_of::<Bucket>()
    }
}

/// Points gathered into runs without gaps: a run ends at a marked gap, or where the next
/// point is further from the last than it may be.
#[derive(Default)]
struct Runs {
    done: Vec<Vec<Point>>,
    current: Vec<Point>,
}

impl Runs {
    /// Adds `p`, starting a new run when it is more than `within` after the last point.
    fn push(&mut self, p: Point, within: Millis) {
        if self.current.last().is_some_and(|last| p.at - last.at > within) {
            self.gap();
        }
        self.current.push(p);
    }

    fn gap(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<Vec<Point>> {
        self.gap();
        self.done
    }
}

/// Neighbouring points merged `per` at a time, keeping the least and the greatest.
fn merge(run: &[Point], per: usize) -> Vec<Point> {
    run.chunks(per)
        .map(|c| Point {
            at: c[0].at,
            min: c.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
            mean: c.iter().map(|p| p.mean).sum::<f64>() / c.len() as f64,
            max: c.iter().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max),
        })
        .collect()
}

/// How a figure's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Count,
    PerSecond,
    /// A share, 0 to 1, shown in percent.
    Share,
    Ratio,
}

/// A figure the dashboard keeps a history of: its series name, what it is called on screen,
/// and its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    pub name: &'static str,
    pub label: &'static str,
    pub unit: Unit,
}

/// The series name of the sessions in a stage (or substate).
pub fn stage_series(stage: &str) -> String {
    format!("{STAGE_PREFIX}{stage}")
}

pub const STAGE_PREFIX: &str = "stage:";
/// The resident memory of the processes one `--watch-process` pattern matches.
pub const PROCESS_PREFIX: &str = "process_rss:";

/// The series name of a watched pattern's processes' memory.
pub fn process_series(pattern: &str) -> String {
    format!("{PROCESS_PREFIX}{pattern}")
}
/// A cluster's or a sentinel's node's used memory, and its commands a second, by address.
pub const NODE_MEMORY_PREFIX: &str = "node_memory:";
pub const NODE_OPS_PREFIX: &str = "node_ops:";
pub const USED_MEMORY: &str = "used_memory";
pub const MAXMEMORY: &str = "maxmemory";
pub const SESSIONS: &str = "sessions";
/// Counters kept for changes since a baseline and the panels' trends (not charted: their
/// rates are).
pub const EVICTED_KEYS: &str = "evicted_keys";
pub const EXPIRED_KEYS: &str = "expired_keys";
/// Redis's uptime, kept so that a recording shows its restarts.
pub const UPTIME: &str = "uptime_seconds";

/// Every fixed figure, in the order the charts list them.
pub const FIGURES: [Figure; 19] = [
    Figure { name: USED_MEMORY, label: "used memory", unit: Unit::Bytes },
    Figure { name: "rss", label: "RSS", unit: Unit::Bytes },
    Figure { name: "fragmentation", label: "fragmentation", unit: Unit::Ratio },
    Figure { name: "clients", label: "clients", unit: Unit::Count },
    Figure { name: "blocked_clients", label: "blocked clients", unit: Unit::Count },
    Figure { name: "ops_per_sec", label: "ops/s", unit: Unit::PerSecond },
    Figure { name: "hit_rate", label: "hit rate", unit: Unit::Share },
    Figure { name: "evicted_per_sec", label: "evicted/s", unit: Unit::PerSecond },
    Figure { name: "expired_per_sec", label: "expired/s", unit: Unit::PerSecond },
    Figure { name: "db_keys", label: "keys (DBSIZE)", unit: Unit::Count },
    Figure { name: SESSIONS, label: "live sessions", unit: Unit::Count },
    Figure { name: "stalled", label: "stalled", unit: Unit::Count },
    Figure { name: "stuck", label: "stuck", unit: Unit::Count },
    Figure { name: "findings_critical", label: "critical findings", unit: Unit::Count },
    Figure { name: "findings_warning", label: "warnings", unit: Unit::Count },
    Figure { name: "own_commands_per_sec", label: "own commands/s", unit: Unit::PerSecond },
    Figure { name: "own_redis_share", label: "own Redis CPU", unit: Unit::Share },
    Figure { name: "host_cpu", label: "host CPU", unit: Unit::Share },
    Figure { name: "host_memory", label: "host memory", unit: Unit::Bytes },
];

/// Figures charted together, one line each: a label, the prefix of their series, their unit.
pub const GROUPS: [(&str, &str, Unit); 4] = [
    ("sessions per stage", STAGE_PREFIX, Unit::Count),
    ("watched processes' memory", PROCESS_PREFIX, Unit::Bytes),
    ("nodes' memory", NODE_MEMORY_PREFIX, Unit::Bytes),
    ("nodes' commands a second", NODE_OPS_PREFIX, Unit::PerSecond),
];

/// Every figure by name. Names are fixed for the server's figures and `stage:NAME` for the
/// sessions in each stage; past [`MAX_SERIES`] new names are not kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histories {
    series: BTreeMap<String, History>,
}

impl Histories {
    /// A sample of `name` at `at`; `None` (not known this time) records nothing.
    pub fn record(&mut self, name: &str, at: Millis, value: Option<f64>) {
        let Some(value) = value else { return };
        if let Some(h) = self.series.get_mut(name) {
            h.push(at, value);
        } else if self.series.len() < MAX_SERIES {
            let mut h = History::default();
            h.push(at, value);
            self.series.insert(name.to_string(), h);
        }
    }

    /// Nothing is heard from `at` on: every series has a gap there.
    pub fn gap(&mut self, at: Millis) {
        for h in self.series.values_mut() {
            h.gap(at);
        }
    }

    /// Every series, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &History)> {
        self.series.iter().map(|(k, h)| (k.as_str(), h))
    }

    pub fn get(&self, name: &str) -> Option<&History> {
        self.series.get(name)
    }

    /// The series whose names start with `prefix` (`stage:`), by name.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a History)> + 'a {
        self.series
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, h)| (k.as_str(), h))
    }

    /// Bytes all series hold.
    pub fn bytes(&self) -> usize {
        self.series.iter().map(|(k, h)| k.capacity() + h.bytes() + std::mem::size_of::<History>()).sum()
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Millis = 1000;
    const H: Millis = 3600 * S;

    #[test]
    fn the_last_hour_is_kept_as_it_came_and_older_samples_in_minute_buckets() {
        let mut h = History::default();
        for i in 0..(3 * 3600) {
            h.push(i * S, (i % 60) as f64);
        }
        let now = (3 * 3600 - 1) * S;
        assert!(h.fine.len() <= FINE_MAX);
        assert!(h.fine.front().unwrap().0 >= now - FINE_SPAN_MS);
        // Two hours of buckets, a minute each, each holding 0..59.
        assert_eq!(h.coarse.len(), 120);
        let b = h.coarse[5].point();
        assert_eq!((b.min, b.max), (0.0, 59.0));
        assert!((b.mean - 29.5).abs() < 1e-9);
        // A sample an hour and a half ago reads as its bucket; one a minute ago as itself.
        let old = h.at(now - 90 * 60 * S, 2 * S).unwrap();
        assert_eq!((old.min, old.max), (0.0, 59.0));
        let recent = h.at(now - 60 * S, 2 * S).unwrap();
        assert_eq!(recent.min, recent.max);
    }

    #[test]
    fn a_day_later_buckets_older_than_the_coarse_span_are_gone() {
        let mut h = History::default();
        for i in 0..(27 * 60) {
            h.push(i * 60 * S, 1.0);
        }
        let now = (27 * 60 - 1) * 60 * S;
        assert!(h.coarse.len() <= COARSE_MAX);
        assert!(now - h.coarse.front().unwrap().start <= COARSE_SPAN_MS);
        assert!(h.window(now - 24 * H, now, 61 * S, 10_000).runs.len() == 1, "a full day without gaps");
    }

    #[test]
    fn an_outage_is_a_gap_not_a_line() {
        let mut h = History::default();
        for i in 0..10 {
            h.push(i * S, 5.0);
        }
        h.gap(10 * S);
        for i in 30..40 {
            h.push(i * S, 7.0);
        }
        let w = h.window(0, 40 * S, 2 * S, 1000);
        assert_eq!(w.runs.len(), 2, "{w:?}");
        assert_eq!(w.runs[0].len(), 10);
        assert!(w.runs[1].iter().all(|p| p.mean == 7.0));
        assert_eq!(h.at(20 * S, 2 * S), None, "nothing was heard at 20 s");
        // Samples too far apart break the line even without a marked gap (a stopped program).
        let mut h = History::default();
        h.push(0, 1.0);
        h.push(S, 1.0);
        h.push(600 * S, 1.0);
        assert_eq!(h.window(0, 600 * S, 2 * S, 100).runs.len(), 2);
        // The gap moves into the buckets with the samples: missing minutes there too.
        let mut h = History::default();
        for i in 0..600 {
            h.push(i * S, 1.0);
        }
        h.gap(600 * S);
        for i in 1200..(1200 + 3600 + 600) {
            h.push(i * S, 2.0);
        }
        let w = h.window(0, 5400 * S, 2 * S, 100_000);
        assert!(w.runs.len() >= 2, "{:?}", w.runs.iter().map(Vec::len).collect::<Vec<_>>());
    }

    #[test]
    fn a_window_has_at_most_the_points_asked_for_with_the_extremes_kept() {
        let mut h = History::default();
        for i in 0..3000 {
            h.push(i * S, if i == 1234 { 100.0 } else { 1.0 });
        }
        let w = h.window(0, 3000 * S, 2 * S, 100);
        let points: usize = w.runs.iter().map(Vec::len).sum();
        assert!(points <= 100, "{points}");
        assert_eq!(w.bounds(), Some((1.0, 100.0)), "a spike survives the merge");
        assert_eq!(w.resolution_ms, 30 * S);
    }

    #[test]
    fn histories_are_bounded_in_number() {
        let mut all = Histories::default();
        for i in 0..(MAX_SERIES + 10) {
            all.record(&format!("stage:{i}"), 0, Some(1.0));
        }
        assert_eq!(all.len(), MAX_SERIES);
        all.record("stage:0", S, None);
        assert_eq!(all.get("stage:0").unwrap().last(), Some((0, 1.0)), "unknown records nothing");
        assert_eq!(all.with_prefix("stage:").count(), MAX_SERIES);
    }

    #[test]
    fn a_trend_is_the_newest_samples_and_a_counter_trends_by_its_increases() {
        let mut h = History::default();
        for (i, v) in [5.0, 7.0, 7.0, 2.0, 4.0].into_iter().enumerate() {
            h.push(i as Millis * S, v);
            if i == 2 {
                h.gap(2 * S + 500);
            }
        }
        assert_eq!(h.recent(3), vec![7.0, 2.0, 4.0], "across the gap");
        assert_eq!(h.recent(10).len(), 5);
        assert_eq!(h.recent_increases(10), vec![2.0, 0.0, 2.0], "the fall (a restart) is skipped");
    }
}
