//! Who connects, watched: a host that was not connected when the watch began starting to
//! connect (another environment using this Redis: the seeds' production on staging's Redis),
//! and the connections from the hosts that were falling sharply (the application's workers
//! gone). Pure: fed each [`ClientsView`], it says what it saw as findings.

use std::collections::BTreeMap;

use crate::engine::domain::{ClientsView, EVENT_FINDING_MS, Finding, FindingKind, Millis, Severity, Thresholds};
use crate::util::text;

/// Connections from the hosts of the start below which a fall says nothing.
const FALL_MIN: u64 = 4;
/// New hosts named in one finding at most.
const NEW_HOSTS_SAID: usize = 4;

/// What the watch of clients remembers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientWatch {
    /// The connections by host at the first listing (the application's hosts), or at the
    /// first listing from the deploy baseline on, when one is set: when it was listed, the
    /// baseline it stands for, and the connections.
    reference: Option<Reference>,
    /// Hosts not connected then: when first seen, and their connections at the last listing.
    new_hosts: BTreeMap<String, (Millis, u64)>,
    /// The connections from the hosts of the reference at the last listing.
    from_reference: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Reference {
    at: Millis,
    baseline: Option<Millis>,
    hosts: BTreeMap<String, u64>,
}

impl ClientWatch {
    /// A listing of the clients, with the deploy baseline when one is set: the hosts are judged
    /// against those connected at the first listing from the baseline on, else at the first.
    pub fn observe(&mut self, view: &ClientsView, baseline: Option<Millis>) {
        if view.unavailable.is_some() {
            return;
        }
        let now: BTreeMap<String, u64> = view.hosts.iter().map(|h| (h.host.clone(), h.connections)).collect();
        let due = match &self.reference {
            None => true,
            // A baseline marked, moved or cleared: the hosts of the next listing from it on.
            Some(r) => r.baseline != baseline && baseline.is_none_or(|b| view.at >= b),
        };
        if due {
            self.reference = Some(Reference { at: view.at, baseline, hosts: now });
            self.new_hosts.clear();
            self.from_reference = None;
            return;
        }
        let Some(reference) = &self.reference else { return };
        for (host, (_, connections)) in self.new_hosts.iter_mut() {
            *connections = now.get(host).copied().unwrap_or(0);
        }
        for (host, n) in now.iter().filter(|(h, n)| **n > 0 && !reference.hosts.contains_key(*h)) {
            self.new_hosts.entry(host.clone()).or_insert((view.at, *n));
        }
        let at = view.at;
        self.new_hosts.retain(|_, (since, n)| *n > 0 || at - *since < EVENT_FINDING_MS);
        self.from_reference =
            Some(reference.hosts.keys().map(|h| (h.clone(), now.get(h).copied().unwrap_or(0))).collect());
    }

    /// The hosts connected now that were not at the reference listing.
    pub fn new_hosts(&self) -> impl Iterator<Item = &str> {
        self.new_hosts.iter().filter(|(_, (_, n))| *n > 0).map(|(host, _)| host.as_str())
    }

    /// The findings of what was seen, added to `out`; times are said at `utc_offset_s`, the
    /// local zone's offset the front gives.
    pub fn findings(&self, t: &Thresholds, utc_offset_s: i32, out: &mut Vec<Finding>) {
        let clock = |at: Millis| text::clock(at, utc_offset_s);
        let Some(reference) = &self.reference else { return };
        let (began, base) = (&reference.at, &reference.hosts);
        let when = match reference.baseline {
            Some(b) => format!("at the deploy at {}", clock(b)),
            None => format!("when the watch began at {}", clock(*began)),
        };
        let new: Vec<String> = self
            .new_hosts
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .take(NEW_HOSTS_SAID)
            .map(|(host, (since, n))| {
                format!("{n} connection{} from a new host {host} since {}", plural(*n), clock(*since))
            })
            .collect();
        if !new.is_empty() {
            let count = self.new_hosts.values().map(|(_, n)| *n).sum();
            out.push(finding(
                FindingKind::NewClientHost,
                count,
                format!("{}: is another environment using this Redis? (not connected {when})", new.join("; ")),
            ));
        }
        let Some(now) = &self.from_reference else { return };
        let before: u64 = base.values().sum();
        let after: u64 = now.values().sum();
        if before >= FALL_MIN && (after as f64) <= before as f64 * (1.0 - t.clients_fall_share) {
            let hosts: Vec<String> = base
                .iter()
                .filter(|(h, n)| now.get(*h).copied().unwrap_or(0) < **n)
                .take(NEW_HOSTS_SAID)
                .map(|(h, n)| format!("{h} {n} → {}", now.get(h).copied().unwrap_or(0)))
                .collect();
            out.push(finding(
                FindingKind::ClientsFell,
                before - after,
                format!(
                    "connections from the application's hosts fell from {before} to {after} since {} (more than {:.0}%): \
                     workers gone? ({})",
                    clock(*began),
                    t.clients_fall_share * 100.0,
                    hosts.join(", ")
                ),
            ));
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn finding(kind: FindingKind, count: u64, summary: String) -> Finding {
    Finding { kind, severity: Severity::Warning, count, summary, by_stage: Vec::new(), sample: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::HostClients;

    fn view(at: Millis, hosts: &[(&str, u64)]) -> ClientsView {
        ClientsView {
            at,
            hosts: hosts
                .iter()
                .map(|(h, n)| HostClients { host: h.to_string(), connections: *n, ..HostClients::default() })
                .collect(),
            ..ClientsView::default()
        }
    }

    fn judged(w: &ClientWatch) -> Vec<Finding> {
        let mut out = Vec::new();
        w.findings(&Thresholds::default(), 0, &mut out);
        out
    }

    #[test]
    fn a_host_that_was_not_connected_at_the_start_is_found_and_a_steady_one_is_not() {
        let mut w = ClientWatch::default();
        w.observe(&view(0, &[("10.0.0.5", 8), ("10.0.0.6", 8)]), None);
        w.observe(&view(10_000, &[("10.0.0.5", 7), ("10.0.0.6", 9)]), None);
        assert!(judged(&w).is_empty());
        w.observe(&view(20_000, &[("10.0.0.5", 8), ("10.0.0.6", 8), ("172.31.44.52", 6)]), None);
        let f = judged(&w);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::NewClientHost);
        assert_eq!(f[0].count, 6);
        assert!(f[0].summary.starts_with("6 connections from a new host 172.31.44.52 since "), "{}", f[0].summary);
        assert!(f[0].summary.contains(": is another environment using this Redis?"), "{}", f[0].summary);
    }

    #[test]
    fn connections_from_the_application_s_hosts_falling_by_half_is_workers_gone() {
        let mut w = ClientWatch::default();
        w.observe(&view(0, &[("10.0.0.5", 12), ("10.0.0.6", 12)]), None);
        w.observe(&view(10_000, &[("10.0.0.5", 12), ("10.0.0.6", 1)]), None);
        assert!(judged(&w).is_empty(), "13 of 24 is not half gone");
        w.observe(&view(20_000, &[("10.0.0.5", 3), ("10.0.0.6", 3)]), None);
        let f = judged(&w);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, FindingKind::ClientsFell);
        assert!(
            f[0].summary.starts_with("connections from the application's hosts fell from 24 to 6 since "),
            "{}",
            f[0].summary
        );
        assert!(
            f[0].summary.ends_with("(more than 50%): workers gone? (10.0.0.5 12 → 3, 10.0.0.6 12 → 3)"),
            "{}",
            f[0].summary
        );
        // Back again: the finding goes.
        w.observe(&view(30_000, &[("10.0.0.5", 12), ("10.0.0.6", 12)]), None);
        assert!(judged(&w).is_empty());
    }

    #[test]
    fn with_a_baseline_the_hosts_connected_at_it_are_the_application_s() {
        let mut w = ClientWatch::default();
        w.observe(&view(0, &[("10.0.0.5", 8)]), None);
        // The deploy brings workers on another host; the baseline marked after it takes them in.
        w.observe(&view(10_000, &[("10.0.0.5", 8), ("10.0.0.7", 8)]), None);
        assert_eq!(judged(&w)[0].kind, FindingKind::NewClientHost);
        w.observe(&view(20_000, &[("10.0.0.5", 8), ("10.0.0.7", 8)]), Some(15_000));
        assert!(judged(&w).is_empty(), "{:?}", judged(&w));
        w.observe(&view(30_000, &[("10.0.0.5", 8), ("10.0.0.7", 8), ("172.31.44.52", 2)]), Some(15_000));
        let f = judged(&w);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].summary.starts_with("2 connections from a new host 172.31.44.52 since "), "{}", f[0].summary);
        assert!(f[0].summary.contains("(not connected at the deploy at "), "{}", f[0].summary);
    }
}
