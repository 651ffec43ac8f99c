//! Findings that point at a cause in the application rather than at one session: sessions
//! that never come back (its cookie is not kept), a stage the flow stopped at (a step of the
//! workflow broken by a deploy). Judged from a [`FlowSummary`] against the hour before, or
//! against the deploy baseline when there is one, so that a store's usual shape is never an
//! alarm; with no such history (a watch of a few minutes), an overwhelming share alone is.
//!
//! Pure: a function of the summary, the thresholds and the time.

use crate::engine::domain::{Arrivals, Finding, FindingKind, FlowSummary, Millis, Severity, StageFlow, Thresholds};
use crate::engine::flow::BEFORE_MS;
use crate::util::text;

/// New sessions judged in the window below which a share says nothing.
pub const ARRIVALS_MIN: u64 = 20;
/// New sessions arriving this many times faster than before is a surge.
pub const SURGE: f64 = 3.0;
/// Entries into a stage below which whether they left says nothing.
pub const FLOW_MIN: u64 = 5;
/// A stage left by at most this share of those who entered it has stopped.
const LEFT_AT_MOST: f64 = 0.1;
/// A stage that was left by at least this share before was flowing.
const FLOWED_AT_LEAST: f64 = 0.5;
/// A stage reached at least this often in the hour before a baseline, and not once since for
/// three times the usual gap between entries, is no longer reached.
const UNREACHED_MIN: u64 = 10;

/// What the causes are judged by, beside the summary.
#[derive(Debug, Clone, Copy)]
pub struct CauseInputs<'a> {
    pub flow: &'a FlowSummary,
    pub thresholds: &'a Thresholds,
    /// The layout's final stages: never stopped at.
    pub finals: &'a [String],
    /// The local zone's offset, for the times said.
    pub utc_offset_s: i32,
}

/// The causes found, added to `out`.
pub fn findings(c: &CauseInputs<'_>, out: &mut Vec<Finding>) {
    // What the window is judged against, in words.
    let deploy =
        c.flow.baseline.map(|b| format!(" the deploy at {}", text::clock(b, c.utc_offset_s))).unwrap_or_default();
    out.extend(not_coming_back(&c.flow.arrivals, c.flow.arrivals_window_ms, c.thresholds, &deploy));
    let others_moved = c.flow.stages.iter().any(|s| s.left > 0);
    let mut stopped: Vec<(String, u64)> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for stage in c.flow.stages.iter().filter(|s| !c.finals.contains(&s.stage)) {
        if let Some(line) = stopped_at(stage, c.flow.stages_window_ms, others_moved, &deploy) {
            stopped.push((stage.stage.clone(), stage.judged));
            lines.push(line);
        }
    }
    if !lines.is_empty() {
        out.push(Finding {
            kind: FindingKind::FlowStopped,
            severity: Severity::Warning,
            count: stopped.iter().map(|(_, n)| n).sum(),
            summary: lines.join("; "),
            by_stage: stopped,
            sample: Vec::new(),
        });
    }
    let unreached: Vec<(String, u64, String)> =
        c.flow.stages.iter().filter_map(|s| unreached(s, c).map(|(n, l)| (s.stage.clone(), n, l))).collect();
    if !unreached.is_empty() {
        out.push(Finding {
            kind: FindingKind::StageUnreached,
            severity: Severity::Warning,
            count: unreached.len() as u64,
            summary: unreached.iter().map(|(_, _, l)| l.as_str()).collect::<Vec<_>>().join("; "),
            by_stage: unreached.iter().map(|(s, n, _)| (s.clone(), *n)).collect(),
            sample: Vec::new(),
        });
    }
}

/// Per minute, over `span_ms` (at least a minute).
fn per_minute(n: u64, span_ms: Millis) -> f64 {
    n as f64 * 60_000.0 / span_ms.max(60_000) as f64
}

fn rate_words(rate: f64) -> String {
    if rate >= 10.0 { format!("{rate:.0}/min") } else { format!("{rate:.1}/min") }
}

/// Many new sessions in the window and most of them never used again, when that is not how
/// the store looked before.
/// `deploy` names the baseline judged against (` the deploy at 14:02:10`), or is empty.
fn not_coming_back(a: &Arrivals, window_ms: Millis, t: &Thresholds, deploy: &str) -> Option<Finding> {
    if a.judged < ARRIVALS_MIN {
        return None;
    }
    let share = a.unused as f64 / a.judged as f64;
    if share < t.unused_share {
        return None;
    }
    let rate = per_minute(a.born, a.span_ms);
    // Before: enough of it watched to say how fast sessions arrived and how many came back.
    let before = (a.before_span_ms >= 5 * 60_000).then(|| per_minute(a.before_born, a.before_span_ms));
    if let Some(before_rate) = before
        && a.before_judged >= ARRIVALS_MIN
        && a.before_unused as f64 / a.before_judged as f64 >= t.unused_share
        && rate < SURGE * before_rate
    {
        // The store's usual shape: as many visitors looking once and leaving as before.
        return None;
    }
    let before_words = match before {
        Some(r) => format!("{} before{deploy}", rate_words(r)),
        None => "not watched before".to_string(),
    };
    let summary = format!(
        "{} sessions were created in the last {} ({}; {}) and {:.0}% were never used again: the application is not \
         getting its session cookie back (a SECRET_KEY that differs between workers, SESSION_COOKIE_SECURE over \
         HTTP, a proxy dropping cookies)",
        text::grouped(a.born),
        text::window(a.span_ms.min(window_ms) / 1000),
        rate_words(rate),
        before_words,
        (share * 100.0).floor()
    );
    Some(Finding {
        kind: FindingKind::NotComingBack,
        severity: Severity::Warning,
        count: a.unused,
        summary,
        by_stage: Vec::new(),
        sample: Vec::new(),
    })
}

/// A stage many reached in the window and (almost) none left, where before most did, or,
/// with no before, while sessions in other stages moved on.
fn stopped_at(s: &StageFlow, window_ms: Millis, others_moved: bool, deploy: &str) -> Option<String> {
    if s.judged < FLOW_MIN || s.judged_left as f64 > s.judged as f64 * LEFT_AT_MOST {
        return None;
    }
    let flowed_before =
        s.before_entered >= FLOW_MIN && s.before_left as f64 >= s.before_entered as f64 * FLOWED_AT_LEAST;
    let before = if flowed_before {
        let within = s.before_dwell_ms.map(|d| format!(" within {}", text::window(d / 1000))).unwrap_or_default();
        format!("in the hour before{deploy}, {} of {} left{within}", s.before_left, s.before_entered)
    } else if s.before_entered < FLOW_MIN && others_moved && s.judged >= 2 * FLOW_MIN {
        "while sessions in other stages moved on".to_string()
    } else {
        return None;
    };
    let left = match s.judged_left {
        0 => "none left it".to_string(),
        n => format!("only {n} left it"),
    };
    Some(format!(
        "{} sessions reached {} in the last {} and {left}; {before}",
        text::grouped(s.judged),
        text::clip_sized(&text::escape_str(&s.stage), 48),
        text::window(window_ms / 1000),
    ))
}

/// A stage reached often in the hour before the baseline (or the window) and not once since,
/// for long enough that several would have been expected: its count before, and why.
fn unreached(s: &StageFlow, c: &CauseInputs<'_>) -> Option<(u64, String)> {
    let (flow, baseline) = (c.flow, c.flow.baseline);
    let since = baseline.unwrap_or(flow.at - flow.stages_window_ms);
    let before: u64 = s
        .by_minute
        .iter()
        .filter(|(m, _)| *m + 60_000 <= since && *m >= since - BEFORE_MS)
        .map(|(_, n)| u64::from(*n))
        .sum();
    let after: u64 = s.by_minute.iter().filter(|(m, _)| *m + 60_000 > since).map(|(_, n)| u64::from(*n)).sum();
    // The hour before must have been watched, and long enough must have passed since.
    let gap = BEFORE_MS / before.max(1) as Millis;
    if after > 0 || before < UNREACHED_MIN || flow.since > since - BEFORE_MS || flow.at - since < 3 * gap {
        return None;
    }
    let since_words = match baseline {
        Some(at) => format!("since the deploy at {}", text::clock(at, c.utc_offset_s)),
        None => format!("in the last {}", text::window(flow.stages_window_ms / 1000)),
    };
    Some((
        before,
        format!(
            "0 sessions reached {} {since_words}; {} in the hour before",
            text::clip_sized(&text::escape_str(&s.stage), 48),
            text::grouped(before)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn summary(stages: Vec<StageFlow>, arrivals: Arrivals) -> FlowSummary {
        FlowSummary {
            at: 1_000 * MIN,
            stages_window_ms: 30 * MIN,
            arrivals_window_ms: 10 * MIN,
            since: 0,
            baseline: None,
            stages,
            arrivals,
        }
    }

    fn judge(flow: &FlowSummary, baseline: Option<Millis>) -> Vec<Finding> {
        let flow = &FlowSummary { baseline, ..flow.clone() };
        let mut out = Vec::new();
        let finals = ["done".to_string()];
        let c = CauseInputs { flow, thresholds: &Thresholds::default(), finals: &finals, utc_offset_s: 0 };
        findings(&c, &mut out);
        out
    }

    #[test]
    fn many_new_sessions_never_used_again_is_a_cookie_not_kept_unless_the_store_always_looked_so() {
        let surge = Arrivals {
            span_ms: 10 * MIN,
            before_span_ms: 60 * MIN,
            born: 312,
            judged: 300,
            unused: 282,
            before_born: 240,
            before_judged: 240,
            before_unused: 60,
        };
        let f = judge(&summary(Vec::new(), surge.clone()), None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::NotComingBack);
        assert!(
            f[0].summary.starts_with(
                "312 sessions were created in the last 10m (31/min; 4.0/min before) and 94% were never used again"
            ),
            "{}",
            f[0].summary
        );
        // Most visitors looked once before too, and arrive about as fast: the store's shape.
        let usual = Arrivals { before_unused: 1350, before_born: 1500, before_judged: 1500, ..surge.clone() };
        assert!(judge(&summary(Vec::new(), usual), None).is_empty());
        // A few new visitors who never return are normal.
        let few = Arrivals { born: 12, judged: 12, unused: 12, ..surge.clone() };
        assert!(judge(&summary(Vec::new(), few), None).is_empty());
        // With nothing watched before, an overwhelming share alone is enough.
        let fresh = Arrivals { before_span_ms: 0, before_born: 0, before_judged: 0, before_unused: 0, ..surge };
        let f = judge(&summary(Vec::new(), fresh), None);
        assert!(f[0].summary.contains("(31/min; not watched before)"), "{}", f[0].summary);
    }

    fn stage(name: &str, judged: u64, judged_left: u64, before: (u64, u64)) -> StageFlow {
        StageFlow {
            stage: name.to_string(),
            entered: judged,
            left: judged_left,
            judged,
            judged_left,
            before_entered: before.0,
            before_left: before.1,
            before_dwell_ms: (before.1 > 0).then_some(6 * MIN),
            by_minute: Vec::new(),
        }
    }

    #[test]
    fn a_stage_reached_and_never_left_is_found_where_it_used_to_flow() {
        let f = judge(&summary(vec![stage("tpr_analysis", 14, 0, (11, 9))], Arrivals::default()), None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::FlowStopped);
        assert_eq!(
            f[0].summary,
            "14 sessions reached tpr_analysis in the last 30m and none left it; in the hour before, 9 of 11 left within 6m"
        );
        // With a baseline, what it is judged against is the hour before the deploy.
        let f = judge(&summary(vec![stage("tpr_analysis", 14, 0, (11, 9))], Arrivals::default()), Some(900 * MIN));
        assert!(f[0].summary.contains("none left it; in the hour before the deploy at "), "{}", f[0].summary);
        // Where few left before either (users often stop there), it is the stage's shape.
        assert!(judge(&summary(vec![stage("upload", 14, 0, (11, 3))], Arrivals::default()), None).is_empty());
        // Some still leave: not stopped.
        assert!(judge(&summary(vec![stage("tpr_analysis", 14, 5, (11, 9))], Arrivals::default()), None).is_empty());
        // A final stage is never left.
        assert!(judge(&summary(vec![stage("done", 14, 0, (11, 9))], Arrivals::default()), None).is_empty());
    }

    #[test]
    fn with_no_before_a_stage_nobody_leaves_while_others_move_on_is_found() {
        let stuck = stage("tpr_analysis", 10, 0, (0, 0));
        let moving = stage("upload", 12, 10, (0, 0));
        let f = judge(&summary(vec![stuck.clone(), moving], Arrivals::default()), None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].summary.ends_with("none left it; while sessions in other stages moved on"), "{}", f[0].summary);
        assert!(judge(&summary(vec![stuck], Arrivals::default()), None).is_empty(), "nothing moves at all: idle");
    }

    #[test]
    fn a_stage_nobody_reaches_since_the_baseline_is_found() {
        let now = 1_000 * MIN;
        let baseline = now - 20 * MIN;
        // 23 entries in the hour before the baseline, none since.
        let by_minute: Vec<(Millis, u32)> = (0..23).map(|i| (baseline - 60 * MIN + i * 2 * MIN, 1)).collect();
        let s = StageFlow { stage: "risk_analysis".into(), by_minute, ..StageFlow::default() };
        let mut flow = summary(vec![s.clone()], Arrivals::default());
        let f = judge(&flow, Some(baseline));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::StageUnreached);
        assert!(f[0].summary.starts_with("0 sessions reached risk_analysis since the deploy at "), "{}", f[0].summary);
        assert!(f[0].summary.ends_with("; 23 in the hour before"), "{}", f[0].summary);
        // Too soon after the baseline to expect one.
        assert!(judge(&flow, Some(now - 5 * MIN)).is_empty());
        // The hour before was not watched.
        flow.since = baseline - 30 * MIN;
        assert!(judge(&flow, Some(baseline)).is_empty());
    }
}
