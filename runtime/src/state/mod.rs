//! Operator state: the tables stateful operators keep their state in, and
//! the one memory budget their caches share.
//!
//! - [`MultisetTable`]: a multiset of encoded rows grouped by a key prefix
//!   (a view's rows, each side of a join, top-N and OVER partitions, rows
//!   waiting on a temporal filter). Changes are summed per epoch and written
//!   at the barrier as blind count merges (no read before write); groups
//!   read by lookups are cached.
//! - [`KeyedRows`]: rows stored by a stream key (views that have one): a
//!   change is a put or a delete, written at the barrier without a read.
//! - [`ValueTable`]: one value per key, in the operator's own compact
//!   encoding ([`compact`]): an aggregate's accumulators per group. Only
//!   values whose encoding changed are written at the barrier.
//! - [`budget`]: the byte budget (`--state-cache-size`) every operator
//!   cache draws from, with hit and miss counters per table.
//!
//! Keys are `table id | vnode(group) | group | rest` ([`freshet_storage::keys`]);
//! [`layout`] is where every key the runtime writes is laid out,
//! values [`freshet_storage::count`] (multisets), rows, or a
//! [`ValueCodec`]'s versioned compact encoding.

pub mod budget;
pub mod compact;
mod keyed;
pub mod layout;
pub mod multiset;
pub(crate) mod value;

pub use budget::{set_cache_budget, CacheStats};
pub use keyed::KeyedRows;
pub use multiset::{GroupRow, MultisetTable};
pub use value::{Changed, KeyLayout, ValueCodec, ValueTable};
