//! Freshet storage: the RocksDB state store, the key layout and the row codec.
//!
//! Everything durable lives in one RocksDB database under the data dir:
//! table rows, materialized view rows, operator state, the catalog and the
//! committed epoch. Writes are buffered per epoch by the caller
//! ([`WriteSet`]) and applied in one atomic `WriteBatch` by [`Store::commit`],
//! so a crash at any point recovers exactly the last committed epoch.
//!
//! This crate owns bytes and their encoding; it knows nothing of operators,
//! plans or SQL. See [`keys`] for the key layout and [`codec`] for how rows
//! become bytes.

pub mod codec;
mod commit;
pub mod count;
pub mod error;
mod fast;
pub mod keys;
pub mod store;

pub use error::{Result, StorageError};
pub use keys::{Epoch, TableId};
pub use store::{Read, Store, StoreOptions, WriteSet};
