//! The RocksDB-backed store and the per-epoch write set.
//!
//! [`Store`] is cheap to clone and safe to share between threads. The
//! dataflow engine calls it from its own dedicated thread; the server calls it
//! from `spawn_blocking`, so no tokio worker ever blocks on disk.
//!
//! Writes never go straight to RocksDB: they collect in a [`WriteSet`] for the
//! running epoch and reach the database in one atomic `WriteBatch` together
//! with the new committed epoch number ([`Store::commit`]). Readers of
//! committed data take a RocksDB snapshot, so a query spanning several
//! tables sees all of them at one epoch.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, DB};

use crate::commit::{self, Committer};
use crate::error::{Result, StorageError};
use crate::keys::{meta_key, Epoch};

const EPOCH_KEY: &str = "epoch";

/// Handle to the database under the data dir.
#[derive(Clone)]
pub struct Store {
    /// Dropped before `db`: its thread finishes the last commit first.
    committer: Arc<Committer>,
    db: Arc<DB>,
    /// Sync the WAL before a commit returns (`--sync-commit`).
    sync: bool,
}

/// How the store is opened (see `docs/operations.md`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `fsync` the write-ahead log at every commit, so an acknowledged epoch
    /// survives a machine crash, not just a process crash.
    pub sync_commit: bool,
    /// Bytes of RocksDB's block cache (uncompressed data blocks, index and
    /// filter blocks).
    pub block_cache_bytes: usize,
    /// Bytes of one memtable (up to three exist at a time).
    pub write_buffer_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync_commit: true,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

/// A key/value pair read from the store.
pub type Entry = (Box<[u8]>, Box<[u8]>);

impl Store {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// Options for Freshet's workload: many point reads of keys that often
    /// do not exist (new groups, new join rows), so every SST carries a
    /// whole-key bloom filter (10 bits per key, about 1 % false positives)
    /// and index and filter blocks live in the block cache, pinned for L0;
    /// short prefix scans of random keys (one join key, one partition), so
    /// blocks stay small (4 KiB: a miss reads and decompresses one block);
    /// one commit per epoch, so a memtable (64 MiB by
    /// default) holds several epochs before a flush; LZ4 compression. Multiset counts
    /// ([`crate::count`]) are RocksDB merges, summed by the `freshet.count`
    /// merge operator, and a compaction filter drops the entries whose
    /// count reached zero.
    pub fn open_with(path: &Path, o: &StoreOptions) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        opts.set_write_buffer_size(o.write_buffer_bytes);
        opts.set_max_write_buffer_number(3);
        opts.set_level_compaction_dynamic_level_bytes(true);
        let mut table = rocksdb::BlockBasedOptions::default();
        let cache = rocksdb::Cache::new_lru_cache(o.block_cache_bytes);
        table.set_block_cache(&cache);
        table.set_block_size(4 << 10);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_format_version(5);
        opts.set_block_based_table_factory(&table);
        opts.set_merge_operator_associative("freshet.count", crate::count::merge);
        opts.set_compaction_filter("freshet.zero-counts", crate::count::compaction_filter);
        let db = Arc::new(DB::open(&opts, path)?);
        Ok(Store {
            committer: Arc::new(Committer::start(db.clone())?),
            db,
            sync: o.sync_commit,
        })
    }

    /// The last committed epoch (0 on a new database).
    pub fn committed_epoch(&self) -> Result<Epoch> {
        self.committer.wait();
        match self.db.get(meta_key(EPOCH_KEY))? {
            None => Ok(Epoch(0)),
            Some(v) => {
                let b: [u8; 8] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("epoch value".into()))?;
                Ok(Epoch(u64::from_be_bytes(b)))
            }
        }
    }

    /// Point read of committed data.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.committer.wait();
        Ok(self.db.get(key)?)
    }

    /// Batched point reads of committed data.
    pub fn multi_get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.committer.wait();
        self.db
            .multi_get(keys)
            .into_iter()
            .map(|r| r.map_err(StorageError::from))
            .collect()
    }

    /// Every committed entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>> {
        self.committer.wait();
        let mut out = Vec::new();
        for item in self.db.iterator_opt(
            IteratorMode::From(prefix, Direction::Forward),
            bounded(prefix, None),
        ) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// Visits committed entries under `prefix` in key order until `f`
    /// returns false (for reads that need only the first few).
    pub fn scan_prefix_while(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.committer.wait();
        for item in self.db.iterator_opt(
            IteratorMode::From(prefix, Direction::Forward),
            bounded(prefix, None),
        ) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Visits committed entries under `prefix` from `from` (inclusive) in
    /// key order until `f` returns false.
    pub fn scan_from_while(
        &self,
        prefix: &[u8],
        from: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.committer.wait();
        let start = if from > prefix { from } else { prefix };
        for item in self.db.iterator_opt(
            IteratorMode::From(start, Direction::Forward),
            bounded(prefix, None),
        ) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Visits committed entries under `prefix` before `before` (exclusive)
    /// in reverse key order until `f` returns false.
    pub fn scan_rev_while(
        &self,
        prefix: &[u8],
        before: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.committer.wait();
        for item in self.db.iterator_opt(
            IteratorMode::From(before, Direction::Reverse),
            bounded(prefix, Some(before)),
        ) {
            let (k, v) = item?;
            if k.as_ref() >= before {
                continue;
            }
            if !k.starts_with(prefix) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Reads committed entries under `prefix` that are below `before`
    /// (exclusive), in key order, until `f` returns false.
    pub fn scan_below_while(
        &self,
        prefix: &[u8],
        before: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.committer.wait();
        for item in self.db.iterator_opt(
            IteratorMode::From(prefix, Direction::Forward),
            bounded(prefix, Some(before)),
        ) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Performs several reads (whole prefixes or point lookups) from one
    /// consistent snapshot.
    pub fn snapshot_read(&self, reads: &[Read]) -> Result<Vec<Vec<Entry>>> {
        self.committer.wait();
        let snap = self.db.snapshot();
        let mut all = Vec::with_capacity(reads.len());
        for read in reads {
            let prefix = match read {
                Read::Prefix(p) => p,
                Read::Keys(keys) => {
                    let mut out = Vec::new();
                    for k in keys {
                        if let Some(v) = snap.get(k)? {
                            out.push((k.clone().into_boxed_slice(), v.into_boxed_slice()));
                        }
                    }
                    all.push(out);
                    continue;
                }
            };
            let mut ro = bounded(prefix, None);
            ro.set_snapshot(&snap);
            let mut out = Vec::new();
            for item in self
                .db
                .iterator_opt(IteratorMode::From(prefix, Direction::Forward), ro)
            {
                let (k, v) = item?;
                if !k.starts_with(prefix) {
                    break;
                }
                out.push((k, v));
            }
            all.push(out);
        }
        Ok(all)
    }

    /// Atomically applies `writes` and records `epoch` as committed; the
    /// epoch is in the database (and, with `sync_commit`, on disk) when
    /// this returns.
    pub fn commit(&self, writes: WriteSet, epoch: Epoch) -> Result<()> {
        self.committer.settle()?;
        commit::write(&self.db, build_batch(writes, epoch), self.sync)
    }

    /// Deletes the keys in `[from, to)` at once, outside any epoch: for a
    /// log whose entries another thread consumed (a sink's delivered
    /// epochs), where losing the delete in a crash only means reading them
    /// again.
    pub fn trim_range(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range(from, to);
        commit::write(&self.db, batch, false)
    }

    /// Like [`Self::commit`], but the write runs on the committer thread:
    /// this returns at once. Reads wait for it; a failure is returned by
    /// the next commit.
    pub fn commit_async(&self, writes: WriteSet, epoch: Epoch) -> Result<()> {
        self.committer.submit(writes, epoch, self.sync)
    }
}

/// One atomic batch: `writes` and `epoch` as the committed epoch.
///
/// Everything goes in one ascending key order: the memtable's skip list
/// inserts a sorted run cheaply (each insert starts where the last ended);
/// random order costs a full search per key. Puts and merges never share a
/// key.
pub(crate) fn build_batch(writes: WriteSet, epoch: Epoch) -> WriteBatch {
    // Sized up front: growing the batch's buffer copies it each time.
    let mut batch = WriteBatch::with_capacity_bytes(writes.bytes_estimate());
    for (from, to) in &writes.range_deletes {
        batch.delete_range(from, to);
    }
    let mut merges: Vec<CountMerge> = Vec::with_capacity(writes.merges.len());
    merges.extend(writes.merges.into_iter().filter(|(_, (d, _))| *d != 0));
    let mut puts: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(writes.puts.len());
    puts.extend(writes.puts);
    let merge_order = sorted_order(&merges, |m| &m.0);
    let put_order = sorted_order(&puts, |p| &p.0);
    let mut value = Vec::new();
    let mut merge_value = |batch: &mut WriteBatch, m: &CountMerge| {
        value.clear();
        crate::count::encode_into(&mut value, m.1 .0, &m.1 .1);
        batch.merge(&m.0, &value);
    };
    let mut mi = merge_order.iter().map(|&i| &merges[i as usize]).peekable();
    for &i in &put_order {
        let (k, v) = &puts[i as usize];
        while let Some(m) = mi.next_if(|m| m.0.as_slice() < k.as_slice()) {
            merge_value(&mut batch, m);
        }
        match v {
            Some(v) => batch.put(k, v),
            None => batch.delete(k),
        }
    }
    for m in mi {
        merge_value(&mut batch, m);
    }
    batch.put(meta_key(EPOCH_KEY), epoch.0.to_be_bytes());
    batch
}

/// The indexes of `items` in ascending order of their keys. Sorts (first
/// eight key bytes, index) pairs, comparing whole keys only on a tie: a
/// fraction of the memory traffic and comparisons of sorting the items.
fn sorted_order<T>(items: &[T], key: impl Fn(&T) -> &Vec<u8>) -> Vec<u32> {
    let head = |k: &[u8]| {
        let mut b = [0u8; 8];
        let n = k.len().min(8);
        b[..n].copy_from_slice(&k[..n]);
        u64::from_be_bytes(b)
    };
    let mut order: Vec<(u64, u32)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (head(key(t)), i as u32))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(&items[a.1 as usize]).cmp(key(&items[b.1 as usize])))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

/// A pending count merge: key, (delta, extra).
type CountMerge = (Vec<u8>, (i64, Vec<u8>));

/// One read of [`Store::snapshot_read`].
#[derive(Debug, Clone)]
pub enum Read {
    /// Every entry under a prefix.
    Prefix(Vec<u8>),
    /// The entries of these full keys (missing keys are skipped).
    Keys(Vec<Vec<u8>>),
}

/// Writes buffered for the running epoch: an ordered overlay over the store.
#[derive(Default, Debug)]
pub struct WriteSet {
    /// Key -> value (`None`: deleted). A hash map: most writes are never
    /// read back in their epoch; the commit sorts them once.
    puts: datafusion::common::HashMap<Vec<u8>, Option<Vec<u8>>>,
    range_deletes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Count deltas of multiset entries ([`crate::count`]), summed per key
    /// and applied as RocksDB merges after the puts: written blind, never
    /// read first. A key is in at most one of `puts` and `merges`.
    merges: datafusion::common::HashMap<Vec<u8>, (i64, Vec<u8>)>,
    /// About the bytes written so far (keys, values, per-entry overhead;
    /// overwrites counted again): what [`Self::approx_bytes`] reports.
    bytes: usize,
}

/// Bytes counted per write beyond its key and value (map slot, allocations).
const ENTRY_OVERHEAD: usize = 64;

impl WriteSet {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len() + ENTRY_OVERHEAD;
        if !self.merges.is_empty() {
            self.merges.remove(&key);
        }
        self.puts.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.bytes += key.len() + ENTRY_OVERHEAD;
        if !self.merges.is_empty() {
            self.merges.remove(&key);
        }
        self.puts.insert(key, None);
    }

    /// Adds `delta` to the multiset count under `key` (see
    /// [`crate::count`]), without reading it. `extra` is kept with the
    /// count (the latest write wins).
    pub fn add_count(&mut self, key: Vec<u8>, delta: i64, extra: &[u8]) {
        if delta == 0 {
            return;
        }
        self.bytes += key.len() + extra.len() + ENTRY_OVERHEAD;
        self.fold_count(key, delta, extra);
    }

    /// Adds a count delta: into the value when the key was written outright
    /// this epoch, else into its merge (`extra`: the latest wins).
    fn fold_count(&mut self, key: Vec<u8>, delta: i64, extra: &[u8]) {
        if let Some(p) = self.puts.get_mut(&key) {
            let before = p
                .as_deref()
                .and_then(|v| crate::count::decode(v).ok())
                .map_or(0, |(c, _)| c);
            *p = Some(crate::count::encode(before + delta, extra));
            return;
        }
        let e = self.merges.entry(key).or_insert((0, Vec::new()));
        e.0 += delta;
        if e.1 != extra {
            e.1 = extra.to_vec();
        }
    }

    /// The pending value for `key`: `None` if untouched this epoch,
    /// `Some(None)` if deleted, `Some(Some(v))` if written.
    pub fn pending(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.puts.get(key).map(|v| v.as_deref())
    }

    /// Pending writes under `prefix`, in key order.
    pub fn pending_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
        let mut hits: Vec<(&'a [u8], Option<&'a [u8]>)> = self
            .puts
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        hits.into_iter()
    }

    /// Deletes every key starting with `prefix` (pending and committed).
    pub fn delete_prefix(&mut self, prefix: &[u8]) {
        self.puts.retain(|k, _| !k.starts_with(prefix));
        self.merges.retain(|k, _| !k.starts_with(prefix));
        let mut end = prefix.to_vec();
        // The smallest key greater than every key with this prefix.
        while let Some(last) = end.pop() {
            if last < 0xFF {
                end.push(last + 1);
                break;
            }
        }
        self.range_deletes.push((prefix.to_vec(), end));
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.range_deletes.is_empty() && self.merges.is_empty()
    }

    /// About the bytes these writes take in a RocksDB write batch.
    fn bytes_estimate(&self) -> usize {
        let puts: usize = self
            .puts
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 8)
            .sum();
        let merges: usize = self.merges.keys().map(|k| k.len() + 9 + 8 + 4).sum();
        puts + merges + 64
    }

    pub fn len(&self) -> usize {
        self.puts.len() + self.merges.len()
    }

    /// About the memory these writes hold, counted as they are made (an
    /// upper bound: overwrites of one key count again).
    pub fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `later`'s writes, as if they were made after this set's: its
    /// range deletes drop what this set wrote in their ranges, its puts
    /// replace, its count deltas add up.
    pub fn absorb(&mut self, later: WriteSet) {
        if self.is_empty() {
            *self = later;
            return;
        }
        for (from, to) in later.range_deletes {
            let inside =
                |k: &Vec<u8>| k.as_slice() >= from.as_slice() && k.as_slice() < to.as_slice();
            self.puts.retain(|k, _| !inside(k));
            self.merges.retain(|k, _| !inside(k));
            self.range_deletes.push((from, to));
        }
        for (k, v) in later.puts {
            if !self.merges.is_empty() {
                self.merges.remove(&k);
            }
            self.puts.insert(k, v);
        }
        for (k, (delta, extra)) in later.merges {
            self.fold_count(k, delta, &extra);
        }
        self.bytes += later.bytes;
    }
}

/// Merges committed entries with pending writes: the current state of a prefix.
/// Read options that keep an iterator within `prefix` (and below `upper`,
/// if given), so RocksDB never walks past the range, e.g. over the
/// tombstones of rows deleted after it.
fn bounded(prefix: &[u8], upper: Option<&[u8]>) -> rocksdb::ReadOptions {
    let mut o = rocksdb::ReadOptions::default();
    if !prefix.is_empty() {
        o.set_iterate_lower_bound(prefix.to_vec());
    }
    match (upper, prefix_end(prefix)) {
        (Some(u), Some(e)) => {
            o.set_iterate_upper_bound(if u < e.as_slice() { u.to_vec() } else { e })
        }
        (Some(u), None) => o.set_iterate_upper_bound(u.to_vec()),
        (None, Some(e)) => o.set_iterate_upper_bound(e),
        (None, None) => {}
    }
    o
}

/// The first key after every key starting with `prefix` (`None` if there
/// is none: the prefix is all `0xFF`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xFF {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

pub fn merge_pending(
    committed: Vec<Entry>,
    writes: &WriteSet,
    prefix: &[u8],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = committed
        .into_iter()
        .map(|(k, v)| (k.into_vec(), v.into_vec()))
        .collect();
    for (k, v) in writes.pending_prefix(prefix) {
        match v {
            Some(v) => {
                map.insert(k.to_vec(), v.to_vec());
            }
            None => {
                map.remove(k);
            }
        }
    }
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{row_key, table_prefix, TableId};

    #[test]
    fn commit_is_atomic_and_visible() {
        let dir = std::env::temp_dir().join(format!("freshet-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.committed_epoch().unwrap(), Epoch(0));
        let mut ws = WriteSet::default();
        ws.put(row_key(TableId(5), b"a"), b"1".to_vec());
        ws.put(row_key(TableId(5), b"b"), b"2".to_vec());
        ws.put(row_key(TableId(6), b"a"), b"3".to_vec());
        assert!(store
            .scan_prefix(&table_prefix(TableId(5)))
            .unwrap()
            .is_empty());
        store.commit(ws, Epoch(1)).unwrap();
        assert_eq!(
            store.scan_prefix(&table_prefix(TableId(5))).unwrap().len(),
            2
        );
        let mut ws = WriteSet::default();
        ws.delete_prefix(&table_prefix(TableId(5)));
        store.commit(ws, Epoch(2)).unwrap();
        assert!(store
            .scan_prefix(&table_prefix(TableId(5)))
            .unwrap()
            .is_empty());
        assert_eq!(
            store.scan_prefix(&table_prefix(TableId(6))).unwrap().len(),
            1
        );
        assert_eq!(store.committed_epoch().unwrap(), Epoch(2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn absorbed_writes_apply_as_if_made_later() {
        let k = |t: u32, s: &[u8]| row_key(TableId(t), s);
        let mut a = WriteSet::default();
        a.put(k(1, b"x"), b"a".to_vec());
        a.put(k(2, b"y"), b"a".to_vec());
        a.add_count(k(3, b"c"), 2, b"");
        let mut b = WriteSet::default();
        b.delete_prefix(&table_prefix(TableId(2)));
        b.put(k(1, b"x"), b"b".to_vec());
        b.add_count(k(3, b"c"), 3, b"e");
        b.add_count(k(4, b"d"), 1, b"");
        let bytes = a.approx_bytes() + b.approx_bytes();
        a.absorb(b);
        assert_eq!(a.pending(&k(1, b"x")), Some(Some(&b"b"[..])));
        assert_eq!(
            a.pending(&k(2, b"y")),
            None,
            "dropped by the later range delete"
        );
        assert_eq!(a.merges.get(&k(3, b"c")), Some(&(5, b"e".to_vec())));
        assert_eq!(a.merges.get(&k(4, b"d")), Some(&(1, Vec::new())));
        assert_eq!(a.range_deletes.len(), 1);
        assert_eq!(a.approx_bytes(), bytes);
        let mut empty = WriteSet::default();
        empty.absorb(a);
        assert_eq!(empty.len(), 3);
    }

    #[test]
    fn background_commit_is_seen_by_every_read_and_outlives_the_handle() {
        let dir = std::env::temp_dir().join(format!("freshet-store-async-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            let reader = store.clone();
            for e in 1..=50u64 {
                let mut ws = WriteSet::default();
                ws.put(
                    row_key(TableId(5), &e.to_be_bytes()),
                    e.to_be_bytes().to_vec(),
                );
                ws.add_count(row_key(TableId(6), b"n"), 1, &[]);
                store.commit_async(ws, Epoch(e)).unwrap();
                // Any handle's read waits for the epoch just handed over.
                assert_eq!(reader.committed_epoch().unwrap(), Epoch(e));
                let n = reader.get(&row_key(TableId(6), b"n")).unwrap().unwrap();
                assert_eq!(crate::count::decode(&n).unwrap().0, e as i64);
            }
            let mut ws = WriteSet::default();
            ws.put(row_key(TableId(5), b"last"), b"x".to_vec());
            store.commit_async(ws, Epoch(51)).unwrap();
            drop(reader);
        }
        // Dropping the last handle finished the commit and closed the database.
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.committed_epoch().unwrap(), Epoch(51));
        assert_eq!(
            store.scan_prefix(&table_prefix(TableId(5))).unwrap().len(),
            51
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
