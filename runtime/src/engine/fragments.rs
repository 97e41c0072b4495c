//! The engine's side of the fragments: sending them what enters at their
//! entry points, ending epochs across all of them (barrier, reports,
//! commit, resume), and failing a view whose operator failed.

use std::time::Duration;

use super::*;
use crate::dataflow::{Control, Decision, EpochTracker, FragmentMsg, Outcome};

/// The engine's record of one running fragment.
pub(super) struct FragmentRt {
    pub handle: crate::dataflow::FragmentHandle,
    /// Controls to run at the next epoch boundary, before it resumes.
    pub controls: Vec<Control>,
}

pub(super) use crate::state::layout::failed_view as failed_key;

impl Worker {
    /// Sends `batch` into the running epoch at the entry point `node`.
    pub(super) fn emit_chunk(&mut self, node: u64, batch: &ChangeBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send_input(node, Message::Chunk(batch.clone()));
        Ok(())
    }

    /// Sends a watermark at the entry point `node`.
    pub(super) fn emit_watermark(&mut self, node: u64, wm: Watermark) -> Result<()> {
        self.send_input(node, Message::Watermark(wm));
        Ok(())
    }

    fn send_input(&self, node: u64, msg: Message) {
        let Some(f) = self
            .node_fragment
            .get(&node)
            .and_then(|v| self.fragments.get(v))
        else {
            return; // a failed or dropped view
        };
        // A fragment that is gone shows at the next barrier.
        let _ = f.handle.send(FragmentMsg::Input {
            port: 0,
            entry: node,
            msg,
        });
    }

    /// What a fragment calls when its writes ask for an early epoch end:
    /// the same as a checkpoint tick.
    pub(super) fn wake(&self) -> crate::dataflow::Wake {
        let (tick, tx) = (self.tick.clone(), self.tx.clone());
        Arc::new(move || {
            if !tick.swap(true, Ordering::Relaxed) {
                if let Some(tx) = tx.upgrade() {
                    let _ = tx.try_send(Command::Barrier { reply: None });
                }
            }
        })
    }

    /// About the bytes the running epoch has written, in the engine and
    /// in every fragment.
    pub(super) fn pending_bytes(&self) -> usize {
        self.writes.approx_bytes()
            + self
                .fragments
                .values()
                .map(|f| f.handle.bytes.load(Ordering::Relaxed))
                .sum::<usize>()
    }

    /// Ends the epoch: see [`Worker::barrier_collect`] and [`Worker::release`].
    pub(super) fn barrier(&mut self, force: bool) -> Result<Epoch> {
        let parked = self.barrier_collect(force)?;
        self.release(parked);
        Ok(self.epoch)
    }

    /// Ends the epoch in every fragment and commits it, leaving the
    /// fragments parked at the boundary: the caller may read the store at
    /// the new epoch and queue controls, then must [`Worker::release`].
    /// Without `force` an epoch that wrote nothing is not committed.
    pub(super) fn barrier_collect(&mut self, force: bool) -> Result<Parked> {
        self.tick.store(false, Ordering::Relaxed);
        let epoch = Epoch(self.epoch.0 + 1);
        let ids: Vec<TableId> = self.fragments.keys().copied().collect();
        let mut tracker = EpochTracker::new(epoch, ids.iter().copied());
        let lost: Vec<TableId> = self.with_sources_held(|w| {
            ids.iter()
                .copied()
                .filter(|id| {
                    !w.fragments.get(id).is_some_and(|f| {
                        f.handle.send(FragmentMsg::Input {
                            port: 0,
                            entry: 0,
                            msg: Message::Barrier(crate::dataflow::Barrier { epoch }),
                        })
                    })
                })
                .collect()
        });
        for id in lost {
            tracker.lost(id, "its thread stopped");
        }
        let failed = loop {
            if let Decision::Commit { failed } = tracker.decide() {
                break failed;
            }
            match self.reports.1.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => {
                    let outcome = match r.result {
                        Ok(w) => {
                            self.writes.absorb(w);
                            Outcome::Done
                        }
                        Err(e) => Outcome::Failed(e),
                    };
                    tracker
                        .record(r.fragment, r.epoch, outcome)
                        .map_err(RuntimeError::Internal)?;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    for id in tracker.missing() {
                        if self
                            .fragments
                            .get(&id)
                            .is_none_or(|f| f.handle.thread.is_finished())
                        {
                            tracker.lost(id, "its thread ended");
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(RuntimeError::Internal("report channel closed".into()))
                }
            }
        };
        let mut parked: Vec<TableId> = ids;
        for (id, why) in failed {
            parked.retain(|p| *p != id);
            self.fail_view(id, &why);
        }
        if self.row_id_dirty {
            self.writes.put(
                crate::state::layout::next_row_id(),
                self.next_row_id.to_be_bytes().to_vec(),
            );
            self.row_id_dirty = false;
        }
        if self.writes.is_empty() && !force {
            return Ok(Parked {
                fragments: parked,
                committed: false,
            });
        }
        let writes = std::mem::take(&mut self.writes);
        if force {
            // FLUSH (or shutdown) is acknowledged only once the epoch is in.
            self.store.commit(writes, epoch)?;
        } else {
            // A periodic barrier: the write runs on the committer thread
            // while the fragments go on; every read waits for it.
            self.store.commit_async(writes, epoch)?;
        }
        self.epoch = epoch;
        tracing::debug!(epoch = epoch.0, "committed");
        Ok(Parked {
            fragments: parked,
            committed: true,
        })
    }

    /// Lets the parked fragments go on: each runs its queued controls,
    /// hears whether the epoch committed, and builds the next one.
    pub(super) fn release(&mut self, parked: Parked) {
        let next = Epoch(self.epoch.0 + 1);
        for id in parked.fragments {
            let Some(f) = self.fragments.get_mut(&id) else {
                continue;
            };
            for c in std::mem::take(&mut f.controls) {
                f.handle.send(FragmentMsg::Control(c));
            }
            f.handle.send(FragmentMsg::Control(Control::Resume {
                committed: parked.committed,
                next,
            }));
        }
    }

    /// Marks view `id` failed with `why` (kept across restarts): stops its
    /// fragment and readers, and fails the views that read it.
    pub(super) fn fail_view(&mut self, id: TableId, why: &str) {
        let Some(name) = self.views.get(&id).map(|v| v.def.name.clone()) else {
            return;
        };
        if self.failed.contains(id) {
            return;
        }
        tracing::error!(view = %name, "materialized view failed: {why}");
        self.failed.insert(id, why.to_string());
        self.writes.put(failed_key(id), why.as_bytes().to_vec());
        self.stop_view(id);
        let readers: Vec<TableId> = self
            .views
            .values()
            .filter(|v| {
                v.def
                    .plan
                    .nodes
                    .iter()
                    .any(|n| matches!(&n.kind, NodeKind::ViewScan { view, .. } if *view == id))
            })
            .map(|v| v.def.id)
            .collect();
        for r in readers {
            self.fail_view(r, &format!("it reads \"{name}\", which failed: {why}"));
        }
    }

    /// Stops view `id`'s fragment and source readers (dropped or failed).
    pub(super) fn stop_view(&mut self, id: TableId) {
        self.stop_readers(id);
        if let Some(name) = self.views.get(&id).map(|v| v.def.name.clone()) {
            self.disconnect_sources(id, &name);
        }
        if let Some(f) = self.fragments.remove(&id) {
            f.handle.send(FragmentMsg::Control(Control::Stop));
        }
        if let Some(v) = self.views.get(&id) {
            let doomed: HashSet<u64> = v.nodes.iter().copied().collect();
            self.node_fragment.retain(|n, _| !doomed.contains(n));
            for t in self.tables.values_mut() {
                t.subscribers.retain(|s| !doomed.contains(s));
            }
        }
        self.node_fragment.retain(|_, v| *v != id);
    }

    /// Stops the source readers of table or view `id`.
    pub(super) fn stop_readers(&mut self, id: TableId) {
        self.readers.retain(|k, r| {
            if k.owner == id {
                r.stop.stop();
                false
            } else {
                true
            }
        });
    }

    /// Stops every fragment and waits for its thread (shutdown).
    pub(super) fn stop_all(&mut self) {
        self.close_sources();
        let all = std::mem::take(&mut self.fragments);
        for f in all.values() {
            f.handle.send(FragmentMsg::Control(Control::Stop));
        }
        for (_, f) in all {
            let _ = f.handle.thread.join();
        }
    }
}

/// Fragments parked at an epoch boundary (see [`Worker::barrier_collect`]).
#[must_use]
pub(super) struct Parked {
    fragments: Vec<TableId>,
    committed: bool,
}
