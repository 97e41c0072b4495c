//! One reader per source: the hub that hands every chunk of a source's
//! shared reader to each scan of the source in every view, and where the
//! engine places each epoch's barrier at one point of the source for all
//! of them.
//!
//! The reader hands a chunk on to every subscriber while holding the hub's
//! lock; the engine holds the locks of all hubs while it sends a barrier to
//! every fragment. So each chunk of a source is before the barrier of epoch
//! n in every view, or after it in every view: all views of a source
//! commit at the same offsets, and the hub's positions at the barrier are
//! what the engine commits for the source.

use std::sync::{Arc, Mutex, MutexGuard};

use freshet_storage::TableId;

use super::fragment::{FragmentMsg, FragmentTx};
use super::graph::NodeId;
use super::source_entry::SourceInput;
use crate::source::{Ingest, IngestSink, SplitState};

/// One source's shared reader's fan-out.
#[derive(Default)]
pub struct SourceHub {
    state: Mutex<HubState>,
}

/// What a hub's lock guards.
#[derive(Default)]
pub struct HubState {
    subscribers: Vec<Subscriber>,
    /// Split positions after the last chunk handed on.
    pub positions: SplitState,
    /// No view reads the source any more: its reader ends.
    closed: bool,
}

/// A view reading the source: its fragment and its scans of the source.
struct Subscriber {
    view: TableId,
    tx: FragmentTx,
    entries: Vec<NodeId>,
}

impl SourceHub {
    /// A hub whose reader starts at `positions`.
    pub fn new(positions: SplitState) -> Arc<SourceHub> {
        Arc::new(SourceHub {
            state: Mutex::new(HubState {
                subscribers: Vec::new(),
                positions,
                closed: false,
            }),
        })
    }

    /// Holds the hub: no chunk is handed on until the guard is dropped.
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl HubState {
    /// Adds view `view`'s scans `entries` (on its fragment's channel `tx`):
    /// they get every chunk after the current positions.
    pub fn subscribe(&mut self, view: TableId, tx: FragmentTx, entries: Vec<NodeId>) {
        self.subscribers.retain(|s| s.view != view);
        self.subscribers.push(Subscriber { view, tx, entries });
    }

    /// Removes view `view`; whether no view reads the source any more.
    pub fn unsubscribe(&mut self, view: TableId) -> bool {
        self.subscribers.retain(|s| s.view != view);
        self.subscribers.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Ends the reader at its next chunk.
    pub fn close(&mut self) {
        self.closed = true;
        self.subscribers.clear();
    }
}

/// The shared reader's end of its hub.
pub struct HubSink(pub Arc<SourceHub>);

impl IngestSink for HubSink {
    fn send(&self, msg: Ingest) -> bool {
        let mut st = self.0.lock();
        if st.closed {
            return false;
        }
        let chunk = msg.chunk.map(|c| c.rows);
        if chunk.is_some() || msg.watermark.is_some() {
            // A view whose fragment is gone (failed, dropped) drops out.
            st.subscribers.retain(|s| {
                s.entries.iter().all(|&entry| {
                    s.tx.send(FragmentMsg::Source {
                        chunk: chunk.clone(),
                        input: SourceInput {
                            entry,
                            key: msg.key,
                            state: Vec::new(),
                            watermark: msg.watermark.clone(),
                            catch_up: false,
                            done: false,
                        },
                    })
                    .is_ok()
                })
            });
        }
        st.positions.extend(msg.state);
        true
    }
}
