//! Creating views (planning their operators, backfilling from the tables
//! and views they read) and dropping objects.

use super::*;

impl Worker {
    pub(super) fn create_view(
        &mut self,
        def: ViewDef,
        catalog: Vec<CatalogWrite>,
        fresh: bool,
    ) -> Result<()> {
        if fresh {
            // Commit pending changes so the backfill reads exactly the current state.
            self.barrier(false)?;
        }
        let epoch = Epoch(self.epoch.0 + 1);
        let mut gids = Vec::with_capacity(def.plan.nodes.len());
        let mut scans: Vec<(u64, crate::table::ReadTarget)> = Vec::new();
        let mut constants: Vec<(u64, datafusion::arrow::array::RecordBatch)> = Vec::new();
        let mut sources = Vec::new();
        let append_only = crate::stream_key::append_only(&def.plan);
        for (idx, node) in def.plan.nodes.iter().enumerate() {
            let gid = self.next_node;
            self.next_node += 1;
            gids.push(gid);
            let input_types: Vec<Vec<datafusion::arrow::datatypes::DataType>> = node
                .inputs
                .iter()
                .map(|&i| {
                    def.plan.nodes[i]
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.data_type().clone())
                        .collect()
                })
                .collect();
            let op = build_operator(
                node,
                !node.inputs.is_empty() && node.inputs.iter().all(|&i| append_only[i]),
                &input_types,
                &def.name,
                def.id,
                |slot| def.state_table(slot),
                &self.time,
                &self.sinks,
            );
            // A view scan's one input is the upstream view's root.
            let ports = match node.kind {
                NodeKind::ViewScan { .. } => 1,
                _ => node.inputs.len(),
            };
            self.graph.insert(gid, op, ports);
            for (pos, &input) in node.inputs.iter().enumerate() {
                self.graph.connect(gids[input], gid, pos);
            }
            match &node.kind {
                NodeKind::TableScan { table, .. } => {
                    let t = self
                        .tables
                        .get_mut(table)
                        .ok_or_else(|| RuntimeError::UnknownObject(format!("table {}", table.0)))?;
                    t.subscribers.push(gid);
                    scans.push((
                        gid,
                        crate::table::ReadTarget::Table {
                            id: *table,
                            schema: t.def.schema.clone(),
                            keys: None,
                        },
                    ));
                }
                NodeKind::ViewScan { view, .. } => {
                    let v = self
                        .views
                        .get(view)
                        .ok_or_else(|| RuntimeError::UnknownObject(format!("view {}", view.0)))?;
                    let (root, schema, keyed) = (v.root, v.def.schema(), v.def.keyed());
                    self.graph.connect(root, gid, 0);
                    scans.push((
                        gid,
                        crate::table::ReadTarget::View {
                            id: *view,
                            schema,
                            keyed,
                            keys: None,
                        },
                    ));
                }
                NodeKind::Values { rows } => constants.push((gid, rows.clone())),
                NodeKind::SourceScan { spec, .. } => {
                    if let Some(wd) = spec.watermark {
                        self.source_watermarks.insert(gid, wd.col);
                    }
                    let key = ReaderKey {
                        owner: def.id,
                        slot: idx as u32,
                    };
                    sources.push((key, spec.clone(), gid));
                }
                _ => {}
            }
        }
        for gid in &gids {
            if let Some(n) = self.graph.get_mut(*gid) {
                let mut ctx = EpochCtx {
                    store: &self.store,
                    writes: &mut self.writes,
                    epoch,
                };
                n.op.on_start(&mut ctx, fresh)?;
            }
        }
        let root = *gids
            .last()
            .ok_or_else(|| RuntimeError::Internal("empty plan".into()))?;
        let view_id = def.id;
        self.views.insert(
            def.id,
            ViewRt {
                def,
                nodes: gids,
                root,
            },
        );
        if fresh {
            for (gid, rows) in constants {
                self.emit_chunk(gid, &ChangeBatch::inserts(rows))?;
            }
            for (gid, target) in scans {
                let entries = match &target {
                    crate::table::ReadTarget::Table { id, .. }
                    | crate::table::ReadTarget::View { id, .. } => {
                        self.store.scan_prefix(&table_prefix(*id))?
                    }
                };
                for chunk in entries.chunks(BACKFILL_CHUNK) {
                    let batch = match &target {
                        crate::table::ReadTarget::Table { schema, .. } => {
                            decode_table_values(chunk.iter().map(|(_, v)| v.as_ref()), schema)?
                        }
                        crate::table::ReadTarget::View { schema, keyed, .. } => {
                            decode_view_rows(chunk, schema, *keyed)?
                        }
                    };
                    let cb = ChangeBatch::inserts(batch);
                    self.emit_chunk(gid, &cb)?;
                }
            }
        }
        // Tables' current watermarks reach the new view's scans (after the
        // backfill, so its rows are not late).
        let table_scans: Vec<(u64, TableId)> = self
            .views
            .get(&view_id)
            .map(|v| {
                v.def
                    .plan
                    .nodes
                    .iter()
                    .zip(&v.nodes)
                    .filter_map(|(n, g)| match &n.kind {
                        NodeKind::TableScan { table, .. } => Some((*g, *table)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (gid, table) in table_scans {
            let Some(t) = self.tables.get(&table) else {
                continue;
            };
            if let (Some(wd), Some(wm)) = (t.def.watermark, t.watermark.clone()) {
                self.emit_watermark(
                    gid,
                    Watermark {
                        col: wd.col,
                        value: wm,
                    },
                )?;
            }
        }
        if fresh {
            self.apply_catalog(catalog);
            self.barrier(true)?;
        }
        let name = self
            .views
            .get(&view_id)
            .map(|v| v.def.name.clone())
            .unwrap_or_default();
        for (key, spec, gid) in sources {
            self.start_reader(key, spec, &name, ReaderTarget::Node(gid))?;
        }
        Ok(())
    }

    pub(super) fn drop_object(&mut self, id: TableId, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.readers.retain(|k, r| {
            if k.owner == id {
                r.stop.stop();
                false
            } else {
                true
            }
        });
        self.stats.remove_owner(id);
        self.writes.delete_prefix(&ReaderKey::owner_prefix(id));
        // A table's watermark lives in the metadata keyspace: it must go
        // with the table, or a new object reusing the id would inherit it.
        self.writes.delete(watermark_key(id));
        if let Some(t) = self.tables.remove(&id) {
            self.time.remove(&t.def.name);
            self.writes.delete_prefix(&table_prefix(id));
        } else if let Some(v) = self.views.remove(&id) {
            self.end_subscriptions(id);
            let doomed: HashSet<u64> = v.nodes.iter().copied().collect();
            self.graph.remove(&v.nodes);
            for g in &v.nodes {
                self.source_watermarks.remove(g);
            }
            self.time.remove(&v.def.name);
            self.sinks.remove(id);
            for t in self.tables.values_mut() {
                t.subscribers.retain(|s| !doomed.contains(s));
            }
            self.writes.delete_prefix(&table_prefix(id));
            for slot in 0..v.def.plan.state_slots {
                self.writes
                    .delete_prefix(&table_prefix(v.def.state_table(slot)));
            }
        }
        self.apply_catalog(catalog);
        self.barrier(true)?;
        Ok(())
    }
}
