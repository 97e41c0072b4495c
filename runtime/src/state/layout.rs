//! Where everything the runtime stores lives: the one place that lays out
//! keys. Relations and operator state are `table id | ...`
//! ([`freshet_storage::keys`]); the rest is metadata (`meta/...`): reader
//! positions, watermarks, failed views, the row id counter.

use freshet_storage::keys::{meta_key, row_key, table_prefix};
use freshet_storage::TableId;

/// Every key of table (relation or state table) `table`.
pub fn relation(table: TableId) -> Vec<u8> {
    table_prefix(table)
}

/// A base table's row under its encoded primary key (or hidden row id).
pub fn table_row(table: TableId, pk: &[u8]) -> Vec<u8> {
    row_key(table, pk)
}

/// A reader's split positions: `meta/src/<owner>/<slot>/<split>`. The
/// owner is a connector table, a source (its shared reader, slot 0), or a
/// view (its catch-up reader, at the slot of its first scan of the source).
pub fn reader_positions(owner: TableId, slot: u32) -> Vec<u8> {
    meta_key(&format!("src/{}/{}/", owner.0, slot))
}

/// The positions of every reader of `owner`.
pub fn reader_positions_of(owner: TableId) -> Vec<u8> {
    meta_key(&format!("src/{}/", owner.0))
}

/// A catch-up reader's end positions: `meta/until/<view>/<slot>/<split>`.
pub fn catch_up_ends(view: TableId, slot: u32) -> Vec<u8> {
    meta_key(&format!("until/{}/{}/", view.0, slot))
}

/// The end positions of every catch-up reader of `view`.
pub fn catch_up_ends_of(view: TableId) -> Vec<u8> {
    meta_key(&format!("until/{}/", view.0))
}

/// `prefix` followed by a split's name.
pub fn split(prefix: Vec<u8>, split: &str) -> Vec<u8> {
    let mut k = prefix;
    k.extend_from_slice(split.as_bytes());
    k
}

/// A table's persisted watermark.
pub fn table_watermark(table: TableId) -> Vec<u8> {
    meta_key(&format!("wm/{}", table.0))
}

/// A failed view's error (kept across restarts).
pub fn failed_view(view: TableId) -> Vec<u8> {
    meta_key(&format!("failed/{}", view.0))
}

/// The next hidden row id of tables without a primary key.
pub fn next_row_id() -> Vec<u8> {
    meta_key("next_row_id")
}

/// Where an operator keeps its watermark in its state table: vnode
/// `0xFFFF`, which no keyed entry uses (vnodes are below 256).
pub fn operator_watermark(table: TableId) -> Vec<u8> {
    let mut k = table_prefix(table);
    k.extend_from_slice(&[0xFF, 0xFF]);
    k
}

/// A sink log's entries of one epoch: `table | epoch` (big-endian, so a
/// scan returns epochs in order).
pub fn sink_log_epoch(table: TableId, epoch: u64) -> Vec<u8> {
    let mut k = table_prefix(table);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// One sink log entry: `table | epoch | sequence`.
pub fn sink_log_entry(table: TableId, epoch: u64, seq: u32) -> Vec<u8> {
    let mut k = sink_log_epoch(table, epoch);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
