//! Which findings opened, changed severity or closed since the last look: what a recording
//! and `serve`'s log write. A count that moves with the same severity is not a change (counts
//! move with every census pass).

use std::collections::BTreeMap;

use crate::engine::domain::Finding;

/// One finding's change since the last look.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    Opened(&'a Finding),
    /// Its severity changed; `was` is the one before.
    Changed {
        finding: &'a Finding,
        was: &'static str,
    },
    /// No longer found: its kind's name.
    Closed(&'static str),
}

/// The findings open at the last look: kind → severity.
#[derive(Debug, Clone, Default)]
pub struct FindingLog {
    open: BTreeMap<&'static str, &'static str>,
}

impl FindingLog {
    /// What changed since the last call, in the order of `findings`, the closed after.
    pub fn changes<'a>(&mut self, findings: &'a [Finding]) -> Vec<Change<'a>> {
        let mut open = BTreeMap::new();
        let mut changes = Vec::new();
        for f in findings {
            let severity = f.severity.word();
            open.insert(f.kind.name(), severity);
            match self.open.get(f.kind.name()) {
                None => changes.push(Change::Opened(f)),
                Some(was) if *was != severity => changes.push(Change::Changed { finding: f, was }),
                Some(_) => {}
            }
        }
        changes.extend(self.open.keys().filter(|k| !open.contains_key(*k)).map(|k| Change::Closed(k)));
        self.open = open;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::domain::{FindingKind, Severity};

    fn finding(kind: FindingKind, severity: Severity, count: u64) -> Finding {
        Finding { kind, severity, count, summary: String::new(), by_stage: Vec::new(), sample: Vec::new() }
    }

    #[test]
    fn opened_changed_and_closed_but_not_a_count_that_moves() {
        let mut log = FindingLog::default();
        let first = [finding(FindingKind::NoTtl, Severity::Warning, 3)];
        assert_eq!(log.changes(&first), vec![Change::Opened(&first[0])]);
        let more = [finding(FindingKind::NoTtl, Severity::Warning, 5)];
        assert!(log.changes(&more).is_empty(), "a count that moves is not a change");
        let worse = [finding(FindingKind::NoTtl, Severity::Critical, 5)];
        assert_eq!(log.changes(&worse), vec![Change::Changed { finding: &worse[0], was: "warning" }]);
        assert_eq!(log.changes(&[]), vec![Change::Closed("no_ttl")]);
        assert!(log.changes(&[]).is_empty());
    }
}
