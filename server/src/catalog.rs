//! The catalog: tables and materialized views by name, and how they persist.
//!
//! Each object is stored in the metadata keyspace as `catalog/<id>` with its
//! kind, id, plan fingerprint and the DDL text that created it. On start the
//! server replays the DDL in id order (so views come after what they read),
//! re-plans every view and compares fingerprints before resuming its state.
//! Catalog writes commit in the same epoch as the DDL's data changes.
//! `COMMENT ON` text is stored apart, as `comment/<id>/<column>` (column 0
//! for the object itself).

use std::collections::BTreeMap;
use std::sync::Arc;

use freshet_planner::{RelKind, Relation};
use freshet_storage::keys::meta_key;
use freshet_storage::TableId;

const PREFIX: &str = "catalog/";
const COMMENT_PREFIX: &str = "comment/";

/// Where the comment on object `id` (column `sub`, 0 for the object) is kept.
pub fn comment_key(id: TableId, sub: i32) -> Vec<u8> {
    meta_key(&format!("{COMMENT_PREFIX}{:010}/{sub}", id.0))
}

/// The prefix of every comment key.
pub fn comment_prefix() -> Vec<u8> {
    meta_key(COMMENT_PREFIX)
}

/// (object id, column) of a comment key's name part (after the meta prefix).
pub fn parse_comment_key(key: &[u8]) -> Option<(TableId, i32)> {
    let prefix = comment_prefix();
    let rest = std::str::from_utf8(key.strip_prefix(prefix.as_slice())?).ok()?;
    let (id, sub) = rest.split_once('/')?;
    Some((TableId(id.parse().ok()?), sub.parse().ok()?))
}

/// One catalog object.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub rel: Arc<Relation>,
    /// Normalized DDL text that re-creates the object.
    pub ddl: String,
    /// Ids of the relations a view reads.
    pub deps: Vec<TableId>,
    /// Plan fingerprint (views only).
    pub fingerprint: u64,
    /// Number of ids the object uses (1 + state tables).
    pub width: u32,
}

/// A stored catalog record, before it is re-planned.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub kind: RelKind,
    pub id: TableId,
    pub fingerprint: u64,
    pub ddl: String,
    /// How a view's state was laid out when it was created.
    pub layout: ViewLayout,
}

/// What a view's stored state depends on, recorded at `CREATE`.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewLayout {
    /// Written by a build before stream keys (record format `v1`): rows are
    /// a multiset, and `fingerprint` hashes the `EXPLAIN` text.
    Legacy,
    /// Record format `v2`: the storage key of the view's rows (`None`: a
    /// multiset) and the plan's structural form
    /// ([`freshet_runtime::plan_structure`]).
    Structured {
        key: Option<Vec<usize>>,
        structure: Vec<String>,
    },
}

impl StoredEntry {
    pub fn key(id: TableId) -> Vec<u8> {
        meta_key(&format!("{PREFIX}{:010}", id.0))
    }

    pub fn prefix() -> Vec<u8> {
        meta_key(PREFIX)
    }

    pub fn encode(&self) -> Vec<u8> {
        let kind = match self.kind {
            RelKind::Table => "table",
            RelKind::View => "view",
            RelKind::Source => "source",
            RelKind::PlainView => "plainview",
        };
        let (key, structure) = match &self.layout {
            ViewLayout::Legacy => {
                return format!(
                    "v1\n{kind}\n{}\n{}\n{}",
                    self.id.0, self.fingerprint, self.ddl
                )
                .into_bytes()
            }
            ViewLayout::Structured { key, structure } => {
                let key = match key {
                    None => "multiset".to_string(),
                    Some(k) => format!(
                        "key:{}",
                        k.iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                };
                (key, structure.join("\t"))
            }
        };
        format!(
            "v2\n{kind}\n{}\n{}\n{key}\n{structure}\n{}",
            self.id.0, self.fingerprint, self.ddl
        )
        .into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredEntry> {
        let s = std::str::from_utf8(bytes).ok()?;
        let v2 = s.starts_with("v2\n");
        let mut parts = s.splitn(if v2 { 7 } else { 5 }, '\n');
        if !matches!(parts.next()?, "v1" | "v2") {
            return None;
        }
        let kind = match parts.next()? {
            "table" => RelKind::Table,
            "view" => RelKind::View,
            "source" => RelKind::Source,
            "plainview" => RelKind::PlainView,
            _ => return None,
        };
        let id = TableId(parts.next()?.parse().ok()?);
        let fingerprint = parts.next()?.parse().ok()?;
        let layout = if v2 {
            let key = match parts.next()? {
                "multiset" => None,
                k => Some(
                    k.strip_prefix("key:")?
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(|c| c.parse().ok())
                        .collect::<Option<Vec<usize>>>()?,
                ),
            };
            let structure = parts
                .next()?
                .split('\t')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            ViewLayout::Structured { key, structure }
        } else {
            ViewLayout::Legacy
        };
        let ddl = parts.next()?.to_string();
        Some(StoredEntry {
            kind,
            id,
            fingerprint,
            ddl,
            layout,
        })
    }
}

/// A sink: stored as `sink/<id>` with the DDL that created it, re-planned
/// on start after every relation.
#[derive(Debug, Clone)]
pub struct SinkEntry {
    pub id: TableId,
    pub name: String,
    pub ddl: String,
    /// Ids of the relations the sink reads.
    pub deps: Vec<TableId>,
    /// Number of ids the sink uses (1 + state tables, its log among them).
    pub width: u32,
    pub spec: freshet_runtime::sink::SinkSpec,
}

const SINK_PREFIX: &str = "sink/";

impl SinkEntry {
    pub fn key(id: TableId) -> Vec<u8> {
        meta_key(&format!("{SINK_PREFIX}{:010}", id.0))
    }

    pub fn prefix() -> Vec<u8> {
        meta_key(SINK_PREFIX)
    }

    /// The stored form: a version line, then the DDL.
    pub fn encode_ddl(ddl: &str) -> Vec<u8> {
        format!("v1\n{ddl}").into_bytes()
    }

    pub fn decode_ddl(v: &[u8]) -> Option<String> {
        std::str::from_utf8(v)
            .ok()?
            .strip_prefix("v1\n")
            .map(str::to_string)
    }
}

/// All objects by (lower-case) name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    by_name: BTreeMap<String, CatalogEntry>,
    /// Sinks by name (a namespace shared with relations).
    pub sinks: BTreeMap<String, SinkEntry>,
    /// `COMMENT ON` text by (object id, column; 0 = the object).
    pub comments: BTreeMap<(TableId, i32), String>,
    /// Views being created (backfilling) by name: their ids and width,
    /// taken though they are not in the catalog yet.
    pending: BTreeMap<String, (TableId, u32)>,
}

impl Catalog {
    pub fn get(&self, name: &str) -> Option<&CatalogEntry> {
        self.by_name.get(name)
    }

    /// Whether a relation, or a view still being created, has `name`.
    pub fn taken(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.pending.contains_key(name)
    }

    /// Holds `name` and the ids of a view while it is being created.
    pub fn reserve(&mut self, name: &str, id: TableId, width: u32) {
        self.pending.insert(name.to_string(), (id, width));
    }

    pub fn unreserve(&mut self, name: &str) {
        self.pending.remove(name);
    }

    pub fn insert(&mut self, e: CatalogEntry) {
        self.by_name.insert(e.rel.name.clone(), e);
    }

    pub fn remove(&mut self, name: &str) -> Option<CatalogEntry> {
        let e = self.by_name.remove(name)?;
        self.comments.retain(|(id, _), _| *id != e.rel.id);
        Some(e)
    }

    /// The comments of object `id`, by column (0 = the object).
    pub fn comments_of(&self, id: TableId) -> Vec<(i32, String)> {
        self.comments
            .range((id, i32::MIN)..=(id, i32::MAX))
            .map(|((_, sub), t)| (*sub, t.clone()))
            .collect()
    }

    pub fn relations(&self) -> Vec<Arc<Relation>> {
        self.by_name.values().map(|e| e.rel.clone()).collect()
    }

    pub fn entries(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.by_name.values()
    }

    /// The first id not used by any object (0 is reserved for metadata).
    pub fn next_id(&self) -> TableId {
        TableId(
            self.by_name
                .values()
                .map(|e| e.rel.id.0 + e.width)
                .chain(self.sinks.values().map(|s| s.id.0 + s.width))
                .chain(self.pending.values().map(|(id, w)| id.0 + w))
                .max()
                .unwrap_or(1)
                .max(1),
        )
    }

    /// The sinks that read `id` or any of `also` (its dependents).
    pub fn sinks_reading(&self, id: TableId, also: &[CatalogEntry]) -> Vec<SinkEntry> {
        self.sinks
            .values()
            .filter(|s| {
                s.deps
                    .iter()
                    .any(|d| *d == id || also.iter().any(|e| e.rel.id == *d))
            })
            .cloned()
            .collect()
    }

    /// Every object that reads `id`, directly or through other views, newest first.
    pub fn dependents(&self, id: TableId) -> Vec<CatalogEntry> {
        let mut out: Vec<CatalogEntry> = Vec::new();
        let mut frontier = vec![id];
        while let Some(cur) = frontier.pop() {
            for e in self.by_name.values() {
                if e.deps.contains(&cur) && !out.iter().any(|o| o.rel.id == e.rel.id) {
                    out.push(e.clone());
                    frontier.push(e.rel.id);
                }
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.rel.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_entries_round_trip_in_both_formats() {
        for layout in [
            ViewLayout::Legacy,
            ViewLayout::Structured {
                key: None,
                structure: vec!["#0 TableScan(table=1 pk=None) <- [] types=[Int32]".into()],
            },
            ViewLayout::Structured {
                key: Some(vec![]),
                structure: vec!["#0 a".into(), "#1 b".into()],
            },
            ViewLayout::Structured {
                key: Some(vec![0, 2]),
                structure: vec!["#0 a".into()],
            },
        ] {
            let e = StoredEntry {
                kind: RelKind::View,
                id: TableId(7),
                fingerprint: 42,
                ddl: "CREATE MATERIALIZED VIEW v AS SELECT 1\nFROM t".into(),
                layout: layout.clone(),
            };
            let d = StoredEntry::decode(&e.encode()).expect("decodes");
            assert_eq!(d.layout, layout);
            assert_eq!(d.ddl, e.ddl);
            assert_eq!((d.id, d.fingerprint), (e.id, e.fingerprint));
        }
    }
}
