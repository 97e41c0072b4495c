//! The commit decision: may epoch n commit? A pure function of what the
//! coordinator has observed (which fragments were asked to end the epoch,
//! which have reported it, and how), tested exhaustively; all I/O stays in
//! the engine.

use std::collections::BTreeMap;

use freshet_storage::{Epoch, TableId};

/// What a fragment said about the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ended the epoch and handed over its writes.
    Done,
    /// It failed (its view fails; the epoch commits without it).
    Failed(String),
}

/// Where epoch `epoch` stands: every fragment that received its barrier
/// must report before it commits.
#[derive(Debug)]
pub struct EpochTracker {
    epoch: Epoch,
    /// Fragment -> its report, once it came.
    expected: BTreeMap<TableId, Option<Outcome>>,
}

/// What the coordinator does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Some fragments have not reported yet.
    Wait,
    /// Every fragment reported: commit what the `Done` ones wrote, and
    /// mark the failed ones failed, in the same write.
    Commit { failed: Vec<(TableId, String)> },
}

impl EpochTracker {
    /// Epoch `epoch`, whose barrier went to `fragments`.
    pub fn new(epoch: Epoch, fragments: impl IntoIterator<Item = TableId>) -> Self {
        EpochTracker {
            epoch,
            expected: fragments.into_iter().map(|f| (f, None)).collect(),
        }
    }

    /// Records `fragment`'s report of `epoch`. A report of another epoch,
    /// from a fragment that was not asked, or a second report is a protocol
    /// error.
    pub fn record(
        &mut self,
        fragment: TableId,
        epoch: Epoch,
        outcome: Outcome,
    ) -> Result<(), String> {
        if epoch != self.epoch {
            return Err(format!(
                "fragment {} reported epoch {} while epoch {} is ending",
                fragment.0, epoch.0, self.epoch.0
            ));
        }
        match self.expected.get_mut(&fragment) {
            Some(slot @ None) => {
                *slot = Some(outcome);
                Ok(())
            }
            Some(Some(_)) => Err(format!(
                "fragment {} reported epoch {} twice",
                fragment.0, epoch.0
            )),
            None => Err(format!(
                "fragment {} was not part of epoch {}",
                fragment.0, epoch.0
            )),
        }
    }

    /// A fragment that is gone (stopped, or its thread ended) counts as
    /// failed with `why` unless it already reported.
    pub fn lost(&mut self, fragment: TableId, why: &str) {
        if let Some(slot @ None) = self.expected.get_mut(&fragment) {
            *slot = Some(Outcome::Failed(why.to_string()));
        }
    }

    /// Fragments that have not reported.
    pub fn missing(&self) -> Vec<TableId> {
        self.expected
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(f, _)| *f)
            .collect()
    }

    pub fn decide(&self) -> Decision {
        if self.expected.values().any(Option::is_none) {
            return Decision::Wait;
        }
        Decision::Commit {
            failed: self
                .expected
                .iter()
                .filter_map(|(f, o)| match o {
                    Some(Outcome::Failed(e)) => Some((*f, e.clone())),
                    _ => None,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(k: usize) -> Outcome {
        if k == 0 {
            Outcome::Done
        } else {
            Outcome::Failed(format!("e{k}"))
        }
    }

    /// Every order of reports from up to four fragments, each done or
    /// failed: the epoch commits exactly when the last one reported, with
    /// exactly the failed ones.
    #[test]
    fn commits_exactly_when_every_fragment_reported() {
        fn perms(n: usize) -> Vec<Vec<usize>> {
            if n == 0 {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for p in perms(n - 1) {
                for i in 0..=p.len() {
                    let mut q = p.clone();
                    q.insert(i, n - 1);
                    out.push(q);
                }
            }
            out
        }
        for n in 0..=4usize {
            for order in perms(n) {
                for mask in 0..(1u32 << n) {
                    let frags: Vec<TableId> = (0..n as u32).map(|i| TableId(10 + i)).collect();
                    let mut t = EpochTracker::new(Epoch(7), frags.clone());
                    for (step, &i) in order.iter().enumerate() {
                        assert_eq!(t.decide(), Decision::Wait, "{order:?} step {step}");
                        let o = outcome(((mask >> i) & 1) as usize * (i + 1));
                        t.record(frags[i], Epoch(7), o).unwrap();
                    }
                    let want: Vec<(TableId, String)> = (0..n)
                        .filter(|i| (mask >> i) & 1 == 1)
                        .map(|i| (frags[i], format!("e{}", i + 1)))
                        .collect();
                    assert_eq!(t.decide(), Decision::Commit { failed: want });
                    assert!(t.missing().is_empty());
                }
            }
        }
    }

    #[test]
    fn protocol_errors_and_lost_fragments() {
        let mut t = EpochTracker::new(Epoch(3), [TableId(1), TableId(2)]);
        assert!(
            t.record(TableId(1), Epoch(2), Outcome::Done).is_err(),
            "old epoch"
        );
        assert!(
            t.record(TableId(9), Epoch(3), Outcome::Done).is_err(),
            "not asked"
        );
        t.record(TableId(1), Epoch(3), Outcome::Done).unwrap();
        assert!(
            t.record(TableId(1), Epoch(3), Outcome::Done).is_err(),
            "twice"
        );
        assert_eq!(t.missing(), vec![TableId(2)]);
        t.lost(TableId(1), "ignored: it reported");
        t.lost(TableId(2), "thread ended");
        assert_eq!(
            t.decide(),
            Decision::Commit {
                failed: vec![(TableId(2), "thread ended".into())]
            }
        );
    }
}
