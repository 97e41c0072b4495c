//! Freshet runtime: incremental operators over change batches and the engine
//! that runs them, epoch by epoch.
//!
//! ```text
//!   DML (INSERT/UPDATE/DELETE)            FLUSH / checkpoint timer
//!            |                                     |
//!            v                                     v
//!   +---- engine thread: tables, DDL, coordinator of epochs ----------+
//!   | table rows (its WriteSet) --chunks--> view fragments            |
//!   | barrier(n) --> every fragment;  reports <-- every fragment      |
//!   | all reported: one atomic RocksDB commit (table rows, operator   |
//!   | state, view rows, offsets, catalog, n), then fragments resume   |
//!   +-----------------------------------------------------------------+
//!   view fragments, a thread each (source readers feed them directly):
//!     ports -> aligner -> TableScan -> Filter -> HashAgg -> Materialize -> other views
//!                                  |
//!                                  v
//!              storage (RocksDB): committed epoch, read by SELECT
//! ```
//!
//! Layering: the runtime depends on `freshet-storage` only. The planner
//! builds [`plan::StreamPlan`]s; the server sends commands to the
//! [`engine::Engine`] handle.
//!
//! Modules: [`change`] (the change batch type), [`plan`] (operator specs),
//! [`operators`] (the operators and their factory), [`table`] (base table
//! layout and committed reads), [`dataflow`] (the graph of operators and the
//! messages, barrier alignment included, that flow along its edges),
//! [`engine`] (the engine thread: commands, epochs and commits).

pub mod change;
pub mod dataflow;
pub mod engine;
pub mod error;
pub mod jsontext;
pub mod numeric;
pub mod operators;
pub mod plan;
pub mod plan_structure;
pub mod sink;
pub mod source;
pub mod state;
pub mod stream_key;
pub mod table;
pub mod time;

pub use change::ChangeBatch;
pub use engine::{DmlOp, Engine, ViewDef};
pub use error::{Result, RuntimeError};
pub use plan::StreamPlan;
pub use table::{ReadTarget, TableDef};
