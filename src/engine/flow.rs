//! How sessions move, as watched across polls and passes: the sessions that arrive and whether
//! they come back (a cookie the application never gets back makes a new session on every
//! request), and the entries into and exits from each stage (a step of the workflow that
//! users reach and none leaves). No single look shows either: each such session alone looks
//! healthy or idle.
//!
//! A [`FlowWatch`] is fed every session a census pass or a page poll reads ([`Look`]) and
//! keeps, bounded, what that takes; [`FlowWatch::summary`] sums it into a [`FlowSummary`] at
//! the end of each pass, which the census carries to the findings and the census panel.
//! Pure: no I/O, no clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::engine::domain::{Arrivals, FlowSummary, Millis, StageFlow};
use crate::engine::names::SessionId;

/// Sessions followed through their stages at most (active ones; the rest are not followed).
pub const FOLLOWED_MAX: usize = 100_000;
/// New sessions remembered at most, for whether they come back.
pub const NEWCOMERS_MAX: usize = 100_000;
/// Entries into one stage remembered at most.
const ENTRIES_MAX: usize = 20_000;
/// How far back "before" reaches: the hour before the window.
pub const BEFORE_MS: Millis = 60 * 60 * 1000;
/// A session whose activity moved by more than this after it arrived was used again (the
/// times come from one clock, the server's TTLs, to the millisecond).
const REUSE_GAP_MS: Millis = 1_000;
/// A new session younger than this share of the window (30 s of 10 min) has not had the time
/// to come back: not judged yet.
const SETTLE_SHARE: Millis = 20;
/// An entry into a stage younger than this share of the window (1 min of 30 min) has not had
/// the time to leave it: not judged yet (longer where leaving the stage took longer before).
const DWELL_SHARE: Millis = 30;

/// Whether a session has been used again since its first request, as one look tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The session itself says (TRT: its history holds more than one turn).
    Known(bool),
    /// Only watching tells: its last activity moving after it arrived.
    ByActivity,
}

/// One session as a pass or a poll read it.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    pub id: &'a SessionId,
    /// Its stage (the substate where the layout has them).
    pub stage: Option<&'a Arc<str>>,
    /// When it was last active.
    pub active: Millis,
    /// When it was created, where the session says (TRT: the age of its meta hash, written
    /// once at creation with the session's lifetime).
    pub born: Option<Millis>,
    pub reuse: Reuse,
}

/// What the watch judges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowWindows {
    /// New sessions are counted over this window.
    pub arrivals_ms: Millis,
    /// Entries into and exits from stages are counted over this window.
    pub stages_ms: Millis,
    /// Sessions idle longer than this are no longer followed through their stages.
    pub active_ms: Millis,
}

#[derive(Debug, Clone, PartialEq)]
struct Followed {
    stage: Option<Arc<str>>,
    /// Its entry into that stage, when the watch saw it enter.
    entry: Option<u64>,
    active: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    seq: u64,
    at: Millis,
    left: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Newcomer {
    born: Millis,
    used: bool,
}

/// The watch over a target's sessions' arrivals and stages.
#[derive(Debug, Clone, Default)]
pub struct FlowWatch {
    /// When the watch began, and when its first whole pass ended: a session first seen after
    /// that is new (where the session does not say when it was created).
    began: Option<Millis>,
    first_pass_done: Option<Millis>,
    /// Whether sessions say when they were created (then arrivals are known from one look).
    born_known: bool,
    /// Sessions are known by a hash of their id (one hash a row, and no copy of the id kept:
    /// two ids of one hash in 100,000 is a chance of about one in 10^9).
    hasher: std::hash::RandomState,
    followed: HashMap<u64, Followed>,
    entries: BTreeMap<Arc<str>, VecDeque<Entry>>,
    newcomers: HashMap<u64, Newcomer>,
    /// New sessions by the minute they arrived: how many, and how many were used again. They
    /// outlive `newcomers` (a day), for the hour before a baseline set long after it.
    arrived: BTreeMap<Millis, (u32, u32)>,
    next_seq: u64,
    /// The deploy baseline: what the window is judged against is the hour before it.
    baseline: Option<Millis>,
}

/// How long arrivals by the minute are kept.
const ARRIVED_KEPT_MS: Millis = 24 * BEFORE_MS;

/// The minute `at` falls in.
fn minute(at: Millis) -> Millis {
    at - at.rem_euclid(60_000)
}

/// The window judged, from `start`, and the period it is judged against, `from` to `to`.
#[derive(Debug, Clone, Copy)]
struct Periods {
    start: Millis,
    from: Millis,
    to: Millis,
}

impl FlowWatch {
    /// A session as read at `now`.
    pub fn observe(&mut self, look: Look<'_>, now: Millis, w: &FlowWindows) {
        let began = *self.began.get_or_insert(now);
        self.born_known |= look.born.is_some();
        // Most sessions of a large store are idle: they cost the watch nothing (one followed
        // before is let go at the end of the pass).
        let arriving = now - look.active <= w.arrivals_ms + BEFORE_MS
            || look.born.is_some_and(|b| now - b <= w.arrivals_ms + BEFORE_MS);
        let active = now - look.active <= w.active_ms;
        if !arriving && !active {
            return;
        }
        let key = self.hasher.hash_one(look.id.as_bytes());
        if arriving {
            self.arrival(key, &look, began, now, w);
        }
        if !active {
            return;
        }
        let stage = look.stage.cloned();
        let room = self.followed.len() < FOLLOWED_MAX;
        match self.followed.get_mut(&key) {
            Some(f) => {
                if f.stage != stage {
                    let left = f.stage.take().zip(f.entry.take());
                    if let Some((from, seq)) = left {
                        mark_left(&mut self.entries, &from, seq, look.active);
                    }
                    f.entry = stage.as_ref().map(|s| open(&mut self.entries, &mut self.next_seq, s, look.active));
                    f.stage = stage;
                }
                f.active = f.active.max(look.active);
            }
            None if room => {
                // Its entry is seen only when it is new: one there since before the watch
                // entered it at a time nobody knows.
                let new = self.first_pass_done.is_some() || look.born.is_some_and(|b| b >= began);
                let entry =
                    stage.as_ref().filter(|_| new).map(|s| open(&mut self.entries, &mut self.next_seq, s, look.active));
                self.followed.insert(key, Followed { stage, entry, active: look.active });
            }
            None => {}
        }
    }

    fn arrival(&mut self, key: u64, look: &Look<'_>, began: Millis, now: Millis, w: &FlowWindows) {
        if let Some(n) = self.newcomers.get_mut(&key) {
            let used = match look.reuse {
                Reuse::Known(used) => used,
                Reuse::ByActivity => look.active > n.born + REUSE_GAP_MS,
            };
            if used && !n.used {
                n.used = true;
                self.arrived.entry(minute(n.born)).or_default().1 += 1;
            }
            return;
        }
        if self.newcomers.len() >= NEWCOMERS_MAX {
            return;
        }
        let born = match look.born {
            Some(born) => born,
            // Where sessions do not say, one first seen after the first whole pass is new (not
            // one followed since: an active session the watch saw before), and arrived when it
            // was last active.
            None if self.first_pass_done.is_some()
                && look.active >= began
                && self.followed.len() < FOLLOWED_MAX
                && !self.followed.contains_key(&key) =>
            {
                look.active
            }
            None => return,
        };
        if now - born <= w.arrivals_ms + BEFORE_MS {
            let used = matches!(look.reuse, Reuse::Known(true));
            self.newcomers.insert(key, Newcomer { born, used });
            let count = self.arrived.entry(minute(born)).or_default();
            count.0 += 1;
            count.1 += u32::from(used);
        }
    }

    /// Marks (or, with `None`, clears) the deploy baseline: the window is judged against the
    /// hour before it rather than the hour before the window.
    pub fn set_baseline(&mut self, baseline: Option<Millis>) {
        self.baseline = baseline;
    }

    /// The window of `window` judged at `now`, and what it is judged against: the hour before
    /// it, or, with a baseline, the hour before the baseline (and the window then begins at the
    /// baseline at the earliest).
    fn periods(&self, now: Millis, window: Millis) -> Periods {
        match self.baseline.filter(|b| *b < now) {
            Some(b) => Periods { start: (now - window).max(b), from: b - BEFORE_MS, to: b },
            None => Periods { start: now - window, from: now - window - BEFORE_MS, to: now - window },
        }
    }

    /// A pass ended at `now`: what is too old to count is forgotten.
    pub fn pass_done(&mut self, now: Millis, w: &FlowWindows) {
        self.first_pass_done.get_or_insert(now);
        self.followed.retain(|_, f| now - f.active <= w.active_ms);
        let kept_from = self.periods(now, w.stages_ms).from.min(now - w.stages_ms - BEFORE_MS);
        for entries in self.entries.values_mut() {
            while entries.front().is_some_and(|e| e.at < kept_from) || entries.len() > ENTRIES_MAX {
                entries.pop_front();
            }
        }
        self.entries.retain(|_, e| !e.is_empty());
        self.newcomers.retain(|_, n| now - n.born <= w.arrivals_ms + BEFORE_MS);
        self.arrived.retain(|m, _| now - m <= ARRIVED_KEPT_MS);
    }

    /// The watch summed at `now`.
    pub fn summary(&self, now: Millis, w: &FlowWindows) -> FlowSummary {
        FlowSummary {
            at: now,
            stages_window_ms: w.stages_ms,
            arrivals_window_ms: w.arrivals_ms,
            since: self.began.unwrap_or(now),
            baseline: self.baseline.filter(|b| *b < now),
            stages: {
                let usual = self.usual_dwell(now, w.stages_ms);
                let periods = self.periods(now, w.stages_ms);
                self.entries.iter().map(|(stage, e)| stage_flow(stage, e, now, w.stages_ms, periods, usual)).collect()
            },
            arrivals: self.arrivals(now, w.arrivals_ms),
        }
    }

    /// How long nine in ten of the sessions that left any stage within the window spent in it:
    /// a stage with no before is judged against the others' pace.
    fn usual_dwell(&self, now: Millis, window: Millis) -> Option<Millis> {
        let mut dwell: Vec<Millis> = self
            .entries
            .values()
            .flatten()
            .filter(|e| e.at >= now - window)
            .filter_map(|e| e.left.map(|left| (left - e.at).max(0)))
            .collect();
        ninth_decile(&mut dwell)
    }

    fn arrivals(&self, now: Millis, window: Millis) -> Arrivals {
        // Where sessions say when they were created, the first look saw those of the window and
        // the hour before it; elsewhere arrivals are seen from the end of the first pass only.
        let seen_from = match (self.born_known, self.first_pass_done) {
            (true, _) => self.began.map_or(Millis::MIN, |b| b - window - BEFORE_MS),
            (false, Some(done)) => done,
            (false, None) => now,
        };
        let Periods { start, from, to } = self.periods(now, window);
        let mut a = Arrivals {
            span_ms: now - start.max(seen_from),
            before_span_ms: (to - from.max(seen_from)).max(0),
            ..Arrivals::default()
        };
        // The sessions themselves while they are remembered (the window and the hour before
        // it); beyond, the whole minutes they arrived in.
        let exact = from >= now - window - BEFORE_MS;
        for n in self.newcomers.values() {
            let judged = now - n.born >= window / SETTLE_SHARE;
            if n.born >= start {
                a.born += 1;
                a.judged += u64::from(judged);
                a.unused += u64::from(judged && !n.used);
            } else if exact && n.born >= from && n.born < to {
                a.before_born += 1;
                a.before_judged += 1;
                a.before_unused += u64::from(!n.used);
            }
        }
        if !exact {
            for (_, (born, used)) in self.arrived.range(from..).take_while(|(m, _)| **m + 60_000 <= to) {
                a.before_born += u64::from(*born);
                a.before_judged += u64::from(*born);
                a.before_unused += u64::from(born - used);
            }
        }
        a
    }
}

fn open(entries: &mut BTreeMap<Arc<str>, VecDeque<Entry>>, next: &mut u64, stage: &Arc<str>, at: Millis) -> u64 {
    *next += 1;
    let list = entries.entry(stage.clone()).or_default();
    // Entries stay in order of their number; one seen late (an older activity) keeps its time.
    list.push_back(Entry { seq: *next, at, left: None });
    *next
}

fn mark_left(entries: &mut BTreeMap<Arc<str>, VecDeque<Entry>>, stage: &Arc<str>, seq: u64, at: Millis) {
    if let Some(list) = entries.get_mut(stage)
        && let Ok(i) = list.binary_search_by_key(&seq, |e| e.seq)
    {
        list[i].left = Some(at);
    }
}

/// Within how long nine in ten of `dwell` fall.
fn ninth_decile(dwell: &mut [Millis]) -> Option<Millis> {
    dwell.sort_unstable();
    (!dwell.is_empty()).then(|| dwell[(dwell.len() * 9).div_ceil(10) - 1])
}

/// One stage's entries summed over the window (from `p.start`) and what it is judged against
/// (`p.from` to `p.to`). An entry is judged once it has had the time to leave: longer
/// than nine in ten of those before took, or, with no before, twice what the sessions leaving
/// other stages in the window took (`usual`), and never less than a thirtieth of the window.
fn stage_flow(
    stage: &str,
    entries: &VecDeque<Entry>,
    now: Millis,
    window: Millis,
    p: Periods,
    usual: Option<Millis>,
) -> StageFlow {
    let Periods { start, from, to } = p;
    let mut flow = StageFlow { stage: stage.to_string(), ..StageFlow::default() };
    let mut dwell: Vec<Millis> = Vec::new();
    for e in entries.iter().filter(|e| e.at >= from && e.at < to) {
        flow.before_entered += 1;
        if let Some(left) = e.left {
            flow.before_left += 1;
            dwell.push((left - e.at).max(0));
        }
    }
    flow.before_dwell_ms = ninth_decile(&mut dwell);
    let settle = flow.before_dwell_ms.or(usual.map(|u| 2 * u)).unwrap_or(0).max(window / DWELL_SHARE);
    let mut minutes: BTreeMap<Millis, u32> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.at >= from.min(start)) {
        *minutes.entry(minute(e.at)).or_default() += 1;
        if e.at < start {
            continue;
        }
        flow.entered += 1;
        flow.left += u64::from(e.left.is_some());
        if now - e.at >= settle {
            flow.judged += 1;
            flow.judged_left += u64::from(e.left.is_some());
        }
    }
    flow.by_minute = minutes.into_iter().collect();
    flow
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;
    const W: FlowWindows = FlowWindows { arrivals_ms: 10 * MIN, stages_ms: 30 * MIN, active_ms: 30 * MIN };

    fn look<'a>(id: &'a SessionId, stage: Option<&'a Arc<str>>, active: Millis) -> Look<'a> {
        Look { id, stage, active, born: None, reuse: Reuse::ByActivity }
    }

    #[test]
    fn sessions_first_seen_after_the_first_pass_are_new_and_judged_by_whether_they_came_back() {
        let mut w = FlowWatch::default();
        let t0 = 1_000 * MIN;
        let old = SessionId::from("old");
        w.observe(look(&old, None, t0 - 5 * MIN), t0, &W);
        w.pass_done(t0, &W);
        // Ten new sessions: three come back, seven never do.
        let ids: Vec<SessionId> = (0..10).map(|i| SessionId::from(format!("new{i}").as_str())).collect();
        for (i, id) in ids.iter().enumerate() {
            w.observe(look(id, None, t0 + MIN), t0 + MIN, &W);
            let again = if i < 3 { t0 + 2 * MIN } else { t0 + MIN };
            w.observe(look(id, None, again), t0 + 3 * MIN, &W);
        }
        // The old session coming back is not new.
        w.observe(look(&old, None, t0 + 2 * MIN), t0 + 3 * MIN, &W);
        let a = w.summary(t0 + 3 * MIN, &W).arrivals;
        assert_eq!((a.born, a.judged, a.unused), (10, 10, 7), "{a:?}");
        assert_eq!(a.span_ms, 3 * MIN, "watched from the end of the first pass");
        assert_eq!(a.before_span_ms, 0);
        // One that arrived a moment ago is counted but not judged yet.
        let late = SessionId::from("late");
        w.observe(look(&late, None, t0 + 3 * MIN), t0 + 3 * MIN, &W);
        let a = w.summary(t0 + 3 * MIN + 1_000, &W).arrivals;
        assert_eq!((a.born, a.judged), (11, 10));
    }

    #[test]
    fn sessions_that_say_when_they_were_born_are_judged_from_one_look() {
        let mut w = FlowWatch::default();
        let now = 1_000 * MIN;
        let ids: Vec<SessionId> = (0..6).map(|i| SessionId::from(format!("s{i}").as_str())).collect();
        // Three born in the window (one used again), three in the hour before (all used again).
        for (i, id) in ids.iter().enumerate() {
            let born = if i < 3 { now - 5 * MIN } else { now - 40 * MIN };
            let used = i == 0 || i >= 3;
            w.observe(Look { born: Some(born), reuse: Reuse::Known(used), ..look(id, None, born) }, now, &W);
        }
        let a = w.summary(now, &W).arrivals;
        assert_eq!((a.born, a.judged, a.unused), (3, 3, 2), "{a:?}");
        assert_eq!((a.before_born, a.before_unused), (3, 0));
        assert_eq!((a.span_ms, a.before_span_ms), (10 * MIN, BEFORE_MS), "known from one look: the whole hour");
    }

    #[test]
    fn entries_into_a_stage_and_exits_from_it_are_counted_with_the_time_spent_before() {
        let mut w = FlowWatch::default();
        let t0 = 1_000 * MIN;
        let (upload, tpr, risk): (Arc<str>, Arc<str>, Arc<str>) = ("upload".into(), "tpr".into(), "risk".into());
        w.pass_done(t0, &W);
        // In the hour before the window: 4 reach tpr, 3 leave it within 2-6 min.
        let early: Vec<SessionId> = (0..4).map(|i| SessionId::from(format!("e{i}").as_str())).collect();
        for (i, id) in early.iter().enumerate() {
            let at = t0 + 5 * MIN + i as Millis * MIN;
            w.observe(look(id, Some(&upload), at - MIN), at - MIN, &W);
            w.observe(look(id, Some(&tpr), at), at, &W);
            if i < 3 {
                let out = at + (2 + 2 * i as Millis) * MIN;
                w.observe(look(id, Some(&risk), out), out, &W);
            }
        }
        // In the window: 5 reach tpr and none leaves.
        let now = t0 + 80 * MIN;
        let late: Vec<SessionId> = (0..5).map(|i| SessionId::from(format!("l{i}").as_str())).collect();
        for id in &late {
            w.observe(look(id, Some(&tpr), now - 20 * MIN), now - 20 * MIN, &W);
            w.observe(look(id, Some(&tpr), now - 19 * MIN), now - MIN, &W);
        }
        w.pass_done(now, &W);
        let s = w.summary(now, &W);
        let tpr_flow = s.stages.iter().find(|f| f.stage == "tpr").unwrap();
        assert_eq!((tpr_flow.entered, tpr_flow.left, tpr_flow.judged, tpr_flow.judged_left), (5, 0, 5, 0));
        assert_eq!((tpr_flow.before_entered, tpr_flow.before_left), (4, 3), "{tpr_flow:?}");
        assert_eq!(tpr_flow.before_dwell_ms, Some(6 * MIN), "nine in ten left within the slowest's time");
        let risk_flow = s.stages.iter().find(|f| f.stage == "risk").unwrap();
        assert_eq!(risk_flow.before_entered, 3);
        // Entries by minute reach over the window and the hour before only.
        assert_eq!(tpr_flow.by_minute.iter().map(|(_, n)| *n as u64).sum::<u64>(), 9);
    }

    #[test]
    fn sessions_there_since_before_the_watch_make_no_entry_and_idle_ones_are_let_go() {
        let mut w = FlowWatch::default();
        let t0 = 1_000 * MIN;
        let stage: Arc<str> = "tpr".into();
        let id = SessionId::from("a");
        w.observe(look(&id, Some(&stage), t0 - MIN), t0, &W);
        w.pass_done(t0, &W);
        assert!(w.summary(t0, &W).stages.is_empty(), "when it entered is not known");
        w.pass_done(t0 + 31 * MIN, &W);
        assert!(w.followed.is_empty(), "idle past the active window");
    }

    #[test]
    fn with_a_baseline_the_window_is_judged_against_the_hour_before_it() {
        let mut w = FlowWatch::default();
        let now = 1_000 * MIN;
        let baseline = now - 180 * MIN;
        // `n` sessions born at `born`, the first `unused` of them never used again.
        let add = |w: &mut FlowWatch, tag: &str, n: u32, born: Millis, unused: u32| {
            for i in 0..n {
                let id = SessionId::from(format!("{tag}{i}").as_str());
                let reuse = Reuse::Known(i >= unused);
                w.observe(Look { born: Some(born), reuse, ..look(&id, None, born) }, born + MIN, &W);
            }
        };
        // Before the deploy most came back; since, most do not.
        add(&mut w, "before", 60, baseline - 30 * MIN, 6);
        w.pass_done(baseline - 29 * MIN, &W);
        add(&mut w, "broken", 200, now - 40 * MIN, 190);
        add(&mut w, "now", 30, now - 5 * MIN, 28);
        w.pass_done(now, &W);
        let a = w.summary(now, &W).arrivals;
        assert_eq!((a.before_born, a.before_unused), (200, 190), "the hour before the window is broken too");
        w.set_baseline(Some(baseline));
        w.pass_done(now, &W);
        let s = w.summary(now, &W);
        assert_eq!(s.baseline, Some(baseline));
        let a = s.arrivals;
        assert_eq!((a.before_born, a.before_unused, a.before_span_ms), (60, 6, BEFORE_MS), "by the minute, kept a day");
        assert_eq!((a.born, a.unused), (30, 28));
    }
}
