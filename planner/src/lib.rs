//! Freshet planner: binds SQL to DataFusion logical plans and turns the plan
//! of a materialized view into a streaming plan of incremental operators.
//!
//! Planning is a pure function of the statement and the catalog snapshot it
//! is given ([`relation::Relation`]s registered in a DataFusion
//! `SessionContext`): it reads no data and has no side effects. The steps:
//!
//! ```text
//! SQL --sqlparser--> Statement --DataFusion SqlToRel--> LogicalPlan
//!     --analyzer + optimizer--> LogicalPlan --stream::plan_view--> StreamPlan
//! ```
//!
//! Anything the incremental engine cannot maintain is refused here with
//! [`PlanError::NotSupported`] (SQLSTATE 0A000) naming the construct, never
//! accepted and computed wrongly.

pub mod error;
pub mod pg;
pub mod relation;
pub mod session;
pub mod sqlfunc;
pub mod stream;
pub mod to_char;
pub mod to_timestamp;
pub mod tvf;

pub use error::{PlanError, Result};
pub use relation::{QueryData, RelKind, Relation, RelationProvider};
pub use stream::plan_view;
