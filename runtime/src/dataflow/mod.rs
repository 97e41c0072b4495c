//! The dataflow: views' operators as fragments on threads of their own,
//! joined by bounded channels, with barriers flowing in-band.
//!
//! ```text
//!   engine thread (coordinator)           fragment threads, one per view
//!   DML, source chunks, backfill  --->  [ports] aligner -> Graph -> root --+--> downstream
//!   barrier(n) to every fragment  --->   ... end of epoch n: Report ----+  |    fragments
//!   <--- reports (writes | failure)                                   |  |
//!   EpochTracker: all reported? ----> one RocksDB commit -> Resume ---+  |
//! ```
//!
//! - [`Message`]: what flows on an edge (chunk, watermark, barrier).
//! - [`BarrierAligner`]: pure barrier alignment, at a fragment's input
//!   ports and at every multi-input operator inside it.
//! - [`Graph`]: one fragment's operators and their delivery path.
//! - [`fragment`]: the fragment thread (its channel, parking at epoch
//!   boundaries, failure).
//! - [`EpochTracker`]: the pure decision "may epoch n commit".
//! - [`SourceHub`]: a source's one reader, handed on to every view of it.

mod align;
mod commit;
pub mod fragment;
mod graph;
mod hub;
mod message;
mod source_entry;

pub use align::{Alignable, BarrierAligner};
pub use commit::{Decision, EpochTracker, Outcome};
pub use fragment::{
    channel as fragment_channel, set_failing_views, spawn as spawn_fragment, Control,
    FragmentHandle, FragmentMsg, FragmentTx, Report, Wake,
};
pub use graph::{Graph, NodeId, Remote};
pub use hub::{HubSink, HubState, SourceHub};
pub use message::{Barrier, Message};
pub use source_entry::FragmentSink;
