//! Source readers that feed a view's fragment directly: the sink a reader
//! sends into, and what the fragment does with each chunk (late rows
//! counted, split positions written into the fragment's epoch, watermarks
//! passed on), so a reader's chunk and its offsets always commit in the
//! same epoch, and one slow view never holds up another's reader.

use std::sync::Arc;

use datafusion::common::ScalarValue;

use super::fragment::{FragmentMsg, FragmentTx};
use super::graph::NodeId;
use crate::source::{Ingest, IngestSink, ReaderKey};
use crate::time::TimeStats;

/// What a reader sends into a fragment, at its source scan `entry`.
pub struct SourceInput {
    pub entry: NodeId,
    pub key: ReaderKey,
    pub state: Vec<(String, i64)>,
    pub watermark: Option<ScalarValue>,
    /// From the view's catch-up reader (not the source's shared one).
    pub catch_up: bool,
    /// The catch-up reader's last message.
    pub done: bool,
}

/// A view's catch-up reader's end of its fragment's channel: what the
/// reader reads goes to each of the view's scans of the source.
pub struct FragmentSink {
    pub tx: FragmentTx,
    pub entries: Vec<NodeId>,
}

impl IngestSink for FragmentSink {
    fn send(&self, msg: Ingest) -> bool {
        let chunk = msg.chunk.map(|c| c.rows);
        self.entries.iter().enumerate().all(|(i, &entry)| {
            self.tx
                .send(FragmentMsg::Source {
                    chunk: chunk.clone(),
                    input: SourceInput {
                        entry,
                        key: msg.key,
                        // The positions are written once.
                        state: if i == 0 {
                            msg.state.clone()
                        } else {
                            Vec::new()
                        },
                        watermark: msg.watermark.clone(),
                        catch_up: true,
                        done: msg.done,
                    },
                })
                .is_ok()
        })
    }
}

/// A source scan of the fragment: its event-time column and watermark.
#[derive(Default)]
pub struct SourceEntry {
    /// The event-time column, for sources with `WATERMARK FOR`.
    pub col: Option<usize>,
    pub watermark: Option<ScalarValue>,
    pub time: Option<Arc<TimeStats>>,
    /// The view's catch-up reader still reads the source's past: the
    /// shared reader's watermark waits in `held` (its rows are newer, and
    /// would make the past late).
    pub catching_up: bool,
    pub held: Option<ScalarValue>,
}

impl SourceEntry {
    /// The shared reader's watermark: passed on, or held while catching up.
    pub fn shared_watermark(&mut self, wm: ScalarValue) -> Option<crate::time::Watermark> {
        if self.catching_up {
            crate::time::advance(&mut self.held, wm);
            return None;
        }
        self.advance(wm)
    }

    /// The catch-up is over: the held watermark, if it moves this one.
    pub fn caught_up(&mut self) -> Option<crate::time::Watermark> {
        self.catching_up = false;
        self.held.take().and_then(|w| self.advance(w))
    }

    /// Counts the rows of `rows` behind the watermark as late.
    pub fn count_late(&self, rows: &datafusion::arrow::array::RecordBatch) {
        if let (Some(col), Some(wm), Some(t)) = (self.col, &self.watermark, &self.time) {
            if let Ok(late) = crate::time::below(rows.column(col), wm) {
                t.late(late.true_count() as u64);
            }
        }
    }

    /// Advances the watermark to `wm`; the new one if it moved.
    pub fn advance(&mut self, wm: ScalarValue) -> Option<crate::time::Watermark> {
        let col = self.col?;
        if !crate::time::advance(&mut self.watermark, wm.clone()) {
            return None;
        }
        if let Some(t) = &self.time {
            t.set_watermark(&wm);
        }
        Some(crate::time::Watermark { col, value: wm })
    }
}
