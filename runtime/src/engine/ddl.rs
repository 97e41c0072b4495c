//! Creating views (planning their operators into a fragment, backfilling
//! it from the tables and views it reads) and dropping objects.

use super::fragments::{failed_key, FragmentRt};
use super::*;
use crate::dataflow::{Control, Graph, Remote};

/// A new view's fragment before it runs: its graph, and what the engine
/// feeds it.
struct Built {
    graph: Graph,
    gids: Vec<u64>,
    /// Input ports: the engine's, then one per view scan.
    ports: usize,
    scans: Vec<(u64, crate::table::ReadTarget)>,
    constants: Vec<(u64, datafusion::arrow::array::RecordBatch)>,
    /// Source scans: (source, spec, scan node, slot).
    sources: Vec<(TableId, Arc<SourceSpec>, u64, u32)>,
    /// (upstream view, its root, the view scan here, its port).
    upstream: Vec<(TableId, u64, u64, usize)>,
}

impl Worker {
    /// Starts view `def`. A fresh view over tables answers once its
    /// backfill is done ([`super::backfill`]): then this returns what its
    /// completion needs, and the caller keeps it with the reply.
    pub(super) fn create_view(
        &mut self,
        def: ViewDef,
        catalog: Vec<CatalogWrite>,
        fresh: bool,
    ) -> Result<Option<(Vec<CatalogWrite>, Vec<super::sources::ToStart>)>> {
        // A view that failed stays failed until it is dropped.
        if !fresh {
            if let Some(why) = self.store.get(&failed_key(def.id))? {
                self.failed
                    .insert(def.id, String::from_utf8_lossy(&why).into_owned());
                let root = self.next_node;
                self.next_node += 1;
                self.views.insert(
                    def.id,
                    ViewRt {
                        def,
                        nodes: Vec::new(),
                        root,
                    },
                );
                return Ok(None);
            }
        }
        for n in &def.plan.nodes {
            if let NodeKind::ViewScan { view, name, .. } = &n.kind {
                if let Some(why) = self.failed.get(*view) {
                    return Err(RuntimeError::ViewFailed {
                        view: name.clone(),
                        why,
                    });
                }
            }
        }
        let (view_id, name) = (def.id, def.name.clone());
        if fresh {
            // What a creation of this id that never finished (a crash while
            // it backfilled) left behind goes first, committed before the
            // new fragment reads anything.
            self.writes.delete_prefix(&table_prefix(view_id));
            for slot in 0..def.plan.state_slots {
                self.writes
                    .delete_prefix(&table_prefix(def.state_table(slot)));
            }
            self.writes.delete_prefix(&ReaderKey::owner_prefix(view_id));
            self.writes
                .delete_prefix(&ReaderKey::owner_until_prefix(view_id));
        }
        // Every fragment stops at an epoch boundary (pending changes commit,
        // so a backfill of a view scan reads exactly the current state); the
        // new fragment is wired before any of them goes on.
        let parked = self.barrier_collect(fresh)?;
        let mut catalog = catalog;
        let r = self
            .start_view(def, fresh)
            .and_then(|scans| self.connect_sources(view_id, &name, scans, &mut catalog, fresh));
        self.release(parked);
        let readers = r?;
        if self.backfills.values().any(|b| b.view == view_id) {
            return Ok(Some((catalog, readers)));
        }
        self.complete_view(view_id, catalog, readers, fresh)?;
        Ok(None)
    }

    /// The view's backfill is done: tables' watermarks reach its scans, a
    /// fresh view's catalog entry commits, and its readers start.
    pub(super) fn complete_view(
        &mut self,
        view_id: TableId,
        catalog: Vec<CatalogWrite>,
        readers: Vec<super::sources::ToStart>,
        fresh: bool,
    ) -> Result<()> {
        // After the backfill, so its rows are not late.
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
        for (key, spec, target) in readers {
            self.start_reader(key, spec, &name, target)?;
        }
        Ok(())
    }

    /// Builds, starts and (when `fresh`) backfills the fragment of `def`,
    /// with every fragment parked; returns its scans of sources.
    fn start_view(
        &mut self,
        def: ViewDef,
        fresh: bool,
    ) -> Result<Vec<super::sources::SourceScans>> {
        let epoch = Epoch(self.epoch.0 + 1);
        let mut b = self.build(&def)?;
        b.graph.start(&self.store, epoch, fresh)?;
        let view_id = def.id;
        let root = *b
            .gids
            .last()
            .ok_or_else(|| RuntimeError::Internal("empty plan".into()))?;
        let channel = crate::dataflow::fragment_channel();
        for &(up, up_root, entry, port) in &b.upstream {
            if let Some(f) = self.fragments.get_mut(&up) {
                f.controls.push(Control::ConnectRemote {
                    from: up_root,
                    to: Remote {
                        tx: channel.0.clone(),
                        port,
                        entry,
                        sent: None,
                    },
                });
            }
        }
        for g in &b.gids {
            self.node_fragment.insert(*g, view_id);
        }
        let handle = crate::dataflow::spawn_fragment(
            view_id,
            &def.name,
            std::mem::take(&mut b.graph),
            b.ports,
            self.store.clone(),
            epoch,
            channel,
            self.reports.0.clone(),
            self.wake(),
        )?;
        self.fragments.insert(
            view_id,
            FragmentRt {
                handle,
                controls: Vec::new(),
            },
        );
        self.views.insert(
            view_id,
            ViewRt {
                def,
                nodes: b.gids.clone(),
                root,
            },
        );
        if fresh {
            for (gid, rows) in std::mem::take(&mut b.constants) {
                self.emit_chunk(gid, &ChangeBatch::inserts(rows))?;
            }
            for (gid, target) in std::mem::take(&mut b.scans) {
                if let crate::table::ReadTarget::Table { id, .. } = &target {
                    // Read between the engine's other work.
                    self.backfills.insert(
                        gid,
                        super::backfill::Backfill {
                            view: view_id,
                            table: *id,
                            pos: None,
                            waiting: None,
                            done: false,
                            error: None,
                        },
                    );
                    continue;
                }
                let prefix = match &target {
                    crate::table::ReadTarget::Table { id, .. }
                    | crate::table::ReadTarget::View { id, .. } => table_prefix(*id),
                };
                // A chunk at a time (nothing commits meanwhile: every
                // fragment is parked), so memory holds one chunk.
                let mut from = prefix.clone();
                loop {
                    let mut chunk: Vec<freshet_storage::store::Entry> =
                        Vec::with_capacity(BACKFILL_CHUNK);
                    self.store.scan_from_while(&prefix, &from, |k, v| {
                        if k != from.as_slice() {
                            chunk.push((k.into(), v.into()));
                        }
                        Ok(chunk.len() < BACKFILL_CHUNK)
                    })?;
                    let Some((last, _)) = chunk.last() else {
                        break;
                    };
                    let full = chunk.len() == BACKFILL_CHUNK;
                    from = last.to_vec();
                    let batch = match &target {
                        crate::table::ReadTarget::Table { schema, .. } => {
                            decode_table_values(chunk.iter().map(|(_, v)| v.as_ref()), schema)?
                        }
                        crate::table::ReadTarget::View { schema, keyed, .. } => {
                            decode_view_rows(&chunk, schema, *keyed)?
                        }
                    };
                    self.emit_chunk(gid, &ChangeBatch::inserts(batch))?;
                    if !full {
                        break;
                    }
                }
            }
        }
        // A view's scans of one source share its reader.
        let mut by_source: BTreeMap<TableId, super::sources::SourceScans> = BTreeMap::new();
        for (source, spec, gid, slot) in b.sources {
            let e = by_source
                .entry(source)
                .or_insert_with(|| (source, spec, Vec::new(), slot));
            e.2.push(gid);
            e.3 = e.3.min(slot);
        }
        Ok(by_source.into_values().collect())
    }

    /// The operators of `def` as a graph, and what feeds it.
    fn build(&mut self, def: &ViewDef) -> Result<Built> {
        let mut b = Built {
            graph: Graph::default(),
            gids: Vec::with_capacity(def.plan.nodes.len()),
            ports: 1,
            scans: Vec::new(),
            constants: Vec::new(),
            sources: Vec::new(),
            upstream: Vec::new(),
        };
        let append_only = crate::stream_key::append_only(&def.plan);
        for (idx, node) in def.plan.nodes.iter().enumerate() {
            let gid = self.next_node;
            self.next_node += 1;
            b.gids.push(gid);
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
            // Scans are the graph's entry points: what they read comes
            // through the fragment's channel.
            b.graph.insert(gid, op, node.inputs.len());
            for (pos, &input) in node.inputs.iter().enumerate() {
                b.graph.connect(b.gids[input], gid, pos);
            }
            match &node.kind {
                NodeKind::TableScan { table, .. } => {
                    let t = self
                        .tables
                        .get_mut(table)
                        .ok_or_else(|| RuntimeError::UnknownObject(format!("table {}", table.0)))?;
                    t.subscribers.push(gid);
                    b.scans.push((
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
                    b.upstream.push((*view, root, gid, b.ports));
                    b.ports += 1;
                    b.scans.push((
                        gid,
                        crate::table::ReadTarget::View {
                            id: *view,
                            schema,
                            keyed,
                            keys: None,
                        },
                    ));
                }
                NodeKind::Values { rows } => b.constants.push((gid, rows.clone())),
                NodeKind::SourceScan { source, spec, .. } => {
                    if let Some(wd) = spec.watermark {
                        self.source_watermarks.insert(gid, wd.col);
                    }
                    b.sources.push((*source, spec.clone(), gid, idx as u32));
                }
                _ => {}
            }
        }
        Ok(b)
    }

    pub(super) fn drop_object(&mut self, id: TableId, catalog: Vec<CatalogWrite>) -> Result<()> {
        self.stop_readers(id);
        self.stats.remove_owner(id);
        self.writes.delete_prefix(&ReaderKey::owner_prefix(id));
        self.writes
            .delete_prefix(&ReaderKey::owner_until_prefix(id));
        // A table's watermark lives in the metadata keyspace: it must go
        // with the table, or a new object reusing the id would inherit it.
        self.writes.delete(watermark_key(id));
        if let Some(t) = self.tables.remove(&id) {
            self.time.remove(&t.def.name);
            self.writes.delete_prefix(&table_prefix(id));
        } else if self.views.contains_key(&id) {
            self.end_subscriptions(id);
            self.stop_view(id);
            if let Some(v) = self.views.remove(&id) {
                for g in &v.nodes {
                    self.source_watermarks.remove(g);
                }
                self.time.remove(&v.def.name);
                self.sinks.remove(id);
                self.writes.delete_prefix(&table_prefix(id));
                for slot in 0..v.def.plan.state_slots {
                    self.writes
                        .delete_prefix(&table_prefix(v.def.state_table(slot)));
                }
            }
            self.failed.remove(id);
            self.writes.delete(failed_key(id));
        }
        self.apply_catalog(catalog);
        self.barrier(true)?;
        Ok(())
    }
}
