//! [`MultisetTable`]: a multiset of encoded rows grouped by a key prefix.
//!
//! Entry key `table | vnode(group) | group | rest`, value a count
//! ([`freshet_storage::count`]) with an optional `u32` beside it (a sorted
//! row's sort-key length). `group` must be self-delimiting (memcomparable),
//! so one group is exactly one prefix.
//!
//! Changes of the running epoch are summed in `pending`, per group (one
//! hash lookup finds a group's changes, in key order); at the barrier
//! [`MultisetTable::flush`] writes each non-zero delta as a blind count merge
//! and folds it into the cached groups. Lookups see committed state (from
//! the cache, or one prefix scan on a miss) plus `pending`. The cache holds
//! whole groups, committed state only, so evicting one is always safe.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::{HashMap, HashSet};
use freshet_storage::keys::{group_prefix, table_prefix, VNODE_COUNT};
use freshet_storage::{Store, TableId, WriteSet};

use super::budget::{self, CacheStats};
use crate::error::Result;

/// One group's changes in an epoch: rest -> (count delta, extra).
type GroupChanges = BTreeMap<Vec<u8>, (i64, u32)>;

/// One entry of a group: the bytes after the group, its count, its extra.
pub type GroupRow = (Vec<u8>, i64, u32);

pub struct MultisetTable {
    id: TableId,
    with_extra: bool,
    /// The running epoch's changes: group -> rest -> (count delta, extra),
    /// so a group's changes are one hash lookup away.
    pending: HashMap<Vec<u8>, GroupChanges>,
    /// Cached groups with pending changes.
    touched: HashSet<Vec<u8>>,
    cache: Option<GroupCache>,
    pub stats: Arc<CacheStats>,
}

impl MultisetTable {
    /// A table whose groups are not cached (write-mostly state).
    pub fn new(id: TableId, with_extra: bool) -> Self {
        MultisetTable {
            id,
            with_extra,
            pending: HashMap::new(),
            touched: HashSet::new(),
            cache: None,
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// A table that caches the groups it reads.
    pub fn cached(id: TableId, with_extra: bool) -> Self {
        let mut t = Self::new(id, with_extra);
        t.cache = Some(GroupCache::default());
        t
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    /// The key prefix of `group`.
    pub fn prefix(&self, group: &[u8]) -> Vec<u8> {
        group_prefix(self.id, group)
    }

    /// Adds `delta` copies of the entry `rest` of `group`.
    pub fn add(&mut self, group: &[u8], rest: &[u8], delta: i64, extra: u32) {
        if delta == 0 {
            return;
        }
        if let Some(c) = &self.cache {
            if c.map.contains_key(group) && !self.touched.contains(group) {
                self.touched.insert(group.to_vec());
            }
        }
        let g = match self.pending.get_mut(group) {
            Some(g) => g,
            None => self.pending.entry(group.to_vec()).or_default(),
        };
        match g.get_mut(rest) {
            Some(e) => {
                e.0 += delta;
                e.1 = extra;
            }
            None => {
                g.insert(rest.to_vec(), (delta, extra));
            }
        }
    }

    /// Adds `delta` copies of `group`'s entry `rest` straight into the
    /// epoch's write set, for state nobody reads back during the epoch (a
    /// view's rows): the write set sums the deltas per key.
    pub fn add_blind(&self, writes: &mut WriteSet, group: &[u8], rest: &[u8], delta: i64) {
        if delta == 0 {
            return;
        }
        writes.add_count(entry_key(self.id, group, rest), delta, &[]);
    }

    /// This epoch's non-zero changes of `group` as (rest, delta, extra),
    /// in key order.
    fn pending_of<'a>(&'a self, group: &[u8]) -> impl Iterator<Item = (&'a [u8], i64, u32)> + 'a {
        self.pending
            .get(group)
            .into_iter()
            .flat_map(|g| g.iter())
            .filter(|(_, (d, _))| *d != 0)
            .map(|(r, (d, e))| (r.as_slice(), *d, *e))
    }

    /// Committed entries of `group` with a positive count, in key order.
    pub fn committed(&mut self, store: &Store, group: &[u8]) -> Result<Vec<GroupRow>> {
        let mut out = Vec::new();
        self.visit_committed(store, group, |r, n, e| out.push((r.to_vec(), n, e)))?;
        Ok(out)
    }

    /// Calls `f(rest, count, extra)` for each committed entry of `group`
    /// with a positive count, in key order, without copying cached rows.
    pub fn visit_committed(
        &mut self,
        store: &Store,
        group: &[u8],
        mut f: impl FnMut(&[u8], i64, u32),
    ) -> Result<()> {
        if let Some(c) = &mut self.cache {
            if let Some(rows) = c.get(group) {
                self.stats.hit();
                for (r, (n, e)) in rows {
                    f(r, *n, *e);
                }
                return Ok(());
            }
        }
        self.stats.miss();
        let prefix = group_prefix(self.id, group);
        let mut rows: BTreeMap<Vec<u8>, (i64, u32)> = BTreeMap::new();
        store.scan_prefix_while(&prefix, |k, v| {
            let (n, e) = decode_value(v, self.with_extra)?;
            if n > 0 {
                rows.insert(k[prefix.len()..].to_vec(), (n, e));
            }
            Ok(true)
        })?;
        for (r, (n, e)) in &rows {
            f(r, *n, *e);
        }
        if let Some(c) = &mut self.cache {
            c.insert(group.to_vec(), rows);
            // Changes added before the group was cached must reach it too.
            if self.pending.get(group).is_some_and(|g| !g.is_empty()) {
                self.touched.insert(group.to_vec());
            }
        }
        Ok(())
    }

    /// Entries of `group` now (committed plus this epoch's changes) with a
    /// positive count, in key order.
    pub fn current(&mut self, store: &Store, group: &[u8]) -> Result<Vec<GroupRow>> {
        let committed = self.committed(store, group)?;
        let mut pend = self.pending_of(group).peekable();
        if pend.peek().is_none() {
            return Ok(committed);
        }
        // Both lists are in key order: one merge walk.
        let mut out = Vec::with_capacity(committed.len() + 4);
        let mut com = committed.into_iter().peekable();
        loop {
            let ord = match (com.peek(), pend.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(c), Some(p)) => c.0.as_slice().cmp(p.0),
            };
            let (r, n, e) = match ord {
                std::cmp::Ordering::Less => com.next().ok_or_else(gone)?,
                std::cmp::Ordering::Greater => {
                    let (r, d, e) = pend.next().ok_or_else(gone)?;
                    (r.to_vec(), d, e)
                }
                std::cmp::Ordering::Equal => {
                    let (r, n, _) = com.next().ok_or_else(gone)?;
                    let (_, d, e) = pend.next().ok_or_else(gone)?;
                    (r, n + d, e)
                }
            };
            if n > 0 {
                out.push((r, n, e));
            }
        }
        Ok(out)
    }

    /// Writes the epoch's changes as count merges and folds them into the
    /// cached groups.
    pub fn flush(&mut self, writes: &mut WriteSet) {
        if let Some(c) = &mut self.cache {
            for group in self.touched.drain() {
                let Some(rows) = c.get_mut(&group) else {
                    continue;
                };
                let Some(pend) = self.pending.get(&group) else {
                    continue;
                };
                let mut delta_bytes: isize = 0;
                for (rest, (d, e)) in pend {
                    let rest = rest.as_slice();
                    match rows.get_mut(rest) {
                        Some(r) => {
                            r.0 += d;
                            r.1 = *e;
                            if r.0 <= 0 {
                                rows.remove(rest);
                                delta_bytes -= entry_bytes(rest) as isize;
                            }
                        }
                        None if *d > 0 => {
                            rows.insert(rest.to_vec(), (*d, *e));
                            delta_bytes += entry_bytes(rest) as isize;
                        }
                        None => {}
                    }
                }
                c.resize(&group, delta_bytes);
            }
            c.evict_over_budget();
        }
        for (group, rests) in std::mem::take(&mut self.pending) {
            for (rest, (d, e)) in rests {
                if d != 0 {
                    let k = entry_key(self.id, &group, &rest);
                    if self.with_extra {
                        writes.add_count(k, d, &e.to_be_bytes());
                    } else {
                        writes.add_count(k, d, &[]);
                    }
                }
            }
        }
    }

    /// This epoch's changed entries as `group | rest` (without the table
    /// and vnode), in no particular order.
    pub fn pending_entries(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (g, rests) in &self.pending {
            for (r, (d, _)) in rests {
                if *d != 0 {
                    let mut e = Vec::with_capacity(g.len() + r.len());
                    e.extend_from_slice(g);
                    e.extend_from_slice(r);
                    out.push(e);
                }
            }
        }
        out
    }

    /// This epoch's changed entries as (group, rest), in no particular order.
    pub fn pending_rows(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pending.iter().flat_map(|(g, rests)| {
            rests
                .iter()
                .filter(|(_, (d, _))| *d != 0)
                .map(move |(r, _)| (g.as_slice(), r.as_slice()))
        })
    }

    /// How many entries this epoch changed.
    pub fn pending_len(&self) -> usize {
        self.pending
            .values()
            .map(|g| g.values().filter(|(d, _)| *d != 0).count())
            .sum()
    }

    /// Forgets this epoch's change to the entry `rest` of `group`, as if it
    /// had not been made (committed copies stay).
    pub fn discard_pending(&mut self, group: &[u8], rest: &[u8]) {
        if let Some(g) = self.pending.get_mut(group) {
            g.remove(rest);
            if g.is_empty() {
                self.pending.remove(group);
            }
        }
    }

    /// Copies of the entry `rest` of `group`, committed plus this epoch's.
    pub fn count(&self, store: &Store, group: &[u8], rest: &[u8]) -> Result<i64> {
        let key = entry_key(self.id, group, rest);
        let committed = match store.get(&key)? {
            Some(v) => decode_value(&v, self.with_extra)?.0,
            None => 0,
        };
        let pending = self
            .pending
            .get(group)
            .and_then(|g| g.get(rest))
            .map_or(0, |(d, _)| *d);
        Ok(committed + pending)
    }

    /// Calls `f(rest, count, extra)` for the entries of `group` with a
    /// positive count in key order, committed ones merged with this epoch's
    /// changes if `with_pending`, until `f` returns false. Reads the store
    /// (for groups read partly, as top-N reads its first rows).
    pub fn scan_group_while(
        &self,
        store: &Store,
        group: &[u8],
        with_pending: bool,
        mut f: impl FnMut(&[u8], i64, u32) -> bool,
    ) -> Result<()> {
        let prefix = group_prefix(self.id, group);
        let plen = prefix.len();
        let pend: Vec<(&[u8], i64, u32)> = if with_pending {
            self.pending_of(group).collect()
        } else {
            Vec::new()
        };
        let mut pi = 0usize;
        let mut go = true;
        let mut emit = |rest: &[u8], c: i64, e: u32, go: &mut bool| {
            if c > 0 && *go {
                *go = f(rest, c, e);
            }
        };
        store.scan_prefix_while(&prefix, |k, v| {
            let k = &k[plen..];
            while go && pi < pend.len() && pend[pi].0 < k {
                emit(pend[pi].0, pend[pi].1, pend[pi].2, &mut go);
                pi += 1;
            }
            if !go {
                return Ok(false);
            }
            let (mut c, mut e) = decode_value(v, self.with_extra)?;
            if pi < pend.len() && pend[pi].0 == k {
                c += pend[pi].1;
                e = pend[pi].2;
                pi += 1;
            }
            emit(k, c, e, &mut go);
            Ok(go)
        })?;
        while go && pi < pend.len() {
            emit(pend[pi].0, pend[pi].1, pend[pi].2, &mut go);
            pi += 1;
        }
        Ok(())
    }

    /// This epoch's non-zero changes of `group` as (rest, delta, extra), in
    /// key order.
    pub fn pending_group(&self, group: &[u8]) -> Vec<(Vec<u8>, i64, u32)> {
        self.pending_of(group)
            .map(|(r, d, e)| (r.to_vec(), d, e))
            .collect()
    }

    /// Calls `f(rest, count, extra)` for the committed entries of `group`
    /// whose rest sorts below `before`, nearest first, until `f` returns
    /// false.
    pub fn scan_group_rev_before(
        &self,
        store: &Store,
        group: &[u8],
        before: &[u8],
        mut f: impl FnMut(&[u8], i64, u32) -> bool,
    ) -> Result<()> {
        let prefix = group_prefix(self.id, group);
        let bound = entry_key(self.id, group, before);
        store.scan_rev_while(&prefix, &bound, |k, v| {
            let (c, e) = decode_value(v, self.with_extra)?;
            Ok(f(&k[prefix.len()..], c, e))
        })?;
        Ok(())
    }

    /// Calls `f(rest, count, extra)` for the committed entries of `group`
    /// from `from` (inclusive) on, in key order, until `f` returns false.
    pub fn scan_group_from(
        &self,
        store: &Store,
        group: &[u8],
        from: &[u8],
        mut f: impl FnMut(&[u8], i64, u32) -> bool,
    ) -> Result<()> {
        let prefix = group_prefix(self.id, group);
        let start = entry_key(self.id, group, from);
        store.scan_from_while(&prefix, &start, |k, v| {
            let (c, e) = decode_value(v, self.with_extra)?;
            Ok(f(&k[prefix.len()..], c, e))
        })?;
        Ok(())
    }

    /// Calls `f(group_and_rest, count, extra)` for every committed entry of
    /// the table (in vnode order, so groups in no useful order) until `f`
    /// returns false; the operator splits group from rest.
    pub fn scan_all_while(
        &self,
        store: &Store,
        mut f: impl FnMut(&[u8], i64, u32) -> freshet_storage::Result<bool>,
    ) -> Result<()> {
        let prefix = table_prefix(self.id);
        let mut end = prefix.clone();
        end.extend_from_slice(&VNODE_COUNT.to_be_bytes());
        store.scan_below_while(&prefix, &end, |k, v| {
            let (c, e) = decode_value(v, self.with_extra)?;
            let body = k.get(prefix.len() + 2..).unwrap_or(&[]);
            f(body, c, e)
        })?;
        Ok(())
    }

    /// Deletes every copy of the entry `rest` of `group`: committed ones
    /// and this epoch's changes.
    pub fn remove(&mut self, writes: &mut WriteSet, group: &[u8], rest: &[u8]) {
        if let Some(g) = self.pending.get_mut(group) {
            g.remove(rest);
        }
        writes.delete(entry_key(self.id, group, rest));
        self.forget_group(group);
    }

    /// Removes and returns the entries of `group` whose `rest` sorts below
    /// `bound` (committed plus this epoch's changes, positive counts only),
    /// deleting them from the store: rows whose time has passed.
    pub fn take_below(
        &mut self,
        store: &Store,
        writes: &mut WriteSet,
        group: &[u8],
        bound: &[u8],
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let prefix = group_prefix(self.id, group);
        let mut upper = prefix.clone();
        upper.extend_from_slice(bound);
        // rest -> copies
        let mut gone: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        store.scan_below_while(&prefix, &upper, |k, v| {
            gone.insert(
                k[prefix.len()..].to_vec(),
                decode_value(v, self.with_extra)?.0,
            );
            Ok(true)
        })?;
        if let Some(g) = self.pending.get_mut(group) {
            let young = g.split_off(bound);
            for (rest, (d, _)) in std::mem::replace(g, young) {
                *gone.entry(rest).or_insert(0) += d;
            }
        }
        let mut out = Vec::new();
        for (rest, c) in gone {
            writes.delete(entry_key(self.id, group, &rest));
            if c > 0 {
                out.push((rest, c));
            }
        }
        self.forget_group(group);
        Ok(out)
    }

    /// Forgets one cached group (its state stays in the store), e.g. after
    /// deleting some of its entries directly.
    pub fn forget_group(&mut self, group: &[u8]) {
        if let Some(c) = &mut self.cache {
            c.remove(group);
        }
        self.touched.remove(group);
    }

    /// Forgets every cached group (their state stays in the store).
    pub fn clear_cache(&mut self) {
        if let Some(c) = &mut self.cache {
            c.clear();
        }
        self.touched.clear();
    }
}

/// `table | vnode(group) | group | rest`, in one allocation.
fn entry_key(id: TableId, group: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(6 + group.len() + rest.len());
    key.extend_from_slice(&id.0.to_be_bytes());
    key.extend_from_slice(&freshet_storage::keys::vnode_of(group).to_be_bytes());
    key.extend_from_slice(group);
    key.extend_from_slice(rest);
    key
}

/// Decodes a stored count value (with its `u32` extra if `with_extra`).
pub fn decode_value(v: &[u8], with_extra: bool) -> freshet_storage::Result<(i64, u32)> {
    let (n, extra) = freshet_storage::count::decode(v)?;
    if !with_extra {
        return Ok((n, 0));
    }
    let b: [u8; 4] = extra
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| freshet_storage::StorageError::Corrupt("multiset extra".into()))?;
    Ok((n, u32::from_be_bytes(b)))
}

fn gone() -> crate::error::RuntimeError {
    crate::error::RuntimeError::Internal("merge walk ran out of entries".into())
}

fn entry_bytes(rest: &[u8]) -> usize {
    rest.len() + 48
}

/// Whole groups, least recently used evicted first.
#[derive(Default)]
struct GroupCache {
    map: HashMap<Vec<u8>, Cached>,
    /// Last-use stamp -> group.
    lru: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

struct Cached {
    rows: BTreeMap<Vec<u8>, (i64, u32)>,
    stamp: u64,
    bytes: usize,
}

impl GroupCache {
    fn get(&mut self, group: &[u8]) -> Option<&BTreeMap<Vec<u8>, (i64, u32)>> {
        let c = self.map.get_mut(group)?;
        let stamp = budget::tick();
        if let Some(g) = self.lru.remove(&c.stamp) {
            self.lru.insert(stamp, g);
        }
        c.stamp = stamp;
        Some(&c.rows)
    }

    fn get_mut(&mut self, group: &[u8]) -> Option<&mut BTreeMap<Vec<u8>, (i64, u32)>> {
        self.map.get_mut(group).map(|c| &mut c.rows)
    }

    fn insert(&mut self, group: Vec<u8>, rows: BTreeMap<Vec<u8>, (i64, u32)>) {
        let bytes = group.len() + 96 + rows.keys().map(|r| entry_bytes(r)).sum::<usize>();
        let stamp = budget::tick();
        if let Some(old) = self
            .map
            .insert(group.clone(), Cached { rows, stamp, bytes })
        {
            self.lru.remove(&old.stamp);
            self.bytes -= old.bytes;
            budget::release(old.bytes);
        }
        self.lru.insert(stamp, group);
        self.bytes += bytes;
        budget::charge(bytes);
        self.evict_over_budget();
    }

    fn resize(&mut self, group: &[u8], delta: isize) {
        if let Some(c) = self.map.get_mut(group) {
            if delta >= 0 {
                c.bytes += delta as usize;
                self.bytes += delta as usize;
                budget::charge(delta as usize);
            } else {
                let d = (-delta) as usize;
                let d = d.min(c.bytes);
                c.bytes -= d;
                self.bytes -= d.min(self.bytes);
                budget::release(d);
            }
        }
    }

    /// Drops this cache's least recently used groups while the shared
    /// budget is exceeded (keeping the most recent one).
    fn evict_over_budget(&mut self) {
        while budget::over() && self.lru.len() > 1 {
            let Some((_, g)) = self.lru.pop_first() else {
                break;
            };
            if let Some(c) = self.map.remove(&g) {
                self.bytes -= c.bytes.min(self.bytes);
                budget::release(c.bytes);
            }
        }
    }

    fn remove(&mut self, group: &[u8]) {
        if let Some(c) = self.map.remove(group) {
            self.lru.remove(&c.stamp);
            self.bytes -= c.bytes.min(self.bytes);
            budget::release(c.bytes);
        }
    }

    fn clear(&mut self) {
        budget::release(self.bytes);
        self.map.clear();
        self.lru.clear();
        self.bytes = 0;
    }
}

impl Drop for GroupCache {
    fn drop(&mut self) {
        budget::release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_committed_merge() {
        let dir = std::env::temp_dir().join(format!("freshet-ms-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut t = MultisetTable::cached(TableId(3), false);
        t.add(b"g", b"a", 2, 0);
        t.add(b"g", b"b", 1, 0);
        assert_eq!(t.current(&store, b"g").unwrap().len(), 2);
        let mut ws = WriteSet::default();
        t.flush(&mut ws);
        store.commit(ws, freshet_storage::Epoch(1)).unwrap();
        // Cached (empty at first read) and then updated by the flush.
        assert_eq!(
            t.committed(&store, b"g").unwrap(),
            vec![(b"a".to_vec(), 2, 0), (b"b".to_vec(), 1, 0)]
        );
        t.add(b"g", b"a", -2, 0);
        assert_eq!(
            t.current(&store, b"g").unwrap(),
            vec![(b"b".to_vec(), 1, 0)]
        );
        let mut ws = WriteSet::default();
        t.flush(&mut ws);
        store.commit(ws, freshet_storage::Epoch(2)).unwrap();
        t.clear_cache();
        assert_eq!(
            t.committed(&store, b"g").unwrap(),
            vec![(b"b".to_vec(), 1, 0)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scans_removals_and_expiry_merge_pending_with_committed() {
        let dir = std::env::temp_dir().join(format!("freshet-ms-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut t = MultisetTable::new(TableId(5), true);
        for (rest, n) in [(b"b", 1), (b"d", 2), (b"f", 1)] {
            t.add(b"g", rest, n, 7);
        }
        t.add(b"h", b"x", 1, 0);
        let mut ws = WriteSet::default();
        t.flush(&mut ws);
        store.commit(ws, freshet_storage::Epoch(1)).unwrap();
        t.add(b"g", b"a", 1, 1);
        t.add(b"g", b"d", -2, 7);
        t.add(b"g", b"e", 3, 1);
        let scan = |t: &MultisetTable, pending: bool, stop: usize| {
            let mut seen = Vec::new();
            t.scan_group_while(&store, b"g", pending, |r, n, e| {
                seen.push((String::from_utf8_lossy(r).to_string(), n, e));
                seen.len() < stop
            })
            .unwrap();
            seen
        };
        let s = |v: &[(&str, i64, u32)]| {
            v.iter()
                .map(|(a, n, e)| (a.to_string(), *n, *e))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            scan(&t, false, 9),
            s(&[("b", 1, 7), ("d", 2, 7), ("f", 1, 7)])
        );
        assert_eq!(
            scan(&t, true, 9),
            s(&[("a", 1, 1), ("b", 1, 7), ("e", 3, 1), ("f", 1, 7)])
        );
        assert_eq!(
            scan(&t, true, 2),
            s(&[("a", 1, 1), ("b", 1, 7)]),
            "stops early"
        );
        assert_eq!(t.count(&store, b"g", b"d").unwrap(), 0);
        assert_eq!(t.count(&store, b"g", b"e").unwrap(), 3);
        let mut all = Vec::new();
        t.scan_all_while(&store, |body, n, _| {
            all.push((body.to_vec(), n));
            Ok(true)
        })
        .unwrap();
        assert_eq!(all.len(), 4, "committed entries of every group");
        assert_eq!(t.pending_entries().len(), 3);

        let mut ws = WriteSet::default();
        t.remove(&mut ws, b"g", b"e");
        t.remove(&mut ws, b"g", b"f");
        let gone = t.take_below(&store, &mut ws, b"g", b"c").unwrap();
        assert_eq!(gone, vec![(b"a".to_vec(), 1), (b"b".to_vec(), 1)]);
        t.flush(&mut ws);
        store.commit(ws, freshet_storage::Epoch(2)).unwrap();
        assert!(
            scan(&t, true, 9).is_empty(),
            "d netted out, the rest removed"
        );
        let mut ws = WriteSet::default();
        assert!(t.take_below(&store, &mut ws, b"h", b"y").unwrap().len() == 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
