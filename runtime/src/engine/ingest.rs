//! Source readers: starting them, and applying the chunks they send to
//! their tables (upserts, watermarks).

use super::*;

impl Worker {
    /// Starts the reader `key`: a table's or a catch-up reader at its
    /// committed split state, a source's shared reader at its hub's.
    pub(super) fn start_reader(
        &mut self,
        key: ReaderKey,
        spec: Arc<SourceSpec>,
        owner: &str,
        target: ReaderTarget,
    ) -> Result<()> {
        if self.recovering {
            self.held_readers
                .push((key, spec, owner.to_string(), target));
            return Ok(());
        }
        let Some(tx) = self.tx.upgrade() else {
            return Err(RuntimeError::EngineStopped);
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let (state, until, sink, stats): (_, _, Box<dyn IngestSink>, _) = match &target {
            ReaderTarget::Table(_) => (
                self.stored_positions(&key.state_prefix())?,
                None,
                Box::new(EngineSink(tx, generation)),
                Arc::new(SourceStats::new(&spec.name, owner)),
            ),
            ReaderTarget::Shared(source) => {
                let Some(h) = self.hubs.get(source) else {
                    return Ok(()); // no view reads the source any more
                };
                let state = h.hub.lock().positions.clone();
                let sink = Box::new(crate::dataflow::HubSink(h.hub.clone()));
                (state, None, sink, h.stats.clone())
            }
            ReaderTarget::CatchUp { view, entries } => {
                let Some(f) = self.fragments.get(view) else {
                    return Ok(()); // a failed view reads nothing
                };
                let sink = Box::new(crate::dataflow::FragmentSink {
                    tx: f.handle.tx.clone(),
                    entries: entries.clone(),
                });
                (
                    self.stored_positions(&key.state_prefix())?,
                    Some(self.stored_positions(&key.until_prefix())?),
                    sink,
                    Arc::new(SourceStats::new(&spec.name, owner)),
                )
            }
        };
        let stop = StopFlag::default();
        self.stats.insert(key, stats.clone());
        if let Some(old) = self.readers.insert(
            key,
            ReaderRt {
                generation,
                target,
                stop: stop.clone(),
                stats: stats.clone(),
            },
        ) {
            old.stop.stop();
        }
        spawn_reader(ReaderCtx {
            key,
            spec,
            state,
            sink,
            stop,
            stats,
            until,
        })
        .map_err(|e| RuntimeError::Internal(format!("cannot start source reader: {e}")))
    }

    /// Applies one chunk of a connector table's reader, and its split
    /// positions, to the running epoch.
    pub(super) fn ingest(&mut self, msg: Ingest, generation: u64) -> Result<()> {
        let Some(r) = self
            .readers
            .get(&msg.key)
            .filter(|r| r.generation == generation)
        else {
            return Ok(()); // a stopped reader (its object was dropped)
        };
        let ReaderTarget::Table(t) = r.target else {
            return Ok(()); // views' readers feed their fragments
        };
        let stats = r.stats.clone();
        if let Some(chunk) = msg.chunk {
            self.apply_table_chunk(t, chunk, &stats, msg.watermark.clone())?;
        } else if let Some(wm) = &msg.watermark {
            self.table_watermark(t, &[], Some(wm.clone()))?;
        }
        for (split, off) in msg.state {
            self.writes
                .put(msg.key.state_key(&split), off.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// Counts the late rows of `changes` against table `table`'s
    /// watermark, then advances it to `external` (a reader's) or to what
    /// the rows imply, and sends it to the table's subscribers.
    pub(super) fn table_watermark(
        &mut self,
        table: TableId,
        changes: &[ChangeBatch],
        external: Option<ScalarValue>,
    ) -> Result<()> {
        let Some(t) = self.tables.get(&table) else {
            return Ok(());
        };
        let Some(wd) = t.def.watermark else {
            return Ok(());
        };
        let mut cur = t.watermark.clone();
        let mut next = cur.clone();
        for c in changes
            .iter()
            .filter(|c| c.weights.values().iter().all(|w| *w > 0))
        {
            let col = c.data.column(wd.col);
            if let (Some(wm), Some(time)) = (&cur, &t.time) {
                time.late(crate::time::below(col, wm)?.true_count() as u64);
            }
            if external.is_none() {
                if let Some(v) = crate::time::watermark_of(&wd, col)? {
                    crate::time::advance(&mut next, v);
                }
            }
        }
        if let Some(e) = external {
            crate::time::advance(&mut next, e);
        }
        let Some(new) = next else {
            return Ok(());
        };
        if !crate::time::advance(&mut cur, new.clone()) {
            return Ok(());
        }
        if let Some(time) = &t.time {
            time.set_watermark(&new);
        }
        let subs = t.subscribers.clone();
        if let Some((raw, _)) = crate::time::timestamp_parts(&new) {
            self.writes
                .put(watermark_key(table), raw.to_be_bytes().to_vec());
        }
        if let Some(t) = self.tables.get_mut(&table) {
            t.watermark = Some(new.clone());
        }
        for s in subs {
            self.emit_watermark(
                s,
                Watermark {
                    col: wd.col,
                    value: new.clone(),
                },
            )?;
        }
        Ok(())
    }

    /// Upserts and deletes rows of a connector table by primary key (or
    /// appends them, for a table without one), then pushes the net change.
    pub(super) fn apply_table_chunk(
        &mut self,
        table: TableId,
        chunk: SourceChunk,
        stats: &SourceStats,
        watermark: Option<ScalarValue>,
    ) -> Result<()> {
        let def = self.table(table)?.def.clone();
        let rows = Self::conform(&def, &chunk.rows)?;
        let n = rows.num_rows();
        let ops = chunk.ops.unwrap_or_else(|| vec![RowOp::Upsert; n]);
        // Rows that break NOT NULL are skipped, not applied (deletes need only the key).
        let mut keep = vec![true; n];
        for &c in &def.not_null {
            let col = rows.column(c);
            let is_key = def.pk.as_ref().is_some_and(|pk| pk.contains(&c));
            if col.null_count() == 0 {
                continue;
            }
            for i in 0..n {
                if keep[i] && col.is_null(i) && (is_key || ops[i] == RowOp::Upsert) {
                    keep[i] = false;
                    stats.skip(
                        -1,
                        -1,
                        format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                            def.schema.field(c).name(),
                            def.name
                        ),
                    );
                }
            }
        }
        let (rows, ops) = if keep.iter().all(|k| *k) {
            (rows, ops)
        } else {
            let mask = datafusion::arrow::array::BooleanArray::from(keep.clone());
            let rows = datafusion::arrow::compute::filter_record_batch(&rows, &mask)?;
            let ops = ops
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(o, _)| o)
                .collect();
            (rows, ops)
        };
        let n = rows.num_rows();
        if n == 0 {
            return self.table_watermark(table, &[], watermark);
        }
        let vals = encode_values(&rows)?;
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        let mut inserts: Vec<u32> = Vec::new();
        // The row keys of the deleted and of the inserted rows (only while
        // a scan of the table backfills).
        let (mut delete_keys, mut insert_keys): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            (Vec::new(), Vec::new());
        let need_keys = self.needs_keys(table);
        match def.pk_keys(&rows)? {
            None => {
                let keys = self.new_row_keys(n)?;
                for (i, (k, v)) in keys.into_iter().zip(vals).enumerate() {
                    let fk = row_key(table, &k);
                    if need_keys {
                        insert_keys.push(fk.clone());
                    }
                    self.writes.put(fk, v);
                    inserts.push(i as u32);
                }
            }
            Some(keys) => {
                // Net effect per key: its value before the chunk and after it.
                let mut last: HashMap<&[u8], Option<usize>> = HashMap::new();
                let mut order: Vec<&[u8]> = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    if last
                        .insert(k.as_slice(), (ops[i] == RowOp::Upsert).then_some(i))
                        .is_none()
                    {
                        order.push(k.as_slice());
                    }
                }
                let full: Vec<Vec<u8>> = order.iter().map(|k| row_key(table, k)).collect();
                let mut before: Vec<Option<Vec<u8>>> = Vec::with_capacity(full.len());
                let mut to_read = Vec::new();
                for fk in &full {
                    match self.writes.pending(fk) {
                        Some(v) => before.push(v.map(|v| v.to_vec())),
                        None => {
                            to_read.push(fk.clone());
                            before.push(None);
                        }
                    }
                }
                let mut read = self.store.multi_get(&to_read)?.into_iter();
                for (fk, b) in full.iter().zip(before.iter_mut()) {
                    if self.writes.pending(fk).is_none() {
                        *b = read.next().flatten();
                    }
                }
                for ((k, fk), old) in order.iter().zip(full).zip(before) {
                    let new = last.get(k).copied().flatten();
                    if let (Some(o), Some(i)) = (&old, new) {
                        if o == &vals[i] {
                            continue;
                        }
                    }
                    if let Some(o) = old {
                        deletes.push(o);
                        if need_keys {
                            delete_keys.push(fk.clone());
                        }
                        if new.is_none() {
                            self.writes.delete(fk.clone());
                        }
                    }
                    if let Some(i) = new {
                        if need_keys {
                            insert_keys.push(fk.clone());
                        }
                        self.writes.put(fk, vals[i].clone());
                        inserts.push(i as u32);
                    }
                }
            }
        }
        let mut changes = Vec::new();
        let mut change_keys = Vec::new();
        if !deletes.is_empty() {
            let old = decode_table_values(deletes.iter().map(|v| v.as_slice()), &def.schema)?;
            changes.push(ChangeBatch::deletes(old));
            change_keys.push(delete_keys);
        }
        if !inserts.is_empty() {
            let idx = datafusion::arrow::array::UInt32Array::from(inserts);
            let cols = rows
                .columns()
                .iter()
                .map(|c| datafusion::arrow::compute::take(c.as_ref(), &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let b = RecordBatch::try_new_with_options(
                def.schema.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(idx.len())),
            )?;
            changes.push(ChangeBatch::inserts(b));
            change_keys.push(insert_keys);
        }
        for (c, keys) in changes.iter().zip(&change_keys) {
            self.emit_table_change(table, c, keys)?;
        }
        self.table_watermark(table, &changes, watermark)
    }
}
