//! Table reads and DML on the engine thread: constraints, row keys, the
//! change batch a statement pushes through the views.

use super::*;

impl Worker {
    pub(super) fn table(&self, id: TableId) -> Result<&TableRt> {
        self.tables
            .get(&id)
            .ok_or_else(|| RuntimeError::UnknownObject(format!("table {}", id.0)))
    }

    pub(super) fn current_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.pending(key) {
            Some(v) => Ok(v.map(|v| v.to_vec())),
            None => Ok(self.store.get(key)?),
        }
    }

    pub(super) fn read_table_current(
        &self,
        id: TableId,
        keys: Option<&[Vec<u8>]>,
    ) -> Result<RecordBatch> {
        let t = self.table(id)?;
        let entries = match keys {
            Some(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    let key = row_key(id, k);
                    if let Some(v) = self.current_value(&key)? {
                        out.push((key, v));
                    }
                }
                out
            }
            None => {
                let prefix = table_prefix(id);
                let committed = self.store.scan_prefix(&prefix)?;
                merge_pending(committed, &self.writes, &prefix)
            }
        };
        decode_table_with_rowkey(&entries, &t.def)
    }

    /// Conforms a batch to the table schema (casting where types differ).
    pub(super) fn conform(def: &TableDef, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = def.schema.fields().len();
        if batch.num_columns() < n {
            return Err(RuntimeError::Internal(format!(
                "expected {n} columns for table {}",
                def.name
            )));
        }
        let cols = def
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let c = batch.column(i);
                Ok(if c.data_type() != f.data_type() {
                    cast(c, f.data_type())?
                } else {
                    c.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            def.schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    pub(super) fn new_row_keys(&mut self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let mut k = Vec::with_capacity(9);
            encode_datum(&mut k, &ScalarValue::Int64(Some(self.next_row_id)))?;
            self.next_row_id += 1;
            out.push(k);
        }
        self.row_id_dirty = true;
        Ok(out)
    }

    pub(super) fn dml(&mut self, table: TableId, op: DmlOp) -> Result<u64> {
        let def = self.table(table)?.def.clone();
        // 1. Validate and compute every write; nothing is mutated yet.
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        let mut changes: Vec<ChangeBatch> = Vec::new();
        // The row keys of each change's rows (a backfilling view needs them).
        let mut change_keys: Vec<Vec<Vec<u8>>> = Vec::new();
        let need_keys = self.needs_keys(table);
        let mut count = 0u64;
        let (old_keys, new_batches) = match op {
            DmlOp::Insert(b) => (Vec::new(), b),
            DmlOp::Delete(k) => (k, Vec::new()),
            DmlOp::Update { keys, rows } => (keys, rows),
        };
        let is_update = !old_keys.is_empty() && !new_batches.is_empty();
        if def.append_only && !old_keys.is_empty() {
            return Err(RuntimeError::AppendOnly(def.name.clone()));
        }
        // Old rows being removed.
        let mut old_vals = Vec::with_capacity(old_keys.len());
        let mut removed: HashSet<Vec<u8>> = HashSet::new();
        for k in &old_keys {
            if let Some(v) = self.current_value(&row_key(table, k))? {
                old_vals.push(v);
                removed.insert(k.clone());
                deletes.push(row_key(table, k));
            } else {
                old_vals.push(Vec::new());
            }
        }
        if !old_keys.is_empty() {
            let present: Vec<&[u8]> = old_vals
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.as_slice())
                .collect();
            let old = decode_table_values(present, &def.schema)?;
            if !is_update {
                count += old.num_rows() as u64;
            }
            if old.num_rows() > 0 {
                changes.push(ChangeBatch::deletes(old));
                change_keys.push(if need_keys {
                    deletes.clone()
                } else {
                    Vec::new()
                });
            }
        }
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut key_cursor = 0usize;
        for b in &new_batches {
            let b = Self::conform(&def, b)?;
            def.check_not_null(&b)?;
            let keys = match def.pk_keys(&b)? {
                Some(k) => k,
                None if is_update => {
                    let k = old_keys[key_cursor..key_cursor + b.num_rows()].to_vec();
                    key_cursor += b.num_rows();
                    k
                }
                None => self.new_row_keys(b.num_rows())?,
            };
            let vals = encode_values(&b)?;
            let full: Vec<Vec<u8>> = keys.iter().map(|k| row_key(table, k)).collect();
            if def.pk.is_some() {
                // Unique check: within the statement, then against current rows
                // (pending writes first, one batched read for the rest).
                let mut to_read = Vec::new();
                for (k, fk) in keys.iter().zip(&full) {
                    if !seen.insert(k.clone()) {
                        return Err(RuntimeError::UniqueViolation {
                            table: def.name.clone(),
                        });
                    }
                    if removed.contains(k) {
                        continue;
                    }
                    match self.writes.pending(fk) {
                        Some(Some(_)) => {
                            return Err(RuntimeError::UniqueViolation {
                                table: def.name.clone(),
                            })
                        }
                        Some(None) => {}
                        None => to_read.push(fk.clone()),
                    }
                }
                if self.store.multi_get(&to_read)?.iter().any(Option::is_some) {
                    return Err(RuntimeError::UniqueViolation {
                        table: def.name.clone(),
                    });
                }
            }
            if b.num_rows() > 0 {
                change_keys.push(if need_keys { full.clone() } else { Vec::new() });
            }
            puts.extend(full.into_iter().zip(vals));
            count += b.num_rows() as u64;
            if b.num_rows() > 0 {
                changes.push(ChangeBatch::inserts(b));
            }
        }
        // 2. Apply: from here on a failure poisons the engine.
        self.mutate(|w| {
            for k in deletes {
                w.writes.delete(k);
            }
            for (k, v) in puts {
                w.writes.put(k, v);
            }
            for (c, keys) in changes.iter().zip(&change_keys) {
                w.emit_table_change(table, c, keys)?;
            }
            w.table_watermark(table, &changes, None)?;
            Ok(count)
        })
    }
}
