//! Backfilling a new view from the tables it scans, interleaved with the
//! engine's other work: a chunk of a table at a time, between commands, so
//! DML and every other view go on while a view over a big table is built.
//!
//! Each table scan of the new view has a position: the last row key it was
//! sent. It reads the table's *current* rows (committed and this epoch's)
//! after that key, a chunk at a time; a change to the table is sent to it
//! only for rows at or before its position, because the rows after it are
//! read later as they are then. So the view sees every row once, in its
//! latest state, with no snapshot held. Until every scan is done, the
//! view's `CREATE` waits; then its catalog entry commits and it answers.

use std::sync::mpsc::TrySendError;

/// Backfill chunks a view may have queued and not yet taken: few, so a
/// barrier (a FLUSH, a checkpoint) waits for little more than one.
const IN_FLIGHT: usize = 2;

use super::*;
use crate::dataflow::FragmentMsg;

/// One table scan of a new view being backfilled.
pub(super) struct Backfill {
    pub view: TableId,
    pub table: TableId,
    /// The last row key sent (`None`: nothing yet).
    pub pos: Option<Vec<u8>>,
    /// A chunk the view's channel had no room for.
    pub waiting: Option<FragmentMsg>,
    pub done: bool,
    /// Why the view cannot be created after all.
    pub error: Option<String>,
}

/// A view whose `CREATE` waits for its backfill.
pub(super) struct Creating {
    pub catalog: Vec<CatalogWrite>,
    pub readers: Vec<super::sources::ToStart>,
    pub reply: Reply<()>,
}

impl Worker {
    /// Sends a change of table `table` (its rows' keys in `keys`, given
    /// when [`Worker::needs_keys`]) to every view that scans it; a scan
    /// still backfilling gets only the rows at or before its position.
    pub(super) fn emit_table_change(
        &mut self,
        table: TableId,
        batch: &ChangeBatch,
        keys: &[Vec<u8>],
    ) -> Result<()> {
        let subs = self
            .tables
            .get(&table)
            .map(|t| t.subscribers.clone())
            .unwrap_or_default();
        for s in subs {
            match self.backfills.get(&s).filter(|b| !b.done) {
                None => self.emit_chunk(s, batch)?,
                Some(b) => {
                    let mask: datafusion::arrow::array::BooleanArray = keys
                        .iter()
                        .map(|k| Some(b.pos.as_ref().is_some_and(|p| k <= p)))
                        .collect();
                    if mask.true_count() == 0 {
                        continue;
                    }
                    let part = batch.filter(&mask)?;
                    self.emit_chunk(s, &part)?;
                }
            }
        }
        Ok(())
    }

    /// Whether a change of table `table` needs its rows' keys: some scan
    /// of it is backfilling (else [`Worker::emit_table_change`] takes none).
    pub(super) fn needs_keys(&self, table: TableId) -> bool {
        !self.backfills.is_empty()
            && self
                .tables
                .get(&table)
                .is_some_and(|t| t.subscribers.iter().any(|s| self.backfills.contains_key(s)))
    }

    /// Whether some view is being backfilled.
    pub(super) fn backfilling(&self) -> bool {
        !self.backfills.is_empty()
    }

    /// Sends each backfilling scan its next chunk, if its view has room;
    /// finishes the views whose scans are all done. Returns whether any
    /// scan moved.
    pub(super) fn backfill_step(&mut self) -> Result<bool> {
        let mut moved = false;
        let scans: Vec<u64> = self.backfills.keys().copied().collect();
        for gid in scans {
            moved |= self.backfill_scan(gid)?;
        }
        let views: BTreeSet<TableId> = self.backfills.values().map(|b| b.view).collect();
        for view in views {
            let all_done = self
                .backfills
                .values()
                .filter(|b| b.view == view)
                .all(|b| b.done);
            if all_done {
                let error = self
                    .backfills
                    .values()
                    .filter(|b| b.view == view)
                    .find_map(|b| b.error.clone());
                self.backfills.retain(|_, b| b.view != view);
                self.finish_create(view, error)?;
                moved = true;
            }
        }
        Ok(moved)
    }

    fn backfill_scan(&mut self, gid: u64) -> Result<bool> {
        let Some(b) = self.backfills.get_mut(&gid) else {
            return Ok(false);
        };
        if b.done {
            return Ok(false);
        }
        let Some((tx, queued)) = self
            .fragments
            .get(&b.view)
            .map(|f| (f.handle.tx.clone(), f.handle.backfill_queued.clone()))
        else {
            b.done = true; // the view failed
            return Ok(false);
        };
        if queued.load(Ordering::Relaxed) >= IN_FLIGHT {
            return Ok(false);
        }
        if let Some(m) = b.waiting.take() {
            return match tx.try_send(m) {
                Ok(()) => {
                    queued.fetch_add(1, Ordering::Relaxed);
                    Ok(true)
                }
                Err(TrySendError::Full(m)) => {
                    b.waiting = Some(m);
                    Ok(false)
                }
                Err(TrySendError::Disconnected(_)) => {
                    b.done = true;
                    Ok(false)
                }
            };
        }
        let (table, pos) = (b.table, b.pos.clone());
        let Some(t) = self.tables.get(&table) else {
            b.done = true;
            b.error = Some("a table it reads was dropped while it was being created".into());
            return Ok(true);
        };
        let schema = t.def.schema.clone();
        let (entries, last) = self.current_chunk(table, pos.as_deref())?;
        let Some(b) = self.backfills.get_mut(&gid) else {
            return Ok(false);
        };
        match last {
            Some(k) => b.pos = Some(k),
            None => b.done = true,
        }
        if entries.is_empty() {
            return Ok(true);
        }
        let batch = decode_table_values(entries.iter().map(|(_, v)| v.as_slice()), &schema)?;
        let msg = FragmentMsg::Backfill {
            entry: gid,
            batch: ChangeBatch::inserts(batch),
        };
        match tx.try_send(msg) {
            Ok(()) => {
                queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(m)) => b.waiting = Some(m),
            Err(TrySendError::Disconnected(_)) => b.done = true,
        }
        Ok(true)
    }

    /// Up to a chunk of table `table`'s current rows after key `after`,
    /// and the key the next chunk starts after (`None`: the table's end).
    #[allow(clippy::type_complexity)]
    fn current_chunk(
        &self,
        table: TableId,
        after: Option<&[u8]>,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>)> {
        let prefix = table_prefix(table);
        let from = after.map_or_else(|| prefix.clone(), |a| a.to_vec());
        let mut committed: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BACKFILL_CHUNK);
        self.store.scan_from_while(&prefix, &from, |k, v| {
            if after != Some(k) {
                committed.push((k.to_vec(), v.to_vec()));
            }
            Ok(committed.len() < BACKFILL_CHUNK)
        })?;
        let upper = (committed.len() == BACKFILL_CHUNK)
            .then(|| committed.last().map(|(k, _)| k.clone()))
            .flatten();
        // This epoch's writes in the same key range win.
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = committed.into_iter().collect();
        for (k, v) in self.writes.pending_prefix(&prefix) {
            if after.is_some_and(|a| k <= a) || upper.as_deref().is_some_and(|u| k > u) {
                continue;
            }
            match v {
                Some(v) => rows.insert(k.to_vec(), v.to_vec()),
                None => rows.remove(k),
            };
        }
        Ok((rows.into_iter().collect(), upper))
    }

    /// Every scan of `view` is backfilled: its catalog entry commits, its
    /// readers start and its `CREATE` answers.
    fn finish_create(&mut self, view: TableId, error: Option<String>) -> Result<()> {
        let Some(c) = self.creating.remove(&view) else {
            return Ok(());
        };
        let error = error.or_else(|| {
            (!self.fragments.contains_key(&view))
                .then(|| self.failed.get(view).unwrap_or_else(|| "it stopped".into()))
        });
        if let Some(why) = error {
            // It never existed: what it wrote goes when its id is reused.
            let name = self
                .views
                .get(&view)
                .map(|v| v.def.name.clone())
                .unwrap_or_default();
            self.stop_view(view);
            if let Some(v) = self.views.remove(&view) {
                for g in &v.nodes {
                    self.source_watermarks.remove(g);
                }
            }
            self.failed.remove(view);
            let _ = c
                .reply
                .send(Err(RuntimeError::ViewFailed { view: name, why }));
            return Ok(());
        }
        let r = self.complete_view(view, c.catalog, c.readers, true);
        let ok = r.is_ok();
        let _ = c.reply.send(r);
        if ok {
            Ok(())
        } else {
            Err(RuntimeError::Internal(
                "a view could not be completed".into(),
            ))
        }
    }
}
