//! Sources in the engine: one shared reader per source (its hub) feeding
//! every view that reads it, the positions each epoch commits for it, and
//! the catch-up reader of a view that joins a source already being read.

use super::*;
use crate::dataflow::{Control, FragmentMsg, SourceHub};

/// A source being read.
pub(super) struct HubRt {
    pub hub: Arc<SourceHub>,
    pub stats: Arc<SourceStats>,
    /// The positions as last written into an epoch.
    pub written: SplitState,
}

/// A view's scans of one source: the source, its spec, the scan nodes and
/// the lowest scan slot (which names the view's catch-up reader).
pub(super) type SourceScans = (TableId, Arc<SourceSpec>, Vec<u64>, u32);

/// A reader to start once the view is committed.
pub(super) type ToStart = (ReaderKey, Arc<SourceSpec>, ReaderTarget);

/// The shared reader's key of source `source`: its positions live there.
fn shared_key(source: TableId) -> ReaderKey {
    ReaderKey {
        owner: source,
        slot: 0,
    }
}

/// Decodes the split positions stored under `prefix` in `entries`.
fn positions<'a>(prefix: &[u8], entries: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> SplitState {
    let mut state = SplitState::new();
    for (k, v) in entries {
        if let (Some(split), Ok(b)) = (k.strip_prefix(prefix), <[u8; 8]>::try_from(v)) {
            state.insert(
                String::from_utf8_lossy(split).into_owned(),
                i64::from_be_bytes(b),
            );
        }
    }
    state
}

impl Worker {
    /// The split positions committed under `prefix`.
    pub(super) fn stored_positions(&self, prefix: &[u8]) -> Result<SplitState> {
        let rows = self.store.scan_prefix(prefix)?;
        Ok(positions(
            prefix,
            rows.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        ))
    }

    fn put_positions(&mut self, key: impl Fn(&str) -> Vec<u8>, state: &SplitState) {
        for (split, v) in state {
            self.writes.put(key(split), v.to_be_bytes().to_vec());
        }
    }

    /// Hooks view `view`'s scans up to their sources' shared readers (a
    /// source read by no view yet gets one, starting where the view's own
    /// start positions say). A fresh view's start positions come in its
    /// catalog writes and are taken out of them; where the shared reader
    /// is already past them, the view gets a catch-up reader for the rows
    /// in between. Returns the readers to start.
    pub(super) fn connect_sources(
        &mut self,
        view: TableId,
        name: &str,
        scans: Vec<SourceScans>,
        catalog: &mut Vec<CatalogWrite>,
        fresh: bool,
    ) -> Result<Vec<ToStart>> {
        let Some(tx) = self.fragments.get(&view).map(|f| f.handle.tx.clone()) else {
            return Ok(Vec::new());
        };
        let mut start = Vec::new();
        for (source, spec, entries, slot) in scans {
            let own_key = ReaderKey { owner: view, slot };
            let (own, mut until) = if fresh {
                // Every scan of the source resolved the same start; the
                // lowest slot's is the view's.
                let prefix = own_key.state_prefix();
                let own = positions(
                    &prefix,
                    catalog
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_slice(), v.as_deref()?))),
                );
                let all = ReaderKey::owner_prefix(view);
                catalog.retain(|(k, _)| !k.starts_with(&all));
                (own, SplitState::new())
            } else {
                (
                    self.stored_positions(&own_key.state_prefix())?,
                    self.stored_positions(&own_key.until_prefix())?,
                )
            };
            let mut catch_up = !until.is_empty();
            let joins = self.hubs.contains_key(&source);
            if !joins {
                let hub_key = shared_key(source);
                let mut at = if fresh {
                    SplitState::new()
                } else {
                    self.stored_positions(&hub_key.state_prefix())?
                };
                let mut written = at.clone();
                if fresh || (at.is_empty() && !catch_up) {
                    // The first view of the source (or one recovered from
                    // before shared readers): the reader starts at its
                    // positions, which are the source's from now on.
                    at = own.clone();
                    written = SplitState::new();
                    if !fresh {
                        self.writes.delete_prefix(&own_key.state_prefix());
                    }
                }
                let stats = Arc::new(SourceStats::new(&spec.name, ""));
                self.stats.insert(hub_key, stats.clone());
                self.hubs.insert(
                    source,
                    HubRt {
                        hub: SourceHub::new(at),
                        stats,
                        written,
                    },
                );
                start.push((hub_key, spec.clone(), ReaderTarget::Shared(source)));
            }
            let (hub, stats) = {
                let h = &self.hubs[&source];
                (h.hub.clone(), h.stats.clone())
            };
            // Held from here until the view has joined: the rows before
            // `until` are the catch-up's, those after it the shared reader's.
            let mut g = hub.lock();
            if joins && !catch_up && (fresh || !own.is_empty()) {
                until = g.positions.clone();
                let from = crate::source::catch_up_from(&spec, &own, &until);
                catch_up = crate::source::behind(&spec, &from, &until);
                if catch_up {
                    // The rows the shared reader read before this view
                    // joined: the view reads them itself, from its start.
                    if !fresh {
                        self.writes.delete_prefix(&own_key.state_prefix());
                    }
                    self.put_positions(|s| own_key.state_key(s), &from);
                    self.put_positions(|s| own_key.until_key(s), &until);
                }
            }
            let time = spec
                .watermark
                .map(|_| self.time.get("source", &spec.name, name));
            let Some(f) = self.fragments.get(&view) else {
                continue;
            };
            for &entry in &entries {
                f.handle.send(FragmentMsg::Control(Control::AddSource {
                    entry,
                    col: self.source_watermarks.get(&entry).copied(),
                    time: time.clone(),
                    catching_up: catch_up,
                }));
            }
            stats.add_owner(name);
            g.subscribe(view, tx.clone(), entries.clone());
            drop(g);
            if catch_up {
                start.push((own_key, spec, ReaderTarget::CatchUp { view, entries }));
            }
        }
        Ok(start)
    }

    /// Takes view `view` off every source it reads; a source no view reads
    /// any more stops its reader and forgets its positions.
    pub(super) fn disconnect_sources(&mut self, view: TableId, name: &str) {
        let mut idle = Vec::new();
        for (source, h) in &self.hubs {
            h.stats.remove_owner(name);
            if h.hub.lock().unsubscribe(view) {
                idle.push(*source);
            }
        }
        for source in idle {
            let key = shared_key(source);
            if let Some(h) = self.hubs.remove(&source) {
                h.hub.lock().close();
            }
            if let Some(r) = self.readers.remove(&key) {
                r.stop.stop();
            }
            self.stats.remove_owner(source);
            self.writes.delete_prefix(&key.state_prefix());
        }
    }

    /// Holds every source's hub (no reader hands a chunk on) while `f`
    /// runs, then writes each source's positions into the epoch: `f` sends
    /// the barrier, so each source's barrier sits at the same offsets in
    /// every view.
    pub(super) fn with_sources_held<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let hubs: Vec<(TableId, Arc<SourceHub>)> =
            self.hubs.iter().map(|(s, h)| (*s, h.hub.clone())).collect();
        let guards: Vec<_> = hubs.iter().map(|(_, h)| h.lock()).collect();
        let out = f(self);
        for ((source, _), g) in hubs.iter().zip(&guards) {
            let key = shared_key(*source);
            let Some(h) = self.hubs.get_mut(source) else {
                continue;
            };
            let changed: Vec<(String, i64)> = g
                .positions
                .iter()
                .filter(|(s, v)| h.written.get(*s) != Some(v))
                .map(|(s, v)| (s.clone(), *v))
                .collect();
            for (split, v) in changed {
                h.written.insert(split.clone(), v);
                self.writes
                    .put(key.state_key(&split), v.to_be_bytes().to_vec());
            }
        }
        drop(guards);
        out
    }

    /// Stops every shared reader (shutdown).
    pub(super) fn close_sources(&mut self) {
        for h in self.hubs.values() {
            h.hub.lock().close();
        }
    }
}
