//! Findings about the nodes of a target made of several (a cluster): a node that cannot be
//! reached or that the cluster marks failed, slots that no primary serves, a failover and a
//! resharding seen while watching, and a node near its memory limit. Pure: the views of the
//! nodes come in, the findings go out.

use std::collections::BTreeMap;

use crate::engine::domain::Millis;
use crate::engine::domain::{Finding, FindingKind, NodeStatus, NodesView, Severity, Thresholds};
use crate::util::text;

/// How long a failover or a resharding seen while watching stays a finding.
const EVENT_MS: Millis = crate::engine::domain::EVENT_FINDING_MS;
/// Events kept of each kind (older ones are dropped first).
const EVENTS_KEPT: usize = 8;

/// A node as a poll saw it: its address, whether it was a primary, and its slots.
type Seen = (String, bool, Vec<(u16, u16)>);

/// What the node findings remember between polls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeWatch {
    /// Each node by id: its address, whether it was a primary, and the slots it served.
    last: BTreeMap<String, Seen>,
    /// Each slot's last known primary, by id (kept while a slot has none).
    owners: Vec<Option<std::sync::Arc<str>>>,
    /// Failovers seen: when, the former primary's address, the new one's, the slots moved.
    failovers: Vec<(Millis, String, String, u32)>,
    /// Slots that changed primary without a failover: when (the minute's first), and how many.
    reshards: Vec<(Millis, u32)>,
}

impl NodeWatch {
    /// A poll of the nodes: primaries that were replicas are failovers; primaries whose slots
    /// changed otherwise are a resharding.
    pub fn observe(&mut self, view: &NodesView, now: Millis) {
        let current: BTreeMap<String, Seen> = view
            .nodes
            .iter()
            .filter(|n| !n.id.is_empty())
            .map(|n| (n.id.clone(), (n.address.clone(), n.primary, n.slots.clone())))
            .collect();
        let mut promoted = Vec::new();
        if !self.last.is_empty() {
            for (id, (address, primary, slots)) in &current {
                if *primary && matches!(self.last.get(id), Some((_, false, _))) {
                    let former = self.former_primary(slots);
                    self.failovers.push((now, former, address.clone(), count(slots)));
                    promoted.push(id.as_str());
                }
            }
        }
        // Slots whose primary changed, other than by a failover, moved (resharding).
        let first = self.owners.is_empty();
        self.owners.resize(crate::conn::slot::SLOTS, None);
        let mut moved = 0;
        for n in view.primaries().filter(|n| !n.id.is_empty()) {
            let id: std::sync::Arc<str> = n.id.as_str().into();
            for &(a, b) in &n.slots {
                for slot in a..=b.min((crate::conn::slot::SLOTS - 1) as u16) {
                    let owner = &mut self.owners[usize::from(slot)];
                    if owner.as_deref().is_some_and(|o| o != n.id) && !promoted.contains(&n.id.as_str()) && !first {
                        moved += 1;
                    }
                    *owner = Some(id.clone());
                }
            }
        }
        // A minute's moves are one entry, so an hour of resharding is at most sixty.
        match self.reshards.last_mut() {
            Some((at, n)) if moved > 0 && now - *at < 60_000 => *n += moved,
            _ if moved > 0 => self.reshards.push((now, moved)),
            _ => {}
        }
        self.last = current;
        self.failovers.retain(|(at, ..)| now - at < EVENT_MS);
        self.reshards.retain(|(at, _)| now - at < EVENT_MS);
        let excess = self.failovers.len().saturating_sub(EVENTS_KEPT);
        self.failovers.drain(..excess);
    }

    /// The primary a new primary replaced: the one that served its slots before.
    fn former_primary(&self, slots: &[(u16, u16)]) -> String {
        self.last
            .values()
            .find(|(_, was_primary, before)| *was_primary && !slots.is_empty() && before.as_slice() == slots)
            .map_or_else(|| "its former primary".to_string(), |(address, ..)| address.clone())
    }

    /// The findings of the nodes now and of what was seen while watching.
    pub fn findings(&self, view: &NodesView, thresholds: &Thresholds, now: Millis, out: &mut Vec<Finding>) {
        down(view, out);
        uncovered(view, out);
        memory(view, thresholds, out);
        let failovers: Vec<String> = self
            .failovers
            .iter()
            .filter(|(at, ..)| now - at < EVENT_MS)
            .map(|(at, old, new, slots)| {
                let ago = text::human_duration((now - at) / 1000);
                let (new, old) = (text::escape_str(new), text::escape_str(old));
                if view.kind == "cluster" {
                    format!("{new} took over {} slots from {old} ({ago} ago)", text::grouped(u64::from(*slots)))
                } else {
                    format!("{new} replaced {old} as the primary ({ago} ago)")
                }
            })
            .collect();
        if !failovers.is_empty() {
            out.push(finding(
                FindingKind::Failover,
                Severity::Warning,
                failovers.len() as u64,
                format!(
                    "failover: {}; clients that kept a connection to the old primary get READONLY until they follow",
                    failovers.join("; ")
                ),
            ));
        }
        let moved: u32 = self.reshards.iter().filter(|(at, _)| now - at < EVENT_MS).map(|(_, n)| n).sum();
        if moved > 0 {
            out.push(finding(
                FindingKind::SlotsMoved,
                Severity::Info,
                u64::from(moved),
                format!(
                    "{} slots moved between primaries in the last hour (resharding): the census followed them",
                    text::grouped(u64::from(moved))
                ),
            ));
        }
    }
}

/// How many slots the ranges hold.
fn count(ranges: &[(u16, u16)]) -> u32 {
    ranges.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum()
}

fn finding(kind: FindingKind, severity: Severity, count: u64, summary: String) -> Finding {
    Finding { kind, severity, count, summary, by_stage: Vec::new(), sample: Vec::new() }
}

fn describe(n: &NodeStatus) -> String {
    let what = if n.primary {
        format!("primary of {} slots", text::grouped(u64::from(n.slot_count())))
    } else {
        format!("replica of {}", n.replica_of.as_deref().map_or_else(|| "no primary".into(), text::escape_str))
    };
    format!("{} ({what})", text::escape_str(&n.address))
}

/// Nodes that cannot be reached, or that the cluster marks failed.
fn down(view: &NodesView, out: &mut Vec<Finding>) {
    let down: Vec<&NodeStatus> = view.nodes.iter().filter(|n| n.error.is_some() || n.health == "failed").collect();
    if down.is_empty() {
        return;
    }
    let severity = if down.iter().any(|n| n.primary) { Severity::Critical } else { Severity::Warning };
    let lines: Vec<String> = down
        .iter()
        .map(|n| match &n.error {
            Some(e) => format!("{} cannot be reached: {}", describe(n), text::clip_sized(&text::escape_str(e), 80)),
            None => format!("{} is marked failed by the cluster", describe(n)),
        })
        .collect();
    out.push(finding(FindingKind::NodeDown, severity, down.len() as u64, lines.join("; ")));
}

/// Slots no primary serves: the sessions in them can be neither read nor written.
fn uncovered(view: &NodesView, out: &mut Vec<Finding>) {
    let count: u32 = view.uncovered.iter().map(|(a, b)| u32::from(*b) - u32::from(*a) + 1).sum();
    if count == 0 {
        return;
    }
    out.push(finding(
        FindingKind::SlotsUncovered,
        Severity::Critical,
        u64::from(count),
        format!(
            "slots {} ({} of 16,384) are served by no primary: sessions in them can be neither read nor written \
             (CLUSTERDOWN), and the census cannot count them",
            crate::conn::slot::ranges_text(&view.uncovered),
            text::grouped(u64::from(count))
        ),
    ));
}

/// A primary near its own memory limit, though the cluster as a whole may not be.
fn memory(view: &NodesView, t: &Thresholds, out: &mut Vec<Finding>) {
    let mut worst: Option<(&NodeStatus, f64)> = None;
    for n in view.primaries() {
        if let Some(share) = n.stats.as_deref().and_then(|s| s.memory_fraction())
            && share >= t.memory_warning
            && worst.is_none_or(|(_, w)| share > w)
        {
            worst = Some((n, share));
        }
    }
    if let Some((n, share)) = worst {
        let severity = if share >= t.memory_critical { Severity::Critical } else { Severity::Warning };
        out.push(finding(
            FindingKind::MemoryHigh,
            severity,
            1,
            format!(
                "node {} uses {:.0}% of its maxmemory: its slots' sessions are the first to be refused or evicted",
                describe(n),
                share * 100.0
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, address: &str, primary: bool, slots: (u16, u16)) -> NodeStatus {
        NodeStatus {
            address: address.into(),
            id: id.into(),
            primary,
            health: "online".into(),
            slots: if primary { vec![slots] } else { Vec::new() },
            ..NodeStatus::default()
        }
    }

    fn view(nodes: Vec<NodeStatus>) -> NodesView {
        NodesView { kind: "cluster".into(), epoch: 1, nodes, uncovered: Vec::new(), reads: None }
    }

    fn kinds(watch: &NodeWatch, v: &NodesView, now: Millis) -> Vec<(FindingKind, Severity)> {
        let mut out = Vec::new();
        watch.findings(v, &Thresholds::default(), now, &mut out);
        out.iter().map(|f| (f.kind, f.severity)).collect()
    }

    #[test]
    fn a_replica_that_becomes_primary_is_a_failover_for_an_hour() {
        let mut watch = NodeWatch::default();
        let before = view(vec![node("a", "10.0.0.1:7000", true, (0, 99)), node("b", "10.0.0.2:7000", false, (0, 0))]);
        watch.observe(&before, 0);
        assert!(kinds(&watch, &before, 0).is_empty());
        let mut demoted = node("a", "10.0.0.1:7000", false, (0, 0));
        demoted.replica_of = Some("10.0.0.2:7000".into());
        let after = view(vec![node("b", "10.0.0.2:7000", true, (0, 99)), demoted]);
        watch.observe(&after, 1_000);
        let mut out = Vec::new();
        watch.findings(&after, &Thresholds::default(), 61_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, FindingKind::Failover);
        assert!(
            out[0].summary.contains("10.0.0.2:7000 took over 100 slots from 10.0.0.1:7000 (1m00s ago)"),
            "{}",
            out[0].summary
        );
        watch.observe(&after, EVENT_MS + 2_000);
        assert!(kinds(&watch, &after, EVENT_MS + 2_000).is_empty(), "an hour on, it is history");
    }

    #[test]
    fn slots_changing_primary_are_a_resharding() {
        let mut watch = NodeWatch::default();
        watch.observe(&view(vec![node("a", "a:1", true, (0, 99)), node("b", "b:1", true, (100, 199))]), 0);
        let after = view(vec![node("a", "a:1", true, (0, 89)), node("b", "b:1", true, (90, 199))]);
        watch.observe(&after, 10);
        let mut out = Vec::new();
        watch.findings(&after, &Thresholds::default(), 20, &mut out);
        assert_eq!((out[0].kind, out[0].count), (FindingKind::SlotsMoved, 10));
    }

    #[test]
    fn unreachable_nodes_and_uncovered_slots_are_said() {
        let watch = NodeWatch::default();
        let mut lost = node("a", "a:1", true, (0, 5460));
        lost.error = Some("connection refused".into());
        let mut replica = node("b", "b:1", false, (0, 0));
        replica.health = "failed".into();
        let mut v = view(vec![lost, replica]);
        v.uncovered = vec![(0, 5460)];
        let mut out = Vec::new();
        watch.findings(&v, &Thresholds::default(), 0, &mut out);
        assert_eq!(out[0].kind, FindingKind::NodeDown);
        assert_eq!((out[0].severity, out[0].count), (Severity::Critical, 2));
        assert!(out[0].summary.contains("a:1 (primary of 5,461 slots) cannot be reached: connection refused"));
        assert!(out[0].summary.contains("b:1 (replica of no primary) is marked failed"));
        assert_eq!(out[1].kind, FindingKind::SlotsUncovered);
        assert!(out[1].summary.starts_with("slots 0-5460 (5,461 of 16,384)"), "{}", out[1].summary);
    }

    #[test]
    fn a_full_node_is_a_finding_though_the_cluster_is_not() {
        let mut full = node("a", "a:1", true, (0, 99));
        full.stats = Some(Box::new(crate::conn::info::ServerStats {
            used_memory_bytes: Some(96),
            maxmemory_bytes: Some(100),
            ..Default::default()
        }));
        let v = view(vec![full, node("b", "b:1", true, (100, 199))]);
        assert_eq!(kinds(&NodeWatch::default(), &v, 0), vec![(FindingKind::MemoryHigh, Severity::Critical)]);
    }
}
