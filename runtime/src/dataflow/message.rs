//! What flows along the edges of the dataflow graph: change batches,
//! watermarks and barriers, in one ordered stream per edge.

use freshet_storage::Epoch;

use crate::change::ChangeBatch;
use crate::time::Watermark;

/// The end of an epoch on one edge: everything before it on that edge
/// belongs to `epoch`, everything after it to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Barrier {
    /// The epoch this barrier ends.
    pub epoch: Epoch,
}

/// One item on an edge. An edge's items are delivered in the order they
/// were emitted; a barrier is never overtaken by what follows it.
#[derive(Debug, Clone)]
pub enum Message {
    Chunk(ChangeBatch),
    Watermark(Watermark),
    Barrier(Barrier),
}

impl Message {
    /// The barrier, if this is one.
    pub fn as_barrier(&self) -> Option<&Barrier> {
        match self {
            Message::Barrier(b) => Some(b),
            _ => None,
        }
    }
}
