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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ReaderKey, SourceChunk};
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn chunk(v: i64, offset: i64) -> Ingest {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let rows =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).expect("batch");
        Ingest {
            key: ReaderKey {
                owner: TableId(9),
                slot: 0,
            },
            chunk: Some(SourceChunk { rows, ops: None }),
            state: vec![("p0".into(), offset)],
            watermark: None,
            done: false,
        }
    }

    /// What one channel received: chunk values, and `-1` for a barrier.
    fn received(rx: &std::sync::mpsc::Receiver<FragmentMsg>) -> Vec<(NodeId, i64)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m {
                FragmentMsg::Source {
                    chunk: Some(c),
                    input,
                } => {
                    let a = c.column(0).as_any().downcast_ref::<Int64Array>();
                    out.push((input.entry, a.map_or(0, |a| a.value(0))));
                }
                FragmentMsg::Input { .. } => out.push((0, -1)),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_view_sees_each_chunk_on_the_same_side_of_a_barrier() {
        let hub = SourceHub::new(SplitState::new());
        let (tx1, rx1) = std::sync::mpsc::sync_channel(16);
        let (tx2, rx2) = std::sync::mpsc::sync_channel(16);
        hub.lock().subscribe(TableId(1), tx1.clone(), vec![10]);
        // A self-join: two scans of the source in one view.
        hub.lock().subscribe(TableId(2), tx2.clone(), vec![20, 21]);
        let sink = HubSink(hub.clone());
        assert!(sink.send(chunk(1, 1)));
        {
            // The engine's barrier, sent while holding the hub.
            let g = hub.lock();
            for tx in [&tx1, &tx2] {
                let _ = tx.send(FragmentMsg::Input {
                    port: 0,
                    entry: 0,
                    msg: super::super::Message::Barrier(super::super::Barrier {
                        epoch: freshet_storage::Epoch(1),
                    }),
                });
            }
            assert_eq!(g.positions.get("p0"), Some(&1));
        }
        assert!(sink.send(chunk(2, 2)));
        assert_eq!(received(&rx1), vec![(10, 1), (0, -1), (10, 2)]);
        assert_eq!(
            received(&rx2),
            vec![(20, 1), (21, 1), (0, -1), (20, 2), (21, 2)]
        );
        // A view whose fragment is gone drops out; the last one leaving
        // empties the hub, and a closed hub ends its reader.
        drop(rx1);
        assert!(sink.send(chunk(3, 3)));
        assert!(!hub.lock().unsubscribe(TableId(1)));
        assert!(hub.lock().unsubscribe(TableId(2)));
        hub.lock().close();
        assert!(!sink.send(chunk(4, 4)));
        assert_eq!(hub.lock().positions.get("p0"), Some(&3));
    }
}
