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
}

/// A reader's end of a fragment's channel.
pub struct FragmentSink {
    pub tx: FragmentTx,
    pub entry: NodeId,
}

impl IngestSink for FragmentSink {
    fn send(&self, msg: Ingest) -> bool {
        self.tx
            .send(FragmentMsg::Source {
                chunk: msg.chunk.map(|c| c.rows),
                input: SourceInput {
                    entry: self.entry,
                    key: msg.key,
                    state: msg.state,
                    watermark: msg.watermark,
                },
            })
            .is_ok()
    }
}

/// A source scan of the fragment: its event-time column and watermark.
#[derive(Default)]
pub struct SourceEntry {
    /// The event-time column, for sources with `WATERMARK FOR`.
    pub col: Option<usize>,
    pub watermark: Option<ScalarValue>,
    pub time: Option<Arc<TimeStats>>,
}

impl SourceEntry {
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
