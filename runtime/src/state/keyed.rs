//! [`KeyedRows`]: rows stored by a key that identifies them (a view's
//! stream key): `table | vnode(key) | memcomparable(key) -> FORMAT_VERSION |
//! memcomparable(row)`, the layout of table rows.
//!
//! A change batch is a sequence of inserts and deletes of whole rows; for one
//! key the epoch's changes net out to a put of the last row inserted, a
//! delete, or nothing. They are written at the barrier without reading the
//! stored row: the stream key guarantees at most one row per key.

use datafusion::arrow::array::ArrayRef;
use datafusion::common::HashMap;
use freshet_storage::codec::{encode_rows, FORMAT_VERSION};
use freshet_storage::keys::row_key;
use freshet_storage::{TableId, WriteSet};

use crate::change::ChangeBatch;
use crate::error::Result;

pub struct KeyedRows {
    id: TableId,
    key: Vec<usize>,
    /// Encoded key -> (net copies this epoch, last row inserted and not
    /// deleted since).
    pending: HashMap<Vec<u8>, (i64, Option<Vec<u8>>)>,
}

impl KeyedRows {
    pub fn new(id: TableId, key: Vec<usize>) -> Self {
        KeyedRows {
            id,
            key,
            pending: HashMap::new(),
        }
    }

    /// Adds a batch of row changes.
    pub fn add(&mut self, batch: &ChangeBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = self
            .key
            .iter()
            .map(|&i| batch.columns()[i].clone())
            .collect();
        let keys = encode_rows(&cols, n)?;
        let rows = encode_rows(batch.columns(), n)?;
        let w = batch.weights.values();
        for ((k, r), &w) in keys.into_iter().zip(rows).zip(w) {
            if w == 0 {
                continue;
            }
            let e = self.pending.entry(k).or_insert((0, None));
            e.0 += w;
            if w > 0 {
                e.1 = Some(r);
            } else if e.1.as_deref() == Some(r.as_slice()) {
                e.1 = None;
            }
        }
        Ok(())
    }

    /// Writes the epoch's net changes: a put per key that ends with a row,
    /// a delete per key that ends without one.
    pub fn flush(&mut self, writes: &mut WriteSet) {
        for (k, (net, last)) in self.pending.drain() {
            let key = row_key(self.id, &k);
            match last {
                Some(r) if net >= 0 => {
                    let mut v = Vec::with_capacity(1 + r.len());
                    v.push(FORMAT_VERSION);
                    v.extend_from_slice(&r);
                    writes.put(key, v);
                }
                // Net zero without a surviving insert: an insert and its
                // delete, or nothing at all.
                None if net == 0 => {}
                _ => writes.delete(key),
            }
        }
    }
}
