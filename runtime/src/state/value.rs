//! [`ValueTable`]: one value per key (an aggregate's accumulators per
//! group), cached decoded within the shared state budget.
//!
//! Layout: `table | vnode(key) | key -> value` ([`KeyLayout::Hashed`]), or
//! `table | 0 0 | key -> value` ([`KeyLayout::Ordered`]: every key under one
//! vnode, so the keys below a bound are one range scan, as windows closed by
//! a watermark need). `key` is memcomparable; values are the codec's own
//! compact encoding.
//!
//! An operator reads through [`ValueTable::load`] (one `multi_get` for the
//! keys not cached) and changes values through [`ValueTable::touch`], which
//! takes the codec's snapshot of the value as of the start of the epoch
//! (for an aggregate, the row the group last emitted). At the barrier
//! [`ValueTable::flush`] hands every touched key's snapshot and value to
//! the operator and writes it without reading: a put, or a delete for a
//! value the operator no longer keeps. Clean values are
//! evicted least recently used first while the shared budget is exceeded.

use std::sync::Arc;

use datafusion::common::HashMap;
use freshet_storage::keys::{row_key, table_prefix};
use freshet_storage::{Store, TableId, WriteSet};

use super::budget::{self, CacheStats};
use crate::error::Result;

/// How a table's values are encoded, and what a missing key holds.
pub trait ValueCodec {
    type Value;
    /// What the operator needs of a value as it was when the epoch began
    /// (taken at its first change in the epoch).
    type Snapshot;
    fn snapshot(&self, key: &[u8], v: &Self::Value) -> Result<Self::Snapshot>;
    /// The value of a key that has none yet.
    fn empty(&self) -> Self::Value;
    fn encode(&self, v: &Self::Value, out: &mut Vec<u8>) -> Result<()>;
    fn decode(&self, bytes: &[u8]) -> Result<Self::Value>;
    /// Heap bytes a decoded value holds, for the budget.
    fn heap_bytes(&self, v: &Self::Value) -> usize;
}

/// Where keys live under the table (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    Hashed,
    Ordered,
}

/// A key's value as of the start of the running epoch.
enum Before<S> {
    /// Unchanged this epoch.
    Clean,
    /// The key had no value.
    Absent,
    /// The codec's snapshot of it.
    Was(S),
}

struct Slot<V, S> {
    value: V,
    before: Before<S>,
    /// Bytes charged to the budget.
    bytes: usize,
    /// Budget clock at the last use.
    stamp: u64,
}

/// One touched key at the barrier: the snapshot of its value before the
/// epoch (`None`: it had none) and its value now (`None`: dropped).
pub struct Changed<'a, V, S> {
    pub key: &'a [u8],
    pub before: Option<S>,
    pub after: Option<&'a V>,
}

pub struct ValueTable<C: ValueCodec> {
    id: TableId,
    layout: KeyLayout,
    codec: C,
    map: HashMap<Vec<u8>, Slot<C::Value, C::Snapshot>>,
    /// Keys touched this epoch (each once).
    dirty: Vec<Vec<u8>>,
    /// Every stored key is in `map` (a new table that has evicted nothing):
    /// a key not cached has no value, so it is not read.
    complete: bool,
    bytes: usize,
    pub stats: Arc<CacheStats>,
}

/// Bookkeeping bytes per cached key: the map entry, the key's allocation.
const SLOT_OVERHEAD: usize = 64;

impl<C: ValueCodec> ValueTable<C> {
    pub fn new(id: TableId, layout: KeyLayout, codec: C) -> Self {
        ValueTable {
            id,
            layout,
            codec,
            map: HashMap::new(),
            dirty: Vec::new(),
            complete: true,
            bytes: 0,
            stats: Arc::new(CacheStats::default()),
        }
    }

    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// Declares whether the store may hold keys the cache does not (false
    /// only for a table created empty in this process).
    pub fn set_complete(&mut self, complete: bool) {
        self.complete = complete;
    }

    /// The storage key of `key`.
    pub fn storage_key(&self, key: &[u8]) -> Vec<u8> {
        match self.layout {
            KeyLayout::Hashed => row_key(self.id, key),
            KeyLayout::Ordered => {
                let mut k = ordered_prefix(self.id);
                k.extend_from_slice(key);
                k
            }
        }
    }

    /// Makes the committed values of `keys` available to [`Self::get`] and
    /// [`Self::touch`]: one `multi_get` for those not cached.
    pub fn load(&mut self, store: &Store, keys: &[Vec<u8>]) -> Result<()> {
        let mut missing: Vec<&Vec<u8>> = Vec::new();
        for k in keys {
            if self.map.contains_key(k) {
                self.stats.hit();
            } else {
                missing.push(k);
            }
        }
        if self.complete || missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        for _ in &missing {
            self.stats.miss();
        }
        let full: Vec<Vec<u8>> = missing.iter().map(|k| self.storage_key(k)).collect();
        let stamp = budget::tick();
        for (k, v) in missing.into_iter().zip(store.multi_get(&full)?) {
            if let Some(v) = v {
                let value = self.codec.decode(&v)?;
                self.insert_clean(k.clone(), value, stamp);
            }
        }
        Ok(())
    }

    fn insert_clean(&mut self, key: Vec<u8>, value: C::Value, stamp: u64) {
        let bytes = key.len() + SLOT_OVERHEAD + self.codec.heap_bytes(&value);
        self.charge(bytes);
        self.map.insert(
            key,
            Slot {
                value,
                before: Before::Clean,
                bytes,
                stamp,
            },
        );
    }

    /// The value of a loaded key.
    pub fn get(&self, key: &[u8]) -> Option<&C::Value> {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of a loaded key, to change (the empty value if it has
    /// none). The first touch in an epoch takes its snapshot.
    pub fn touch(&mut self, key: &[u8]) -> Result<&mut C::Value> {
        if !self.map.contains_key(key) {
            let value = self.codec.empty();
            self.map.insert(
                key.to_vec(),
                Slot {
                    value,
                    before: Before::Absent,
                    bytes: 0,
                    stamp: 0,
                },
            );
            self.dirty.push(key.to_vec());
        }
        let Some(slot) = self.map.get_mut(key) else {
            return Err(crate::error::RuntimeError::Internal(
                "state value vanished".into(),
            ));
        };
        if matches!(slot.before, Before::Clean) {
            slot.before = Before::Was(self.codec.snapshot(key, &slot.value)?);
            self.dirty.push(key.to_vec());
        }
        Ok(&mut slot.value)
    }

    /// Ends the epoch: for every touched key, in key order, writes the new
    /// value (or deletes it, when `keep` says it is no longer wanted) and
    /// calls `on_change` (given the codec).
    pub fn flush(
        &mut self,
        writes: &mut WriteSet,
        keep: impl Fn(&C::Value) -> bool,
        mut on_change: impl FnMut(&C, Changed<'_, C::Value, C::Snapshot>) -> Result<()>,
    ) -> Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let stamp = budget::tick();
        let mut cap = 16;
        for key in dirty {
            let full = self.storage_key(&key);
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            let before = std::mem::replace(&mut slot.before, Before::Clean);
            slot.stamp = stamp;
            let kept = keep(&slot.value);
            let before = match before {
                Before::Clean => continue,
                Before::Absent if !kept => {
                    self.drop_slot(&key);
                    continue;
                }
                Before::Absent => None,
                Before::Was(s) => Some(s),
            };
            if kept {
                let mut enc = Vec::with_capacity(cap);
                self.codec.encode(&slot.value, &mut enc)?;
                cap = enc.len();
                writes.put(full, enc);
                on_change(
                    &self.codec,
                    Changed {
                        key: &key,
                        before,
                        after: Some(&slot.value),
                    },
                )?;
                self.resize(&key);
            } else {
                writes.delete(full);
                on_change(
                    &self.codec,
                    Changed {
                        key: &key,
                        before,
                        after: None,
                    },
                )?;
                self.drop_slot(&key);
            }
        }
        Ok(())
    }

    fn resize(&mut self, key: &[u8]) {
        let Some(slot) = self.map.get_mut(key) else {
            return;
        };
        let bytes = key.len() + SLOT_OVERHEAD + self.codec.heap_bytes(&slot.value);
        let old = std::mem::replace(&mut slot.bytes, bytes);
        self.release(old);
        self.charge(bytes);
    }

    fn drop_slot(&mut self, key: &[u8]) {
        if let Some(s) = self.map.remove(key) {
            self.release(s.bytes);
        }
    }

    /// Removes and returns, in key order, every value whose key sorts below
    /// `bound`, cached or stored, deleting them from the store
    /// ([`KeyLayout::Ordered`] only; call after [`Self::flush`]).
    pub fn take_below(
        &mut self,
        store: &Store,
        writes: &mut WriteSet,
        bound: &[u8],
    ) -> Result<Vec<(Vec<u8>, C::Value)>> {
        let mut out: std::collections::BTreeMap<Vec<u8>, Option<C::Value>> = self
            .map
            .keys()
            .filter(|k| k.as_slice() < bound)
            .map(|k| (k.clone(), None))
            .collect();
        let prefix = ordered_prefix(self.id);
        let mut upper = prefix.clone();
        upper.extend_from_slice(bound);
        let mut stored = Vec::new();
        store.scan_below_while(&prefix, &upper, |k, v| {
            let key = &k[prefix.len()..];
            if !out.contains_key(key) {
                stored.push((key.to_vec(), v.to_vec()));
            }
            Ok(true)
        })?;
        for (k, v) in stored {
            // A value this epoch wrote (or deleted) wins over the stored one.
            let v = match writes.pending(&self.storage_key(&k)) {
                Some(Some(p)) => p.to_vec(),
                Some(None) => continue,
                None => v,
            };
            out.insert(k, Some(self.codec.decode(&v)?));
        }
        let mut taken = Vec::with_capacity(out.len());
        for (k, v) in out {
            let v = match v {
                Some(v) => v,
                None => match self.map.remove(&k) {
                    Some(s) => {
                        self.release(s.bytes);
                        s.value
                    }
                    None => continue,
                },
            };
            writes.delete(self.storage_key(&k));
            taken.push((k, v));
        }
        Ok(taken)
    }

    /// Drops the least recently used clean values while the shared budget
    /// is exceeded (they stay in the store). One pass frees at least an
    /// eighth of this table's cache, so its cost is spread over many calls.
    pub fn evict(&mut self) {
        if !budget::over() || self.map.len() <= 1 {
            return;
        }
        let excess = budget::used().saturating_sub(budget::capacity());
        let target = excess.max(self.bytes / 8).min(self.bytes);
        let mut victims: Vec<(u64, &Vec<u8>, usize)> = self
            .map
            .iter()
            .filter(|(_, s)| matches!(s.before, Before::Clean))
            .map(|(k, s)| (s.stamp, k, s.bytes))
            .collect();
        victims.sort_unstable_by_key(|(s, _, _)| *s);
        let mut freed = 0usize;
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        for (_, k, b) in victims {
            if freed >= target {
                break;
            }
            freed += b;
            doomed.push(k.clone());
        }
        if doomed.is_empty() {
            return;
        }
        self.complete = false;
        for k in doomed {
            self.drop_slot(&k);
        }
        if self.map.capacity() > 4 * self.map.len().max(1024) {
            self.map.shrink_to_fit();
        }
    }

    fn charge(&mut self, bytes: usize) {
        self.bytes += bytes;
        budget::charge(bytes);
    }

    fn release(&mut self, bytes: usize) {
        let b = bytes.min(self.bytes);
        self.bytes -= b;
        budget::release(b);
    }
}

impl<C: ValueCodec> Drop for ValueTable<C> {
    fn drop(&mut self) {
        budget::release(self.bytes);
    }
}

/// Prefix of an ordered table's keys (one fixed vnode: key order).
fn ordered_prefix(table: TableId) -> Vec<u8> {
    let mut k = table_prefix(table);
    k.extend_from_slice(&[0, 0]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_storage::Epoch;

    /// A counter per key.
    struct Counter;
    impl ValueCodec for Counter {
        type Value = i64;
        type Snapshot = i64;
        fn snapshot(&self, _: &[u8], v: &i64) -> Result<i64> {
            Ok(*v)
        }
        fn empty(&self) -> i64 {
            0
        }
        fn encode(&self, v: &i64, out: &mut Vec<u8>) -> Result<()> {
            super::super::compact::put_i64(out, *v);
            Ok(())
        }
        fn decode(&self, b: &[u8]) -> Result<i64> {
            Ok(super::super::compact::Reader::new(b).i64()?)
        }
        fn heap_bytes(&self, _: &i64) -> usize {
            0
        }
    }

    fn flush_all(t: &mut ValueTable<Counter>, store: &Store, e: u64) -> Vec<String> {
        let mut ws = WriteSet::default();
        let mut seen = Vec::new();
        t.flush(
            &mut ws,
            |v| *v != 0,
            |_, c| {
                seen.push(format!(
                    "{}:{:?}->{:?}",
                    String::from_utf8_lossy(c.key),
                    c.before,
                    c.after
                ));
                Ok(())
            },
        )
        .unwrap();
        store.commit(ws, Epoch(e)).unwrap();
        seen
    }

    #[test]
    fn changes_flush_read_back_and_evict() {
        let dir = std::env::temp_dir().join(format!("freshet-vt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut t = ValueTable::new(TableId(4), KeyLayout::Ordered, Counter);
        *t.touch(b"b").unwrap() += 2;
        *t.touch(b"a").unwrap() += 1;
        *t.touch(b"c").unwrap() += 1;
        *t.touch(b"c").unwrap() -= 1;
        assert_eq!(
            flush_all(&mut t, &store, 1),
            vec!["a:None->Some(1)", "b:None->Some(2)"],
            "key order; c came and went"
        );
        // Touched: reported with its snapshot, even if unchanged.
        *t.touch(b"a").unwrap() += 0;
        assert_eq!(flush_all(&mut t, &store, 2), vec!["a:Some(1)->Some(1)"]);
        assert!(flush_all(&mut t, &store, 3).is_empty(), "untouched");

        // A table that did not create its state reads it back.
        let mut r = ValueTable::new(TableId(4), KeyLayout::Ordered, Counter);
        r.set_complete(false);
        r.load(&store, &[b"a".to_vec(), b"b".to_vec(), b"z".to_vec()])
            .unwrap();
        assert_eq!(r.get(b"a"), Some(&1));
        assert_eq!(r.get(b"z"), None);
        *r.touch(b"b").unwrap() -= 2;
        assert_eq!(flush_all(&mut r, &store, 4), vec!["b:Some(2)->None"]);
        r.load(&store, &[b"b".to_vec()]).unwrap();
        assert_eq!(r.get(b"b"), None, "deleted from the store");

        let mut ws = WriteSet::default();
        let taken = r.take_below(&store, &mut ws, b"b").unwrap();
        assert_eq!(taken, vec![(b"a".to_vec(), 1)]);
        store.commit(ws, Epoch(5)).unwrap();
        r.load(&store, &[b"a".to_vec()]).unwrap();
        assert_eq!(r.get(b"a"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
