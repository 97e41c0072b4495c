//! Sinks: a view's changes written out to an external system, epoch by
//! epoch, exactly once.
//!
//! # Design
//!
//! A sink is a dataflow whose root is a [`SinkOperator`] instead of a
//! materialize operator (`CREATE SINK s FROM mv` reads the view through a
//! view scan, so a new sink first emits the view's contents, then its
//! changes). The operator encodes each epoch's changes into records
//! ([`encode`]) and writes them into the sink's *log*, a state table keyed by
//! `epoch | sequence` that commits with the epoch ([`log`]). A delivery
//! thread per sink ([`deliver`]) reads committed log epochs in order, writes
//! each one to the target in one transaction together with the epoch number
//! (the target's progress marker), and then trims the log. After a crash
//! the log still holds every epoch the target may lack; the target's own
//! progress marker says which of them it has, so none is written twice.
//! The protocol and its crash points are in `docs/architecture.md`.

pub mod deliver;
pub mod encode;
pub mod kafka;
pub mod log;
mod operator;
mod options;
pub mod postgres;
mod stats;

pub use operator::SinkOperator;
pub use options::{
    parse_sink, KafkaSinkOptions, PgSinkOptions, SinkConnector, SinkFormat, SinkSpec,
};
pub use stats::{SinkStats, SinkStatsRegistry};
