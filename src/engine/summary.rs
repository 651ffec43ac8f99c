//! What a headless command keeps of a census, whatever the store's size: the most recently
//! active sessions up to a limit, and the stalled sessions counted exactly, without a row per
//! session.
//!
//! Whether a session is stalled depends on "now" and, for stores whose idle time comes from the
//! TTL, on the session lifetime, which may only be known once the pass is over (the largest TTL
//! seen). So sessions are counted by the one number the rule needs (idle seconds when the rule
//! is fixed; TTL seconds left otherwise), and the count is taken at the end.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::engine::domain::{self, Millis, SessionRow};
use crate::engine::layout::IdleSource;
use crate::engine::model::ModelSettings;

/// The most recently active sessions, at most `limit`.
pub struct TopN {
    limit: usize,
    idle: IdleSource,
    heap: BinaryHeap<Reverse<Ranked>>,
}

/// A row ranked by recency: known activity before unknown, later before earlier, then by id.
struct Ranked {
    key: (bool, i64, Reverse<Vec<u8>>),
    row: SessionRow,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl TopN {
    pub fn new(limit: usize, idle: IdleSource) -> TopN {
        TopN { limit, idle, heap: BinaryHeap::with_capacity(limit.min(100_000) + 1) }
    }

    /// Considers a row; keeps it when it is among the `limit` most recent so far.
    pub fn offer(&mut self, row: &SessionRow) {
        if self.limit == 0 {
            return;
        }
        let activity = domain::activity(self.idle, row.last_interaction, row.ttl);
        let key = (activity.is_some(), activity.unwrap_or(i64::MIN), Reverse(row.id.as_bytes().to_vec()));
        if self.heap.len() >= self.limit {
            match self.heap.peek() {
                Some(Reverse(worst)) if worst.key >= key => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
        self.heap.push(Reverse(Ranked { key, row: row.clone() }));
    }

    /// The kept rows, most recent first.
    pub fn into_rows(self) -> Vec<SessionRow> {
        let mut rows: Vec<Ranked> = self.heap.into_iter().map(|Reverse(r)| r).collect();
        rows.sort_by(|a, b| b.key.cmp(&a.key));
        rows.into_iter().map(|r| r.row).collect()
    }
}

/// Distinct stages the stalled count tells apart; beyond, one "(other stages)".
const MAX_STAGES: usize = 1000;

/// Counts stalled sessions exactly over a whole pass, judged at `now`, in all and by stage (by
/// substate for layouts that have substates).
///
/// Under the TTL rule without a known lifetime the count depends on the lifetime the pass will
/// infer, which is one of a few dozen values ([`crate::engine::domain::inferable_lifetimes`]): a count is
/// kept for each, a few hundred numbers a stage, and the one for the inferred lifetime is read
/// at the end. Exact, and bounded whatever the store's size.
pub struct StalledCount {
    now: Millis,
    settings: ModelSettings,
    /// Fixed rule (idle from the last interaction, or a given lifetime): the counts themselves.
    counted: BTreeMap<String, u64>,
    /// TTL rule without a given lifetime: by stage, the stalled count under each lifetime the
    /// pass may infer (in the order of `lifetimes`).
    by_lifetime: BTreeMap<String, Vec<u64>>,
    lifetimes: Vec<i64>,
    /// The stages counted apart so far.
    labels: std::collections::HashSet<String>,
}

impl StalledCount {
    pub fn new(settings: ModelSettings, now: Millis) -> StalledCount {
        StalledCount {
            now,
            settings,
            counted: BTreeMap::new(),
            by_lifetime: BTreeMap::new(),
            lifetimes: crate::engine::domain::inferable_lifetimes().collect(),
            labels: Default::default(),
        }
    }

    fn waits_for_lifetime(&self) -> bool {
        self.settings.idle == IdleSource::Ttl
            && self.settings.lifetime_s.is_none()
            && self.settings.layout_lifetime_s.is_none()
    }

    /// The stage a stalled session is counted under.
    fn label(&mut self, row: &SessionRow) -> String {
        let label = if self.settings.substates.is_empty() { &row.stage } else { &row.substate };
        let label = label.as_deref().or(row.stage.as_deref()).unwrap_or("(no stage)");
        if self.labels.contains(label) {
            return label.to_string();
        }
        if self.labels.len() < MAX_STAGES {
            self.labels.insert(label.to_string());
            return label.to_string();
        }
        "(other stages)".to_string()
    }

    pub fn see(&mut self, row: &SessionRow) {
        let in_workflow = row.stage.is_some() || row.substate.is_some();
        let is_final = [row.stage.as_deref(), row.substate.as_deref()]
            .into_iter()
            .flatten()
            .any(|s| self.settings.finals.iter().any(|f| f == s));
        if !in_workflow || is_final {
            return;
        }
        if self.waits_for_lifetime() {
            if let Some(left) = row.ttl.seconds_left(self.now) {
                // idle = lifetime - left > stalled_after  <=>  left < lifetime - stalled_after
                let after = self.settings.stalled_after(row);
                let label = self.label(row);
                let n = self.lifetimes.len();
                let counts = self.by_lifetime.entry(label).or_insert_with(|| vec![0; n]);
                for (count, lifetime) in counts.iter_mut().zip(&self.lifetimes) {
                    if left < lifetime - after {
                        *count += 1;
                    }
                }
            }
            return;
        }
        let lifetime = self.settings.lifetime_s.or(self.settings.layout_lifetime_s);
        let idle = domain::idle_seconds(self.settings.idle, row.last_interaction, row.ttl, self.now, lifetime);
        if domain::stalled(true, false, idle, self.settings.stalled_after(row)) {
            let label = self.label(row);
            *self.counted.entry(label).or_insert(0) += 1;
        }
    }

    /// The counts by stage, with the lifetime the pass found (for the TTL rule without a given
    /// one), in workflow order (stages the layout does not name after, by name).
    pub fn by_stage(&self, lifetime_s: Option<i64>) -> Vec<(String, u64)> {
        let counts: BTreeMap<String, u64> = if self.waits_for_lifetime() {
            let Some(at) = lifetime_s.and_then(|l| self.lifetimes.iter().position(|c| *c == l)) else {
                return Vec::new();
            };
            self.by_lifetime.iter().map(|(label, counts)| (label.clone(), counts[at])).collect()
        } else {
            self.counted.clone()
        };
        let order = if self.settings.substates.is_empty() { &self.settings.stages } else { &self.settings.substates };
        let mut out: Vec<(String, u64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
        out.sort_by_key(|(label, _)| (order.iter().position(|o| o == label).unwrap_or(usize::MAX), label.clone()));
        out
    }

    /// The count, with the lifetime the pass found.
    pub fn total(&self, lifetime_s: Option<i64>) -> u64 {
        self.by_stage(lifetime_s).iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::Ttl;
    use std::sync::Arc;

    fn row(id: &str, last_s: i64, expires_ms: i64) -> SessionRow {
        SessionRow {
            stage: Some(Arc::from("uploaded")),
            last_interaction: Some(last_s * 1_000_000),
            ttl: Ttl::ExpiresAt(expires_ms),
            ..SessionRow::new(id)
        }
    }

    #[test]
    fn keeps_the_most_recent_by_exact_time_and_id() {
        let mut top = TopN::new(3, IdleSource::LastInteraction);
        for (id, t) in [("a", 5), ("b", 9), ("c", 1), ("d", 9), ("e", 7), ("f", 2)] {
            top.offer(&row(id, t, 0));
        }
        top.offer(&SessionRow::new("unknown"));
        let ids: Vec<String> = top.into_rows().iter().map(|r| r.id.escaped()).collect();
        assert_eq!(ids, ["b", "d", "e"]);
    }

    #[test]
    fn stalled_counts_wait_for_the_lifetime_when_it_is_inferred() {
        let settings = ModelSettings { idle: IdleSource::Ttl, stalled_after_s: 900, ..ModelSettings::default() };
        let now = 1_000_000_000;
        let mut count = StalledCount::new(settings.clone(), now);
        // Seconds left: 100, 80_000, 85_000 and 86_000.
        for (i, left) in [100, 80_000, 85_000, 86_000].iter().enumerate() {
            count.see(&row(&i.to_string(), 0, now + left * 1000));
        }
        // Lifetime 86,400: idle 86,300, 6,400, 1,400 and 400; three over 900.
        assert_eq!(count.total(Some(86_400)), 3);
        assert_eq!(count.by_stage(Some(86_400)), [("uploaded".to_string(), 3)]);
        let fixed = ModelSettings { lifetime_s: Some(86_400), ..settings.clone() };
        let mut count = StalledCount::new(fixed, now);
        for (i, left) in [100, 80_000, 85_000, 86_000].iter().enumerate() {
            count.see(&row(&i.to_string(), 0, now + left * 1000));
        }
        assert_eq!(count.total(None), 3);

        // Beyond the common lifetimes the inferred lifetime is the next whole day: still exact.
        let mut count = StalledCount::new(settings, now);
        let day = 86_400;
        for (i, left) in [40 * day - 100, 40 * day - 1000, 39 * day].iter().enumerate() {
            count.see(&row(&i.to_string(), 0, now + left * 1000));
        }
        let lifetime = crate::engine::domain::infer_lifetime(40 * day - 100);
        assert_eq!(lifetime, 40 * day);
        assert_eq!(count.total(Some(lifetime)), 2, "idle 100 s is not stalled; 1000 s and a day are");
    }
}
