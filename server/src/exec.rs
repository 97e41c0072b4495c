//! Statement execution: the catalog, DDL, DML, queries and session commands.
//!
//! - Queries run on DataFusion over a snapshot of the latest committed epoch:
//!   the relations a plan reads are loaded from one RocksDB snapshot before
//!   it runs ([`Server::load_committed`]).
//! - DML is planned by DataFusion too (`INSERT ... VALUES/SELECT`, `UPDATE`,
//!   `DELETE`); its input is evaluated over the *current* table contents
//!   (committed plus this epoch's writes, from the engine) and the resulting
//!   rows or row keys go to the engine. DML and DDL take one write lock, so
//!   each statement sees the effects of the ones before it.
//! - DDL updates the catalog and the engine in one epoch commit.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Constraint, ParamValues, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, DdlStatement, LogicalPlan, Volatility, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectType, Set, Statement};
use freshet_planner::relation::{read_plan, referenced_relations};
use freshet_planner::session::{new_context, register};
use freshet_planner::{QueryData, RelKind, Relation};
use freshet_runtime::engine::nullable;
use freshet_runtime::table::{read_committed, ROWKEY_COLUMN};
use freshet_runtime::{DmlOp, Engine, ReadTarget, StreamPlan, ViewDef};
use freshet_storage::codec::is_supported;
use freshet_storage::{Store, TableId};

use crate::catalog::{Catalog, CatalogEntry, StoredEntry, ViewLayout};
use crate::dialect::{ConnectorDdl, Parsed};
use crate::error::{code, ExecError, ExecResult};

mod sinks;
pub(crate) mod subscribe;
use freshet_runtime::plan::NodeKind;
use freshet_runtime::source::nexmark::default_columns as nexmark_columns;
use freshet_runtime::source::{NexmarkTable, ReaderKey, SourceError, SourceSpec};

/// The PostgreSQL version Freshet reports; clients parse it.
pub const PG_VERSION: &str = "15.0";
/// `server_version_num` for [`PG_VERSION`].
pub const PG_VERSION_NUM: &str = "150000";

/// What a statement returns.
pub enum Output {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Command {
        tag: &'static str,
        rows: Option<usize>,
    },
    Begin,
    Commit,
    /// `COPY ... TO STDOUT`: the lines of copy data.
    CopyOut {
        columns: usize,
        lines: Vec<String>,
    },
    /// `COPY ... FROM STDIN`: the client sends `columns` fields per row.
    CopyIn {
        columns: usize,
    },
    /// `COPY (SUBSCRIBE ...) TO STDOUT`: copy data for as long as the view
    /// changes and the client listens.
    CopyFeed(Box<subscribe::CopyFeed>),
}

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct Session {
    pub settings: BTreeMap<String, String>,
    pub implicit_flush: bool,
    /// Open cursors (`DECLARE ... CURSOR FOR`): the query's result, read
    /// once at `DECLARE`, and the rows not fetched yet.
    pub cursors: BTreeMap<String, Cursor>,
    /// `FETCH ... WITH (timeout = ...)`: the timeout of the FETCH at hand.
    pub fetch_timeout: Option<std::time::Duration>,
    /// Tables this session created with `CREATE TEMPORARY TABLE`, dropped
    /// when it ends.
    pub temp_tables: Vec<(String, TableId)>,
    /// A `COPY ... FROM STDIN` waiting for its data.
    pub copy_in: Option<CopyIn>,
}

/// A `COPY table FROM STDIN` in progress: where the rows go and the data
/// received so far.
#[derive(Debug, Clone)]
pub struct CopyIn {
    table: String,
    id: TableId,
    /// The table's columns the data's fields fill, in order.
    columns: Vec<usize>,
    format: crate::copy::CopyFormat,
    data: Vec<u8>,
    /// More data came than one COPY takes; the rest was dropped.
    too_large: bool,
}

/// The most data one `COPY ... FROM STDIN` takes (it is held in memory).
const COPY_IN_LIMIT: usize = 1 << 30;

impl CopyIn {
    /// Adds data the client sent.
    pub fn append(&mut self, bytes: &[u8]) {
        if self.too_large || self.data.len() + bytes.len() > COPY_IN_LIMIT {
            self.too_large = true;
            self.data = Vec::new();
            return;
        }
        self.data.extend_from_slice(bytes);
    }
}

/// A cursor's remaining rows.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub schema: SchemaRef,
    pub rows: std::collections::VecDeque<RecordBatch>,
    /// A `SUBSCRIBE` cursor's feed of committed changes.
    pub sub: Option<Arc<tokio::sync::Mutex<freshet_runtime::engine::Subscription>>>,
}

impl Session {
    /// Records the user the connection logged in as (once).
    pub fn remember_user(&mut self, user: Option<&String>) {
        if let Some(u) = user {
            self.settings
                .entry("session_authorization".into())
                .or_insert_with(|| u.clone());
        }
    }
}

impl Default for Session {
    fn default() -> Self {
        let mut settings = BTreeMap::new();
        for (k, v) in [
            ("server_version", PG_VERSION),
            ("server_version_num", PG_VERSION_NUM),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("timezone", "UTC"),
            ("intervalstyle", "postgres"),
            ("search_path", "public"),
            ("standard_conforming_strings", "on"),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("extra_float_digits", "1"),
            ("application_name", ""),
            ("statement_timeout", "0"),
            ("integer_datetimes", "on"),
            ("max_identifier_length", "63"),
            ("implicit_flush", "off"),
            ("jit", "off"),
        ] {
            settings.insert(k.to_string(), v.to_string());
        }
        Session {
            settings,
            implicit_flush: false,
            cursors: BTreeMap::new(),
            fetch_timeout: None,
            temp_tables: Vec::new(),
            copy_in: None,
        }
    }
}

/// Shared server state: storage, engine and catalog.
pub struct Server {
    store: Store,
    engine: Engine,
    catalog: RwLock<Catalog>,
    write_lock: tokio::sync::Mutex<()>,
    /// `pg_catalog` for ad-hoc queries (long-lived, so OIDs stay stable).
    pg: crate::pgcatalog::PgCatalog,
    /// Users with passwords; while there are none, connections are trusted.
    pub users: crate::auth::Users,
    /// SQL functions (`CREATE FUNCTION ... LANGUAGE SQL`).
    functions: RwLock<crate::functions::Functions>,
}

fn lower_name(name: &str) -> String {
    name.to_string()
}

impl Server {
    /// Opens the server over a started engine, recovering every catalog object.
    pub async fn open(store: Store, engine: Engine) -> ExecResult<Server> {
        let server = Server {
            store,
            engine,
            catalog: RwLock::new(Catalog::default()),
            write_lock: Default::default(),
            pg: crate::pgcatalog::PgCatalog::new()?,
            users: Default::default(),
            functions: Default::default(),
        };
        server.recover_functions().await?;
        server.recover().await?;
        Ok(server)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn catalog(&self) -> Catalog {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    fn with_catalog<T>(&self, f: impl FnOnce(&mut Catalog) -> T) -> ExecResult<T> {
        let mut c = self
            .catalog
            .write()
            .map_err(|_| ExecError::new(code::INTERNAL, "catalog lock poisoned"))?;
        Ok(f(&mut c))
    }

    fn functions(&self) -> crate::functions::Functions {
        self.functions.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Re-defines the stored SQL functions, in creation order.
    async fn recover_functions(&self) -> ExecResult<()> {
        let store = self.store.clone();
        let entries =
            tokio::task::spawn_blocking(move || store.scan_prefix(&crate::functions::prefix()))
                .await
                .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
                .map_err(freshet_runtime::RuntimeError::from)?;
        let mut stored: Vec<(u64, String)> = entries
            .iter()
            .filter_map(|(_, v)| {
                let text = std::str::from_utf8(v).ok()?;
                let (seq, ddl) = text.split_once('\n')?;
                Some((seq.parse().ok()?, ddl.to_string()))
            })
            .collect();
        stored.sort();
        for (seq, ddl) in stored {
            let Parsed::Sql(stmt) = crate::dialect::parse_one(&ddl)? else {
                return Err(ExecError::new(code::INTERNAL, "bad stored function DDL"));
            };
            let Statement::CreateFunction(f) = stmt.as_ref() else {
                return Err(ExecError::new(code::INTERNAL, "bad stored function DDL"));
            };
            let ctx = new_context();
            crate::functions::register_all(&ctx, &self.functions())?;
            let def = crate::functions::define(&ctx, f)?;
            let name = def.name.clone();
            let fun = crate::functions::Function { def, ddl, seq };
            self.functions
                .write()
                .map_err(|_| ExecError::new(code::INTERNAL, "function lock poisoned"))?
                .insert(name, fun);
        }
        Ok(())
    }

    /// `CREATE [OR REPLACE] FUNCTION ... LANGUAGE SQL`.
    async fn create_function(
        &self,
        f: &datafusion::sql::sqlparser::ast::CreateFunction,
    ) -> ExecResult<Output> {
        let name = f.name.to_string().to_ascii_lowercase();
        let fns = self.functions();
        let (ctx, _, cat) = self.context(false).await?;
        if let Some(old) = fns.get(&name) {
            if !f.or_replace {
                return Err(ExecError::new(
                    "42723",
                    format!("function \"{name}\" already exists"),
                ));
            }
            if let Some(user) = cat
                .entries()
                .find(|e| crate::functions::calls(&e.ddl, &name))
            {
                return Err(ExecError::new(
                    code::DEPENDENT_OBJECTS,
                    format!(
                        "cannot replace function {name}: \"{}\" uses it (views inline a function when created)",
                        user.rel.name
                    ),
                ));
            }
            let _ = old;
        } else if builtin_function(&ctx, &name) {
            return Err(ExecError::new(
                "42723",
                format!("function \"{name}\" already exists as a built-in function"),
            ));
        }
        let def = crate::functions::define(&ctx, f)?;
        let seq = fns.values().map(|f| f.seq + 1).max().unwrap_or(0);
        let ddl = f.to_string();
        self.engine
            .write_catalog(vec![(
                crate::functions::key(&name),
                Some(format!("{seq}\n{ddl}").into_bytes()),
            )])
            .await?;
        self.functions
            .write()
            .map_err(|_| ExecError::new(code::INTERNAL, "function lock poisoned"))?
            .insert(name, crate::functions::Function { def, ddl, seq });
        Ok(Output::Command {
            tag: "CREATE FUNCTION",
            rows: None,
        })
    }

    /// `DROP FUNCTION [IF EXISTS] name [(types)], ...`.
    async fn drop_function(
        &self,
        d: &datafusion::sql::sqlparser::ast::DropFunction,
    ) -> ExecResult<Output> {
        if matches!(
            d.drop_behavior,
            Some(datafusion::sql::sqlparser::ast::DropBehavior::Cascade)
        ) {
            return Err(ExecError::not_supported("DROP FUNCTION ... CASCADE"));
        }
        let fns = self.functions();
        let cat = self.catalog();
        let mut names = Vec::new();
        for desc in &d.func_desc {
            let name = desc.name.to_string().to_ascii_lowercase();
            if !fns.contains_key(&name) {
                if d.if_exists {
                    continue;
                }
                return Err(ExecError::new(
                    code::UNDEFINED_FUNCTION,
                    format!("function {name} does not exist"),
                ));
            }
            if let Some(user) = cat
                .entries()
                .find(|e| crate::functions::calls(&e.ddl, &name))
            {
                return Err(ExecError::new(
                    code::DEPENDENT_OBJECTS,
                    format!(
                        "cannot drop function {name} because \"{}\" depends on it",
                        user.rel.name
                    ),
                ));
            }
            if let Some(user) = fns
                .values()
                .find(|g| g.def.name != name && crate::functions::calls(&g.ddl, &name))
            {
                return Err(ExecError::new(
                    code::DEPENDENT_OBJECTS,
                    format!(
                        "cannot drop function {name} because function {} calls it",
                        user.def.name
                    ),
                ));
            }
            names.push(name);
        }
        self.engine
            .write_catalog(
                names
                    .iter()
                    .map(|n| (crate::functions::key(n), None))
                    .collect(),
            )
            .await?;
        let mut w = self
            .functions
            .write()
            .map_err(|_| ExecError::new(code::INTERNAL, "function lock poisoned"))?;
        for n in &names {
            w.remove(n);
        }
        Ok(Output::Command {
            tag: "DROP FUNCTION",
            rows: None,
        })
    }

    async fn recover(&self) -> ExecResult<()> {
        let store = self.store.clone();
        let entries =
            tokio::task::spawn_blocking(move || store.scan_prefix(&StoredEntry::prefix()))
                .await
                .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
                .map_err(freshet_runtime::RuntimeError::from)?;
        let mut stored: Vec<StoredEntry> = Vec::new();
        for (_, v) in entries {
            stored.push(
                StoredEntry::decode(&v)
                    .ok_or_else(|| ExecError::new(code::INTERNAL, "corrupt catalog entry"))?,
            );
        }
        stored.sort_by_key(|e| e.id);
        // Temporary tables of sessions that ended with the last run.
        let mut temporary = Vec::new();
        for e in stored {
            let parsed = crate::dialect::parse_one(&e.ddl)?;
            if let Parsed::CreateConnector(ddl) = parsed {
                let entry = self.plan_connector(&ddl, Some(e.id)).await?;
                if entry.rel.kind == RelKind::Table {
                    self.engine
                        .create_table(entry.rel.table_def(), vec![])
                        .await?;
                }
                self.with_catalog(|c| c.insert(entry))?;
                continue;
            }
            let Parsed::Sql(stmt) = parsed else {
                return Err(ExecError::new(code::INTERNAL, "bad stored DDL"));
            };
            match e.kind {
                RelKind::Source => {
                    return Err(ExecError::new(code::INTERNAL, "bad stored source DDL"))
                }
                RelKind::PlainView => {
                    let entry = self.plan_plain_view_entry(&stmt, Some(e.id)).await?;
                    self.with_catalog(|c| c.insert(entry))?;
                }
                RelKind::Table => {
                    let entry = self.plan_table(&stmt, Some(e.id)).await?;
                    self.engine
                        .create_table(entry.rel.table_def(), vec![])
                        .await?;
                    if matches!(stmt.as_ref(), Statement::CreateTable(c) if c.temporary) {
                        temporary.push((entry.rel.name.clone(), entry.rel.id));
                    }
                    self.with_catalog(|c| c.insert(entry))?;
                }
                RelKind::View => {
                    let (mut entry, mut plan) = self.plan_mv(&stmt, Some(e.id)).await?;
                    // The stored layout decides how the rows are kept, not
                    // what this build would choose for a new view.
                    let stored_key = match &e.layout {
                        ViewLayout::Legacy => None,
                        ViewLayout::Structured { key, .. } => key.clone(),
                    };
                    if let Some(root) = plan.nodes.last_mut() {
                        root.kind = NodeKind::Materialize {
                            key: stored_key.clone(),
                        };
                    }
                    let mut rel = (*entry.rel).clone();
                    rel.pk = stored_key;
                    entry.rel = Arc::new(rel);
                    entry.fingerprint = plan.fingerprint();
                    let changed = match &e.layout {
                        ViewLayout::Legacy => (entry.fingerprint != e.fingerprint)
                            .then(|| "its plan (EXPLAIN) differs".to_string()),
                        ViewLayout::Structured { structure, .. } => {
                            freshet_runtime::plan_structure::first_difference(
                                structure,
                                &freshet_runtime::plan_structure::structure(&plan),
                            )
                        }
                    };
                    if let Some(what) = changed {
                        return Err(ExecError::new(
                            code::INTERNAL,
                            format!(
                                "materialized view \"{}\" was created by a build whose plan differs from this one ({what}); refusing to resume its state. Drop and re-create it with the build that created it, or restore a backup.",
                                entry.rel.name
                            ),
                        ));
                    }
                    let def = ViewDef {
                        id: entry.rel.id,
                        name: entry.rel.name.clone(),
                        plan,
                    };
                    self.engine.create_view(def, vec![], false).await?;
                    self.with_catalog(|c| c.insert(entry))?;
                }
            }
        }
        let store = self.store.clone();
        let users = tokio::task::spawn_blocking(move || store.scan_prefix(&user_key("")))
            .await
            .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
            .map_err(freshet_runtime::RuntimeError::from)?;
        let prefix = user_key("");
        for (k, v) in users {
            let name = k
                .strip_prefix(prefix.as_slice())
                .map(|n| String::from_utf8_lossy(n).to_string());
            let secret = std::str::from_utf8(&v)
                .ok()
                .and_then(crate::auth::Secret::decode);
            if let (Some(name), Some(secret)) = (name, secret) {
                self.users.set(&name, Some(secret));
            }
        }
        let store = self.store.clone();
        let comments = tokio::task::spawn_blocking(move || {
            store.scan_prefix(&crate::catalog::comment_prefix())
        })
        .await
        .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
        .map_err(freshet_runtime::RuntimeError::from)?;
        self.with_catalog(|c| {
            for (k, v) in comments {
                if let (Some(key), Ok(text)) = (
                    crate::catalog::parse_comment_key(&k),
                    String::from_utf8(v.to_vec()),
                ) {
                    c.comments.insert(key, text);
                }
            }
        })?;
        self.recover_sinks().await?;
        // Only now, with every view and sink wired to what it reads, may
        // sources deliver: a row read earlier would miss what is recovered
        // later.
        self.engine.start_sources().await?;
        self.drop_temporary(temporary).await?;
        let n = self.catalog().entries().count();
        if n > 0 {
            tracing::info!(objects = n, "recovered catalog");
        }
        Ok(())
    }

    /// Drops a session's temporary tables (and what depends on them), unless
    /// one was dropped already and its name reused.
    pub async fn drop_temporary(&self, tables: Vec<(String, TableId)>) -> ExecResult<()> {
        if tables.is_empty() {
            return Ok(());
        }
        let _g = self.write_lock.lock().await;
        let cat = self.catalog();
        let names: Vec<String> = tables
            .into_iter()
            .filter(|(name, id)| cat.get(name).is_some_and(|e| e.rel.id == *id))
            .map(|(name, _)| name)
            .collect();
        self.drop_names(RelKind::Table, true, &names, true).await?;
        Ok(())
    }

    /// A DataFusion context with every catalog relation registered.
    async fn context(
        &self,
        with_rowkey: bool,
    ) -> ExecResult<(SessionContext, Arc<QueryData>, Catalog)> {
        let ctx = new_context();
        register_functions(&ctx);
        crate::functions::register_all(&ctx, &self.functions())?;
        let data = Arc::new(QueryData::default());
        let cat = self.catalog();
        register(&ctx, &cat.relations(), with_rowkey, &data)?;
        // Plain views in creation order: each may read the ones before it.
        let mut views: Vec<&CatalogEntry> = cat
            .entries()
            .filter(|e| e.rel.kind == RelKind::PlainView)
            .collect();
        views.sort_by_key(|e| e.rel.id);
        for e in views {
            let Parsed::Sql(stmt) = crate::dialect::parse_one(&e.ddl)? else {
                return Err(ExecError::new(code::INTERNAL, "bad stored view DDL"));
            };
            let (plan, definition) = plan_plain_view(&ctx, &stmt).await?;
            ctx.register_table(
                e.rel.name.as_str(),
                Arc::new(freshet_planner::relation::PlainViewProvider::new(
                    e.rel.clone(),
                    plan,
                    definition,
                )),
            )?;
        }
        Ok((ctx, data, cat))
    }

    /// `CREATE | ALTER | DROP USER`: users with a password, kept in the catalog.
    async fn user_ddl(&self, ddl: &crate::dialect::UserDdl) -> ExecResult<Output> {
        use crate::dialect::UserAction;
        let _guard = self.write_lock.lock().await;
        let exists = self.users.get(&ddl.name).is_some();
        let (tag, secret) = match ddl.action {
            UserAction::Create => {
                if exists {
                    return Err(ExecError::new(
                        "42710",
                        format!("role \"{}\" already exists", ddl.name),
                    ));
                }
                (
                    "CREATE ROLE",
                    ddl.password
                        .clone()
                        .flatten()
                        .map(|p| crate::auth::Secret::new(&p)),
                )
            }
            UserAction::Alter => {
                if !exists && ddl.password.is_none() {
                    return Err(ExecError::new(
                        code::UNDEFINED_OBJECT,
                        format!("role \"{}\" does not exist", ddl.name),
                    ));
                }
                match &ddl.password {
                    None => {
                        return Ok(Output::Command {
                            tag: "ALTER ROLE",
                            rows: None,
                        })
                    }
                    Some(p) => ("ALTER ROLE", p.as_deref().map(crate::auth::Secret::new)),
                }
            }
            UserAction::Drop => {
                if !exists {
                    if ddl.if_exists {
                        return Ok(Output::Command {
                            tag: "DROP ROLE",
                            rows: None,
                        });
                    }
                    return Err(ExecError::new(
                        code::UNDEFINED_OBJECT,
                        format!("role \"{}\" does not exist", ddl.name),
                    ));
                }
                ("DROP ROLE", None)
            }
        };
        self.engine
            .write_catalog(vec![(
                user_key(&ddl.name),
                secret.as_ref().map(|s| s.encode().into_bytes()),
            )])
            .await?;
        self.users.set(&ddl.name, secret);
        Ok(Output::Command { tag, rows: None })
    }

    /// `COMMENT ON TABLE | VIEW | MATERIALIZED VIEW | COLUMN ... IS '...'`.
    async fn comment(
        &self,
        object_type: datafusion::sql::sqlparser::ast::CommentObject,
        object_name: &datafusion::sql::sqlparser::ast::ObjectName,
        comment: Option<String>,
        if_exists: bool,
    ) -> ExecResult<Output> {
        use datafusion::sql::sqlparser::ast::CommentObject;
        let parts: Vec<String> = object_name
            .0
            .iter()
            .map(|p| normalize_ident(&p.to_string()))
            .collect();
        let (rel_name, column) = match object_type {
            CommentObject::Column => {
                if parts.len() < 2 {
                    return Err(ExecError::new(
                        code::SYNTAX,
                        "column name must be qualified",
                    ));
                }
                (
                    parts[parts.len() - 2].clone(),
                    Some(parts[parts.len() - 1].clone()),
                )
            }
            CommentObject::Table | CommentObject::View | CommentObject::MaterializedView => {
                (parts.last().cloned().unwrap_or_default(), None)
            }
            other => return Err(ExecError::not_supported(format!("COMMENT ON {other}"))),
        };
        let _guard = self.write_lock.lock().await;
        let cat = self.catalog();
        let Some(entry) = cat.get(&rel_name) else {
            if if_exists {
                return Ok(Output::Command {
                    tag: "COMMENT",
                    rows: None,
                });
            }
            return Err(ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{rel_name}\" does not exist"),
            ));
        };
        let kind_ok = match object_type {
            CommentObject::Table => matches!(entry.rel.kind, RelKind::Table | RelKind::Source),
            CommentObject::View => entry.rel.kind == RelKind::PlainView,
            CommentObject::MaterializedView => entry.rel.kind == RelKind::View,
            _ => true,
        };
        if !kind_ok {
            return Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!(
                    "\"{rel_name}\" is not a {}",
                    object_type.to_string().to_lowercase()
                ),
            ));
        }
        let sub = match &column {
            None => 0,
            Some(c) => match entry.rel.schema.index_of(c) {
                Ok(i) => i as i32 + 1,
                Err(_) => {
                    return Err(ExecError::new(
                        code::UNDEFINED_COLUMN,
                        format!("column \"{c}\" of relation \"{rel_name}\" does not exist"),
                    ))
                }
            },
        };
        let id = entry.rel.id;
        let key = crate::catalog::comment_key(id, sub);
        let comment = comment.filter(|c| !c.is_empty());
        self.engine
            .write_catalog(vec![(key, comment.clone().map(String::into_bytes))])
            .await?;
        self.with_catalog(|c| match comment {
            Some(t) => {
                c.comments.insert((id, sub), t);
            }
            None => {
                c.comments.remove(&(id, sub));
            }
        })?;
        Ok(Output::Command {
            tag: "COMMENT",
            rows: None,
        })
    }

    /// `CREATE VIEW`: checks the query, then stores it.
    async fn create_plain_view(&self, stmt: &Statement) -> ExecResult<Output> {
        let Statement::CreateView(cv) = stmt else {
            return Err(ExecError::new(code::INTERNAL, "expected CREATE VIEW"));
        };
        let name = normalize_ident(&cv.name.0.last().map(|p| p.to_string()).unwrap_or_default());
        if self.catalog().taken(&name) {
            if cv.if_not_exists {
                return Ok(Output::Command {
                    tag: "CREATE VIEW",
                    rows: None,
                });
            }
            return Err(ExecError::new(
                code::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        if cv.or_replace {
            return Err(ExecError::not_supported("CREATE OR REPLACE VIEW"));
        }
        let _guard = self.write_lock.lock().await;
        let entry = self.plan_plain_view_entry(stmt, None).await?;
        let stored = StoredEntry {
            kind: RelKind::PlainView,
            id: entry.rel.id,
            fingerprint: 0,
            ddl: entry.ddl.clone(),
            layout: ViewLayout::Legacy,
        };
        self.engine
            .write_catalog(vec![(
                StoredEntry::key(entry.rel.id),
                Some(stored.encode()),
            )])
            .await?;
        self.with_catalog(|c| c.insert(entry))?;
        Ok(Output::Command {
            tag: "CREATE VIEW",
            rows: None,
        })
    }

    async fn plan_plain_view_entry(
        &self,
        stmt: &Statement,
        id: Option<TableId>,
    ) -> ExecResult<CatalogEntry> {
        let Statement::CreateView(cv) = stmt else {
            return Err(ExecError::new(code::INTERNAL, "expected CREATE VIEW"));
        };
        let name = normalize_ident(&cv.name.0.last().map(|p| p.to_string()).unwrap_or_default());
        let (ctx, _, cat) = self.context(false).await?;
        let (plan, _) = plan_plain_view(&ctx, stmt).await?;
        let mut deps: Vec<TableId> = referenced_relations(&plan).iter().map(|r| r.id).collect();
        deps.extend(plain_views_named(&cat, &cv.query));
        let rel = Relation {
            kind: RelKind::PlainView,
            id: id.unwrap_or_else(|| cat.next_id()),
            name,
            schema: freshet_runtime::engine::nullable(&Arc::new(plan.schema().as_arrow().clone())),
            pk: None,
            source: None,
            watermark: None,
            append_only: false,
        };
        Ok(CatalogEntry {
            rel: Arc::new(rel),
            ddl: stmt.to_string(),
            deps,
            fingerprint: 0,
            width: 1,
        })
    }

    /// A context for an ad-hoc query: relations plus `pg_catalog` and
    /// `information_schema` describing them.
    async fn query_context(&self) -> ExecResult<(SessionContext, Arc<QueryData>)> {
        let (ctx, data, cat) = self.context(false).await?;
        self.pg.set_objects(
            cat.entries()
                .map(|e| crate::pgcatalog::Object {
                    name: e.rel.name.clone(),
                    schema: e.rel.schema.clone(),
                    kind: crate::pgcatalog::ObjectKind::of(e.rel.kind),
                    comments: cat.comments_of(e.rel.id),
                    definition: view_definition(e),
                    // A view's storage key is no constraint to a client.
                    pk: e
                        .rel
                        .pk
                        .iter()
                        .flatten()
                        .filter(|_| e.rel.kind == RelKind::Table)
                        .map(|&i| e.rel.schema.field(i).name().clone())
                        .collect(),
                })
                .collect(),
        );
        self.pg.install(&ctx)?;
        // Ours come last: `version()` names Freshet, `quote_ident` quotes
        // as PostgreSQL does.
        register_functions(&ctx);
        freshet_planner::pg::register(&ctx);
        ctx.register_udf(current_setting_udf(Session::default().settings));
        Ok((ctx, data))
    }

    /// Loads the committed contents of every relation `plan` reads, from one snapshot.
    async fn load_committed(&self, plan: &LogicalPlan, data: &Arc<QueryData>) -> ExecResult<()> {
        let reads = read_plan(plan);
        if reads.is_empty() {
            return Ok(());
        }
        let rels: Vec<Arc<Relation>> = reads.iter().map(|(r, _)| r.clone()).collect();
        let targets: Vec<ReadTarget> = reads
            .into_iter()
            .map(|(r, keys)| target(&r, keys))
            .collect();
        let store = self.store.clone();
        let batches = tokio::task::spawn_blocking(move || read_committed(&store, &targets))
            .await
            .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))??;
        for (r, b) in rels.iter().zip(batches) {
            data.insert(r.id, b);
        }
        Ok(())
    }

    /// Loads current table contents (with pending writes) and committed views.
    async fn load_current(&self, plan: &LogicalPlan, data: &Arc<QueryData>) -> ExecResult<()> {
        let reads = read_plan(plan);
        let tables: Vec<(TableId, Option<Vec<Vec<u8>>>)> = reads
            .iter()
            .filter(|(r, _)| r.kind == RelKind::Table)
            .map(|(r, k)| (r.id, k.clone()))
            .collect();
        if !tables.is_empty() {
            let ids: Vec<TableId> = tables.iter().map(|(id, _)| *id).collect();
            let batches = self.engine.read_tables(tables).await?;
            for (id, b) in ids.into_iter().zip(batches) {
                data.insert(id, b);
            }
        }
        let views: Vec<Arc<Relation>> = reads
            .into_iter()
            .filter(|(r, _)| r.kind == RelKind::View)
            .map(|(r, _)| r)
            .collect();
        if !views.is_empty() {
            let targets: Vec<ReadTarget> = views.iter().map(|r| target(r, None)).collect();
            let store = self.store.clone();
            let batches = tokio::task::spawn_blocking(move || read_committed(&store, &targets))
                .await
                .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))??;
            for (r, b) in views.iter().zip(batches) {
                data.insert(r.id, b);
            }
        }
        Ok(())
    }

    /// Parameter types and result schema of a statement, without running it.
    pub async fn describe(
        &self,
        parsed: &Parsed,
    ) -> ExecResult<(Vec<Option<DataType>>, Option<SchemaRef>)> {
        let Parsed::Sql(stmt) = parsed else {
            return Ok((vec![], self.static_schema(parsed)));
        };
        match stmt.as_ref() {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let with_rowkey =
                    matches!(stmt.as_ref(), Statement::Update(_) | Statement::Delete(_));
                let ctx = if matches!(stmt.as_ref(), Statement::Query(_)) {
                    self.query_context().await?.0
                } else {
                    self.context(with_rowkey).await?.0
                };
                let plan = ctx
                    .state()
                    .statement_to_plan(DFStatement::Statement(stmt.clone()))
                    .await
                    .and_then(freshet_planner::pg::type_literals)?;
                let types = param_types(&plan)?;
                let schema = match stmt.as_ref() {
                    Statement::Query(q) => {
                        // Analysis settles PostgreSQL's result types
                        // (`date - date` is int4, ...); a plan it cannot
                        // analyze before its parameters are bound keeps
                        // the types binding gave.
                        let analyzed = ctx.state().optimize(&plan).ok();
                        let s = analyzed.as_ref().map_or(plan.schema(), |p| p.schema());
                        Some(rename(&Arc::new(s.as_arrow().clone()), q))
                    }
                    _ => None,
                };
                Ok((types, schema))
            }
            Statement::ShowVariable { variable }
                if ident_name(variable).eq_ignore_ascii_case("all") =>
            {
                Ok((vec![], Some(show_all_schema())))
            }
            Statement::ShowVariable { variable } => Ok((
                vec![],
                Some(show_schema(&ident_name(variable).to_ascii_lowercase())),
            )),
            Statement::Explain { .. } => Ok((vec![], Some(explain_schema()))),
            Statement::Declare { stmts } => match stmts.first().and_then(|d| d.for_query.clone()) {
                Some(q) => {
                    let ctx = self.query_context().await?.0;
                    let plan = ctx
                        .state()
                        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(q))))
                        .await
                        .and_then(freshet_planner::pg::type_literals)?;
                    Ok((param_types(&plan)?, None))
                }
                None => Ok((vec![], None)),
            },
            _ => Ok((vec![], None)),
        }
    }

    fn static_schema(&self, parsed: &Parsed) -> Option<SchemaRef> {
        match parsed {
            Parsed::ShowTables | Parsed::ShowSources => Some(name_schema()),
            Parsed::ShowMaterializedViews => Some(crate::viewshow::schema()),
            Parsed::ShowSourceErrors => Some(crate::sourceshow::errors_schema()),
            Parsed::ShowSourceProgress => Some(crate::sourceshow::progress_schema()),
            Parsed::ShowWatermarks => Some(watermarks_schema()),
            Parsed::ShowState => Some(state_schema()),
            Parsed::ShowSinks => Some(sinks::show_schema()),
            _ => None,
        }
    }

    /// Runs one statement.
    pub async fn execute(
        &self,
        session: &mut Session,
        parsed: &Parsed,
        params: Option<ParamValues>,
    ) -> ExecResult<Output> {
        match parsed {
            Parsed::Flush => {
                self.engine.flush().await?;
                Ok(Output::Command {
                    tag: "FLUSH",
                    rows: None,
                })
            }
            Parsed::ShowTables => Ok(self.show_names(RelKind::Table)),
            Parsed::ShowMaterializedViews => {
                Ok(crate::viewshow::show(&self.catalog(), &self.engine))
            }
            Parsed::ShowSources => Ok(self.show_names(RelKind::Source)),
            Parsed::ShowSourceErrors => Ok(crate::sourceshow::errors(&self.engine)),
            Parsed::ShowSourceProgress => Ok(crate::sourceshow::progress(&self.engine)),
            Parsed::ShowWatermarks => Ok(self.watermarks()),
            Parsed::ShowState => self.state_sizes().await,
            Parsed::DropSource {
                names,
                if_exists,
                cascade,
            } => {
                let _g = self.write_lock.lock().await;
                self.drop_names(RelKind::Source, *if_exists, names, *cascade)
                    .await
            }
            Parsed::User(ddl) => self.user_ddl(ddl).await,
            Parsed::CreateConnector(ddl) => {
                let _g = self.write_lock.lock().await;
                self.create_connector(ddl).await
            }
            Parsed::CreateSink(ddl) => {
                let _g = self.write_lock.lock().await;
                self.create_sink(ddl).await
            }
            Parsed::DropSink { names, if_exists } => {
                let _g = self.write_lock.lock().await;
                self.drop_sinks(names, *if_exists).await
            }
            Parsed::ShowSinks => Ok(self.show_sinks()),
            Parsed::DeclareSubscribe(d) => self.declare_subscribe(session, d).await,
            Parsed::CopySubscribe(c) => self.copy_subscribe(c).await,
            Parsed::FetchTimeout { stmt, timeout } => {
                session.fetch_timeout = Some(*timeout);
                let r = self.execute_sql(session, stmt, params).await;
                session.fetch_timeout = None;
                r
            }
            Parsed::Sql(stmt) => self.execute_sql(session, stmt, params).await,
        }
    }

    fn show_names(&self, kind: RelKind) -> Output {
        let names: Vec<String> = self
            .catalog()
            .entries()
            .filter(|e| e.rel.kind == kind)
            .map(|e| e.rel.name.clone())
            .collect();
        let schema = name_schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(names))]);
        match batch {
            Ok(b) => Output::Rows {
                schema,
                batches: vec![b],
            },
            Err(_) => Output::Rows {
                schema,
                batches: vec![],
            },
        }
    }

    async fn execute_sql(
        &self,
        session: &mut Session,
        stmt: &Statement,
        params: Option<ParamValues>,
    ) -> ExecResult<Output> {
        match stmt {
            Statement::Query(_) => self.query(stmt, params, Some(&session.settings)).await,
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let out = self.dml(stmt, params).await?;
                if session.implicit_flush {
                    self.engine.flush().await?;
                }
                Ok(out)
            }
            Statement::CreateTable(c) => {
                let _g = self.write_lock.lock().await;
                let out = self.create_table(stmt).await?;
                if c.temporary {
                    let name = lower_name(&c.name.to_string());
                    if let Some(e) = self.catalog().get(&name) {
                        session.temp_tables.push((name, e.rel.id));
                    }
                }
                Ok(out)
            }
            Statement::CreateView(cv) if cv.materialized => {
                let g = self.write_lock.lock().await;
                self.create_mv(stmt, g).await
            }
            Statement::CreateView(_) => self.create_plain_view(stmt).await,
            Statement::CreateFunction(f) => {
                let _g = self.write_lock.lock().await;
                self.create_function(f).await
            }
            Statement::DropFunction(d) => {
                let _g = self.write_lock.lock().await;
                self.drop_function(d).await
            }
            Statement::Comment {
                object_type,
                object_name,
                comment,
                if_exists,
            } => {
                self.comment(*object_type, object_name, comment.clone(), *if_exists)
                    .await
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => {
                let _g = self.write_lock.lock().await;
                self.drop(*object_type, *if_exists, names, *cascade).await
            }
            Statement::Explain {
                statement, analyze, ..
            } => match statement.as_ref() {
                Statement::CreateView(cv) if cv.materialized => {
                    let (_, plan) = self.plan_mv(statement, None).await?;
                    Ok(text_rows(
                        explain_schema(),
                        plan.explain().lines().map(str::to_string).collect(),
                    ))
                }
                Statement::Query(_) if !analyze => {
                    self.query(stmt, params, Some(&session.settings)).await
                }
                _ => Err(ExecError::not_supported(format!(
                    "EXPLAIN of this statement: {statement}"
                ))),
            },
            Statement::Set(set) => {
                self.set(session, set)?;
                Ok(Output::Command {
                    tag: "SET",
                    rows: None,
                })
            }
            Statement::ShowVariable { variable }
                if ident_name(variable).eq_ignore_ascii_case("all") =>
            {
                let schema = show_all_schema();
                let (names, values): (Vec<String>, Vec<String>) = session
                    .settings
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .unzip();
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(names)),
                        Arc::new(StringArray::from(values)),
                    ],
                )?;
                Ok(Output::Rows {
                    schema,
                    batches: vec![batch],
                })
            }
            Statement::ShowVariable { variable } => {
                let name = ident_name(variable);
                let key = setting_name(&name);
                let value = match key.as_str() {
                    "rw_implicit_flush" | "implicit_flush" => {
                        Some(if session.implicit_flush { "on" } else { "off" }.to_string())
                    }
                    _ => session.settings.get(&key).cloned(),
                };
                let value = value.ok_or_else(|| {
                    ExecError::new(
                        code::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                Ok(text_rows(show_schema(&key), vec![value]))
            }
            Statement::Copy {
                source,
                to: true,
                target: datafusion::sql::sqlparser::ast::CopyTarget::Stdout,
                options,
                legacy_options,
                ..
            } => {
                use datafusion::sql::sqlparser::ast::CopySource;
                let format = crate::copy::CopyFormat::from_options(options, legacy_options)?;
                let query = match source {
                    CopySource::Query(q) => Statement::Query(q.clone()),
                    CopySource::Table {
                        table_name,
                        columns,
                    } => {
                        let cols = if columns.is_empty() {
                            "*".to_string()
                        } else {
                            columns
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let sql = format!("SELECT {cols} FROM {table_name}");
                        match crate::dialect::parse_one(&sql)? {
                            Parsed::Sql(stmt) => *stmt,
                            _ => return Err(ExecError::new(code::SYNTAX, "COPY table")),
                        }
                    }
                };
                let Output::Rows { schema, batches } =
                    self.query(&query, params, Some(&session.settings)).await?
                else {
                    return Err(ExecError::new(code::INTERNAL, "COPY query returned no rows"));
                };
                let names: Vec<String> =
                    schema.fields().iter().map(|f| f.name().clone()).collect();
                Ok(Output::CopyOut {
                    columns: names.len(),
                    lines: format.lines(&names, &batches)?,
                })
            }
            Statement::Copy {
                source: datafusion::sql::sqlparser::ast::CopySource::Table {
                    table_name,
                    columns,
                },
                to: false,
                target: datafusion::sql::sqlparser::ast::CopyTarget::Stdin,
                options,
                legacy_options,
                values,
            } if values.is_empty() => {
                let format = crate::copy::CopyFormat::from_options(options, legacy_options)?;
                let name = match table_name.0.last() {
                    Some(datafusion::sql::sqlparser::ast::ObjectNamePart::Identifier(i))
                        if i.quote_style.is_some() =>
                    {
                        i.value.clone()
                    }
                    _ => table_name.to_string().rsplit('.').next().unwrap_or("").to_lowercase(),
                };
                let rel = self.writable_table(&name)?;
                let targets = columns
                    .iter()
                    .map(|c| {
                        let c = normalize_ident(&c.to_string());
                        rel.schema.index_of(&c).map_err(|_| {
                            ExecError::new(
                                code::UNDEFINED_COLUMN,
                                format!("column \"{c}\" of relation \"{name}\" does not exist"),
                            )
                        })
                    })
                    .collect::<ExecResult<Vec<usize>>>()?;
                let targets = if targets.is_empty() {
                    (0..rel.schema.fields().len()).collect()
                } else {
                    targets
                };
                let columns = targets.len();
                session.copy_in = Some(CopyIn {
                    table: name,
                    id: rel.id,
                    columns: targets,
                    format,
                    data: Vec::new(),
                    too_large: false,
                });
                Ok(Output::CopyIn { columns })
            }
            Statement::Copy { .. } => Err(ExecError::not_supported(
                "COPY to or from a file or program (use COPY ... TO STDOUT or COPY ... FROM STDIN, psql's \\copy)",
            )),
            Statement::Declare { stmts } => {
                for d in stmts {
                    let Some(q) = &d.for_query else {
                        return Err(ExecError::not_supported("DECLARE without a cursor query"));
                    };
                    let out = self
                        .query(
                            &Statement::Query(q.clone()),
                            params.clone(),
                            Some(&session.settings),
                        )
                        .await?;
                    let Output::Rows { schema, batches } = out else {
                        return Err(ExecError::new(
                            code::INTERNAL,
                            "cursor query returned no rows",
                        ));
                    };
                    for name in &d.names {
                        session.cursors.insert(
                            normalize_ident(&name.to_string()),
                            Cursor {
                                schema: schema.clone(),
                                rows: batches.iter().cloned().collect(),
                                sub: None,
                            },
                        );
                    }
                }
                Ok(Output::Command {
                    tag: "DECLARE CURSOR",
                    rows: None,
                })
            }
            Statement::Fetch {
                name, direction, ..
            } => {
                use datafusion::sql::sqlparser::ast::FetchDirection as D;
                let key = normalize_ident(&name.to_string());
                let count =
                    |v: &datafusion::sql::sqlparser::ast::ValueWithSpan| -> ExecResult<usize> {
                        v.to_string().parse::<usize>().map_err(|_| {
                            ExecError::not_supported(format!("FETCH {v} (only forward counts)"))
                        })
                    };
                let n = match direction {
                    D::Count { limit } | D::Forward { limit: Some(limit) } => count(limit)?,
                    D::Next | D::Forward { limit: None } => 1,
                    D::All | D::ForwardAll => usize::MAX,
                    other => {
                        return Err(ExecError::not_supported(format!(
                            "FETCH {other} (cursors only move forward)"
                        )))
                    }
                };
                let timeout = session.fetch_timeout.take();
                let cursor = session.cursors.get_mut(&key).ok_or_else(|| {
                    ExecError::new("34000", format!("cursor \"{key}\" does not exist"))
                })?;
                subscribe::fill(cursor, timeout).await?;
                let mut out = Vec::new();
                let mut left = n;
                while left > 0 {
                    let Some(b) = cursor.rows.pop_front() else {
                        break;
                    };
                    if b.num_rows() <= left {
                        left -= b.num_rows();
                        out.push(b);
                    } else {
                        out.push(b.slice(0, left));
                        cursor.rows.push_front(b.slice(left, b.num_rows() - left));
                        left = 0;
                    }
                }
                Ok(Output::Rows {
                    schema: cursor.schema.clone(),
                    batches: out,
                })
            }
            Statement::Close { cursor } => {
                match cursor {
                    datafusion::sql::sqlparser::ast::CloseCursor::All => session.cursors.clear(),
                    datafusion::sql::sqlparser::ast::CloseCursor::Specific { name } => {
                        let key = normalize_ident(&name.to_string());
                        if session.cursors.remove(&key).is_none() {
                            return Err(ExecError::new(
                                "34000",
                                format!("cursor \"{key}\" does not exist"),
                            ));
                        }
                    }
                }
                Ok(Output::Command {
                    tag: "CLOSE CURSOR",
                    rows: None,
                })
            }
            Statement::StartTransaction { .. } => Ok(Output::Begin),
            // Savepoints inside the (statement-at-a-time) transaction: no-ops.
            Statement::Savepoint { .. } => Ok(Output::Command {
                tag: "SAVEPOINT",
                rows: None,
            }),
            Statement::ReleaseSavepoint { .. } => Ok(Output::Command {
                tag: "RELEASE",
                rows: None,
            }),
            Statement::Rollback {
                savepoint: Some(_), ..
            } => Ok(Output::Command {
                tag: "ROLLBACK",
                rows: None,
            }),
            Statement::Commit { .. } | Statement::Rollback { .. } => Ok(Output::Commit),
            other => Err(ExecError::not_supported(format!(
                "statement not supported: {}",
                first_words(&other.to_string())
            ))),
        }
    }

    fn set(&self, session: &mut Session, set: &Set) -> ExecResult<()> {
        match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_ascii_lowercase();
                let value = values
                    .iter()
                    .map(|v| v.to_string().trim_matches('\'').to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                match name.as_str() {
                    "implicit_flush" | "rw_implicit_flush" => {
                        session.implicit_flush = parse_bool(&value).ok_or_else(|| {
                            ExecError::new(
                                code::INVALID_PARAMETER,
                                format!("parameter \"{name}\" requires a Boolean value"),
                            )
                        })?;
                        session.settings.insert(
                            "implicit_flush".into(),
                            if session.implicit_flush { "on" } else { "off" }.into(),
                        );
                    }
                    _ => {
                        session.settings.insert(name, value);
                    }
                }
                Ok(())
            }
            Set::SetTimeZone { value, .. } => {
                session.settings.insert(
                    "timezone".into(),
                    value.to_string().trim_matches('\'').to_string(),
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn query(
        &self,
        stmt: &Statement,
        params: Option<ParamValues>,
        settings: Option<&BTreeMap<String, String>>,
    ) -> ExecResult<Output> {
        let (ctx, data) = self.query_context().await?;
        let settings = settings
            .cloned()
            .unwrap_or_else(|| Session::default().settings);
        let user = settings
            .get("session_authorization")
            .cloned()
            .unwrap_or_else(|| "freshet".into());
        for name in ["current_user", "session_user"] {
            ctx.register_udf(constant_udf(name, user.clone()));
        }
        ctx.register_udf(current_setting_udf(settings));
        let plan = ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt.clone())))
            .await
            .and_then(freshet_planner::pg::type_literals)?;
        if let LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Statement(_) = plan {
            return Err(ExecError::not_supported(format!(
                "statement not supported: {}",
                first_words(&stmt.to_string())
            )));
        }
        refuse_sources(&plan)?;
        let plan = ctx.state().optimize(&bind(plan, params)?)?;
        self.load_committed(&plan, &data).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        let mut schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        if let Statement::Query(q) = stmt {
            schema = rename(&schema, q);
        }
        let batches = df.collect().await?;
        Ok(Output::Rows { schema, batches })
    }

    /// A table that accepts rows, by name.
    fn writable_table(&self, name: &str) -> ExecResult<Arc<Relation>> {
        let cat = self.catalog();
        let entry = cat.get(name).ok_or_else(|| {
            ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })?;
        match entry.rel.kind {
            RelKind::Table => Ok(entry.rel.clone()),
            RelKind::Source => Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!("cannot change source \"{name}\"; its rows come from its connector"),
            )),
            _ => Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!("cannot change \"{name}\"; only tables accept rows"),
            )),
        }
    }

    /// Inserts the rows of a finished `COPY ... FROM STDIN` as one
    /// statement; the number of rows.
    pub async fn finish_copy_in(&self, copy: CopyIn, flush: bool) -> ExecResult<usize> {
        let _g = self.write_lock.lock().await;
        let rel = self.writable_table(&copy.table)?;
        if rel.id != copy.id {
            return Err(ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{}\" was dropped during COPY", copy.table),
            ));
        }
        if copy.too_large {
            return Err(ExecError::new(
                "54000",
                format!(
                    "COPY data over {} MiB; split it into several COPY statements",
                    COPY_IN_LIMIT >> 20
                ),
            ));
        }
        let rows = copy.format.parse(&copy.data)?;
        let n = rows.len();
        let fields = rel.schema.fields();
        let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(n); fields.len()];
        for (line, row) in rows.into_iter().enumerate() {
            if row.len() != copy.columns.len() {
                let what = if row.len() > copy.columns.len() {
                    "extra data after last expected column".to_string()
                } else {
                    format!(
                        "missing data for column \"{}\"",
                        fields[copy.columns[row.len()]].name()
                    )
                };
                return Err(ExecError::new(
                    code::BAD_COPY_FORMAT,
                    format!("{what} (COPY {}, line {})", copy.table, line + 1),
                ));
            }
            let mut given = vec![None; fields.len()];
            for (value, &col) in row.into_iter().zip(&copy.columns) {
                given[col] = value;
            }
            for (i, (f, v)) in fields.iter().zip(given).enumerate() {
                let bad = |e: String| {
                    ExecError::new(
                        code::INVALID_TEXT,
                        format!(
                            "invalid input for column \"{}\" (COPY {}, line {}): {e}",
                            f.name(),
                            copy.table,
                            line + 1
                        ),
                    )
                };
                let value = match v {
                    None => ScalarValue::try_from(f.data_type())?,
                    Some(text) => crate::params::from_text(&text, Some(f.data_type()))
                        .map_err(|e| bad(e.to_string()))?
                        .cast_to(f.data_type())
                        .map_err(|e| bad(e.to_string()))?,
                };
                columns[i].push(value);
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let arrays = columns
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(rel.schema.clone(), arrays)
            .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?;
        let batch = freshet_planner::pg::jsonb::normalize_columns(&rel.schema, batch)?;
        self.engine.dml(rel.id, DmlOp::Insert(vec![batch])).await?;
        if flush {
            self.engine.flush().await?;
        }
        Ok(n)
    }

    async fn dml(&self, stmt: &Statement, params: Option<ParamValues>) -> ExecResult<Output> {
        let _g = self.write_lock.lock().await;
        let with_rowkey = matches!(stmt, Statement::Update(_) | Statement::Delete(_));
        let (ctx, data, cat) = self.context(with_rowkey).await?;
        let mut stmt = stmt.clone();
        crate::dialect::bytea_insert_values(&mut stmt, &|name| {
            let name = normalize_ident(name.rsplit('.').next().unwrap_or(name));
            cat.get(&name).map(|e| e.rel.schema.clone())
        });
        let plan = ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await
            .and_then(freshet_planner::pg::type_literals)?;
        let plan = bind(plan, params)?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(ExecError::new(code::INTERNAL, "expected a DML plan"));
        };
        let name = dml.table_name.table().to_string();
        let entry = cat.get(&name).ok_or_else(|| {
            ExecError::new(
                code::UNDEFINED_TABLE,
                format!("relation \"{name}\" does not exist"),
            )
        })?;
        if entry.rel.kind == RelKind::Source {
            return Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!("cannot change source \"{name}\"; its rows come from its connector"),
            ));
        }
        if entry.rel.kind != RelKind::Table {
            return Err(ExecError::new(
                code::WRONG_OBJECT_TYPE,
                format!("cannot change materialized view \"{name}\"; only tables accept INSERT, UPDATE and DELETE"),
            ));
        }
        let rel = entry.rel.clone();
        let input = ctx.state().optimize(dml.input.as_ref())?;
        self.load_current(&input, &data).await?;
        let batches = ctx.execute_logical_plan(input).await?.collect().await?;
        let ncols = rel.schema.fields().len();
        // jsonb values are checked and stored in canonical form.
        let batches = batches
            .into_iter()
            .map(|b| freshet_planner::pg::jsonb::normalize_columns(&rel.schema, b))
            .collect::<Result<Vec<_>, _>>()?;
        let (op, tag) = match dml.op {
            WriteOp::Insert(_) => (DmlOp::Insert(batches), "INSERT"),
            WriteOp::Delete => (DmlOp::Delete(rowkeys(&batches)?), "DELETE"),
            WriteOp::Update => {
                let keys = rowkeys(&batches)?;
                // `SET n = 11` on a bigint column gives an int4 column:
                // cast each to the table's type, as PostgreSQL assigns.
                let schema = nullable(&rel.schema);
                let mut rows = Vec::with_capacity(batches.len());
                for b in &batches {
                    let mut cols = Vec::with_capacity(ncols);
                    for (c, f) in b.columns()[..ncols].iter().zip(schema.fields()) {
                        if c.data_type() == f.data_type() {
                            cols.push(c.clone());
                            continue;
                        }
                        let opts = datafusion::arrow::compute::CastOptions {
                            safe: false,
                            ..Default::default()
                        };
                        cols.push(
                            datafusion::arrow::compute::cast_with_options(c, f.data_type(), &opts)
                                .map_err(|e| {
                                    ExecError::new(
                                        code::OUT_OF_RANGE,
                                        format!("value for column \"{}\": {e}", f.name()),
                                    )
                                })?,
                        );
                    }
                    rows.push(RecordBatch::try_new(schema.clone(), cols)?);
                }
                (DmlOp::Update { keys, rows }, "UPDATE")
            }
            other => return Err(ExecError::not_supported(format!("{other}"))),
        };
        let n = self.engine.dml(rel.id, op).await?;
        Ok(Output::Command {
            tag,
            rows: Some(n as usize),
        })
    }

    /// Plans `CREATE TABLE` into a catalog entry (with `id`, or a new one).
    async fn plan_table(&self, stmt: &Statement, id: Option<TableId>) -> ExecResult<CatalogEntry> {
        let (ctx, _, cat) = self.context(false).await?;
        let original = stmt.to_string();
        let mut stmt = stmt.clone();
        let time = table_time_clauses(&mut stmt)?;
        // A temporary table is an ordinary one that its session drops at
        // its end (the stored DDL keeps TEMPORARY for recovery).
        let mut jsonb_columns = Vec::new();
        if let Statement::CreateTable(c) = &mut stmt {
            c.temporary = false;
            // A jsonb column holds text in canonical form, marked jsonb.
            for col in c.columns.iter_mut() {
                if matches!(
                    col.data_type,
                    datafusion::sql::sqlparser::ast::DataType::JSONB
                ) {
                    col.data_type = datafusion::sql::sqlparser::ast::DataType::Text;
                    jsonb_columns.push(normalize_ident(&col.name.value));
                }
            }
        }
        let plan = ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt.clone())))
            .await
            .and_then(freshet_planner::pg::type_literals)?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) = plan else {
            return Err(ExecError::not_supported("this form of CREATE TABLE"));
        };
        if !matches!(c.input.as_ref(), LogicalPlan::EmptyRelation(_)) {
            return Err(ExecError::not_supported("CREATE TABLE ... AS SELECT"));
        }
        if !c.column_defaults.is_empty() {
            return Err(ExecError::not_supported("column DEFAULT values"));
        }
        let name = lower_name(c.name.table());
        let schema = Arc::new(c.input.schema().as_arrow().clone());
        let schema = if jsonb_columns.is_empty() {
            schema
        } else {
            let fields: Vec<datafusion::arrow::datatypes::Field> = schema
                .fields()
                .iter()
                .map(|f| {
                    let f = f.as_ref().clone();
                    if jsonb_columns.contains(f.name()) {
                        f.with_metadata(freshet_planner::pg::jsonb::jsonb_metadata())
                    } else {
                        f
                    }
                })
                .collect();
            Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
        };
        for f in schema.fields() {
            if !is_supported(f.data_type()) {
                return Err(ExecError::not_supported(format!(
                    "column \"{}\" has type {}, which tables cannot store yet",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        let mut pk = None;
        for con in c.constraints.iter() {
            match con {
                Constraint::PrimaryKey(cols) => pk = Some(cols.clone()),
                Constraint::Unique(_) => {
                    return Err(ExecError::not_supported(
                        "UNIQUE constraints other than PRIMARY KEY",
                    ))
                }
            }
        }
        let id = id.unwrap_or_else(|| cat.next_id());
        let watermark = watermark_def(&schema, &time)?;
        if watermark.is_some() && !time.append_only {
            return Err(ExecError::not_supported(
                "WATERMARK on a table that is not APPEND ONLY (add APPEND ONLY after the column list)",
            ));
        }
        if time.append_only && pk.is_some() {
            return Err(ExecError::not_supported(
                "a PRIMARY KEY on an APPEND ONLY table",
            ));
        }
        let rel = Relation {
            kind: RelKind::Table,
            id,
            name,
            schema,
            pk,
            source: None,
            watermark,
            append_only: time.append_only,
        };
        let entry = CatalogEntry {
            rel: Arc::new(rel),
            ddl: original,
            deps: vec![],
            fingerprint: 0,
            width: 1,
        };
        Ok(entry)
    }

    async fn create_table(&self, stmt: &Statement) -> ExecResult<Output> {
        let if_not_exists = matches!(stmt, Statement::CreateTable(c) if c.if_not_exists);
        let entry = self.plan_table(stmt, None).await?;
        if self.catalog().taken(&entry.rel.name) {
            if if_not_exists {
                return Ok(Output::Command {
                    tag: "CREATE TABLE",
                    rows: None,
                });
            }
            return Err(ExecError::new(
                code::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", entry.rel.name),
            ));
        }
        let stored = StoredEntry {
            kind: RelKind::Table,
            id: entry.rel.id,
            fingerprint: 0,
            ddl: entry.ddl.clone(),
            layout: ViewLayout::Legacy,
        };
        self.engine
            .create_table(
                entry.rel.table_def(),
                vec![(StoredEntry::key(entry.rel.id), Some(stored.encode()))],
            )
            .await?;
        self.with_catalog(|c| c.insert(entry))?;
        Ok(Output::Command {
            tag: "CREATE TABLE",
            rows: None,
        })
    }

    /// Plans `CREATE MATERIALIZED VIEW` into a catalog entry and a stream plan.
    async fn plan_mv(
        &self,
        stmt: &Statement,
        id: Option<TableId>,
    ) -> ExecResult<(CatalogEntry, StreamPlan)> {
        let Statement::CreateView(cv) = stmt else {
            return Err(ExecError::new(
                code::INTERNAL,
                "expected CREATE MATERIALIZED VIEW",
            ));
        };
        let name = cv.name.0.last().map(|p| p.to_string()).unwrap_or_default();
        let name = normalize_ident(&name);
        let (ctx, _, cat) = self.context(false).await?;
        let mut query = cv.query.clone();
        crate::dialect::now_to_proctime(&mut query);
        let plan = ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(query))))
            .await
            .and_then(freshet_planner::pg::type_literals)?;
        let optimized = ctx.state().optimize(&plan)?;
        // Window functions (TUMBLE, HOP) read relations only visible once
        // their queries are expanded.
        let mut deps: Vec<TableId> = referenced_relations(&plan)
            .iter()
            .chain(referenced_relations(&optimized).iter())
            .map(|r| r.id)
            .collect();
        deps.sort();
        deps.dedup();
        deps.extend(plain_views_named(&cat, &cv.query));
        let mut opts = cv.options.clone();
        let emit = crate::dialect::take_options(&mut opts, &[crate::dialect::OPT_EMIT]);
        let emit_on_close = match emit.first() {
            None => false,
            Some((_, v)) if v.eq_ignore_ascii_case(crate::dialect::EMIT_ON_WINDOW_CLOSE) => true,
            Some((_, v)) => {
                return Err(ExecError::new(
                    code::INVALID_PARAMETER,
                    format!("unknown emit mode \"{v}\" (use EMIT ON WINDOW CLOSE)"),
                ))
            }
        };
        let mut columns: Vec<String> = cv
            .columns
            .iter()
            .map(|c| normalize_ident(&c.name.to_string()))
            .collect();
        if columns.is_empty() {
            if let Some(names) = crate::colnames::pg_column_names(&cv.query) {
                let schema = plan.schema();
                if names.len() == schema.fields().len() && names.iter().any(Option::is_some) {
                    columns = names
                        .into_iter()
                        .zip(schema.fields())
                        .map(|(n, f)| n.unwrap_or_else(|| f.name().clone()))
                        .collect();
                }
            }
        }
        reject_nondeterministic(&plan)?;
        let splan = freshet_planner::stream::plan_view_with(&optimized, &columns, emit_on_close)?;
        let id = id.unwrap_or_else(|| cat.next_id());
        let schema = splan.nodes[splan.root()].schema.clone();
        let rel = Relation {
            kind: RelKind::View,
            id,
            name,
            schema,
            // Rows stored by the stream key, when the plan has one.
            pk: match &splan.nodes[splan.root()].kind {
                NodeKind::Materialize { key } => key.clone(),
                _ => None,
            },
            source: None,
            watermark: None,
            // Whether the view's changes are only inserts (what a PLAIN
            // sink of it needs); views reading it still treat it as
            // changing (the ViewScan is never append-only).
            append_only: freshet_runtime::stream_key::append_only(&splan)
                .get(splan.root())
                .copied()
                .unwrap_or(false),
        };
        let entry = CatalogEntry {
            rel: Arc::new(rel),
            ddl: stmt.to_string(),
            deps,
            fingerprint: splan.fingerprint(),
            width: 1 + splan.state_slots,
        };
        Ok((entry, splan))
    }

    /// `CREATE MATERIALIZED VIEW`, under the write lock `lock`. The lock
    /// is let go while the view backfills (its name and ids held in the
    /// catalog meanwhile), so DML and other DDL go on.
    async fn create_mv(
        &self,
        stmt: &Statement,
        lock: tokio::sync::MutexGuard<'_, ()>,
    ) -> ExecResult<Output> {
        let Statement::CreateView(cv) = stmt else {
            return Err(ExecError::new(
                code::INTERNAL,
                "expected CREATE MATERIALIZED VIEW",
            ));
        };
        let name = normalize_ident(&cv.name.0.last().map(|p| p.to_string()).unwrap_or_default());
        if self.catalog().taken(&name) {
            if cv.if_not_exists {
                return Ok(Output::Command {
                    tag: "CREATE MATERIALIZED VIEW",
                    rows: None,
                });
            }
            return Err(ExecError::new(
                code::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        if cv.or_replace {
            return Err(ExecError::not_supported(
                "CREATE OR REPLACE MATERIALIZED VIEW",
            ));
        }
        let (entry, plan) = self.plan_mv(stmt, None).await?;
        let stored = StoredEntry {
            kind: RelKind::View,
            id: entry.rel.id,
            fingerprint: entry.fingerprint,
            ddl: entry.ddl.clone(),
            layout: ViewLayout::Structured {
                key: entry.rel.pk.clone(),
                structure: freshet_runtime::plan_structure::structure(&plan),
            },
        };
        let mut catalog = vec![(StoredEntry::key(entry.rel.id), Some(stored.encode()))];
        for (idx, node) in plan.nodes.iter().enumerate() {
            if let NodeKind::SourceScan { spec, .. } = &node.kind {
                let key = ReaderKey {
                    owner: entry.rel.id,
                    slot: idx as u32,
                };
                catalog.extend(initial_state_writes(spec.clone(), key).await?);
            }
        }
        let def = ViewDef {
            id: entry.rel.id,
            name: entry.rel.name.clone(),
            plan,
        };
        let name = entry.rel.name.clone();
        self.with_catalog(|c| c.reserve(&name, entry.rel.id, entry.width))?;
        drop(lock);
        let r = self.engine.create_view(def, catalog, true).await;
        let _g = self.write_lock.lock().await;
        self.with_catalog(|c| {
            c.unreserve(&name);
            if r.is_ok() {
                c.insert(entry);
            }
        })?;
        r?;
        Ok(Output::Command {
            tag: "CREATE MATERIALIZED VIEW",
            rows: None,
        })
    }

    async fn drop(
        &self,
        kind: ObjectType,
        if_exists: bool,
        names: &[datafusion::sql::sqlparser::ast::ObjectName],
        cascade: bool,
    ) -> ExecResult<Output> {
        let want = match kind {
            ObjectType::Table => RelKind::Table,
            ObjectType::MaterializedView => RelKind::View,
            ObjectType::View => RelKind::PlainView,
            other => return Err(ExecError::not_supported(format!("DROP {other}"))),
        };
        let names: Vec<String> = names
            .iter()
            .map(|n| normalize_ident(&n.0.last().map(|p| p.to_string()).unwrap_or_default()))
            .collect();
        self.drop_names(want, if_exists, &names, cascade).await
    }

    /// Drops objects of kind `want` by name, with their dependents when `cascade`.
    async fn drop_names(
        &self,
        want: RelKind,
        if_exists: bool,
        names: &[String],
        cascade: bool,
    ) -> ExecResult<Output> {
        let (tag, what) = match want {
            RelKind::Table => ("DROP TABLE", "table"),
            RelKind::View => ("DROP MATERIALIZED VIEW", "materialized view"),
            RelKind::Source => ("DROP SOURCE", "source"),
            RelKind::PlainView => ("DROP VIEW", "view"),
        };
        for name in names {
            let name = name.clone();
            let cat = self.catalog();
            let Some(entry) = cat.get(&name) else {
                if if_exists {
                    continue;
                }
                return Err(ExecError::new(
                    code::UNDEFINED_TABLE,
                    format!("{what} \"{name}\" does not exist"),
                ));
            };
            if entry.rel.kind != want {
                return Err(ExecError::new(
                    code::WRONG_OBJECT_TYPE,
                    format!("\"{name}\" is not a {what}"),
                ));
            }
            let deps = cat.dependents(entry.rel.id);
            let sinks = cat.sinks_reading(entry.rel.id, &deps);
            if (!deps.is_empty() || !sinks.is_empty()) && !cascade {
                let list: Vec<String> = deps
                    .iter()
                    .map(|d| {
                        let kind = if d.rel.kind == RelKind::PlainView {
                            "view"
                        } else {
                            "materialized view"
                        };
                        format!("{kind} {} depends on {what} {name}", d.rel.name)
                    })
                    .chain(
                        sinks
                            .iter()
                            .map(|s| format!("sink {} depends on {what} {name}", s.name)),
                    )
                    .collect();
                return Err(ExecError::new(
                    code::DEPENDENT_OBJECTS,
                    format!("cannot drop {what} {name} because other objects depend on it ({}); use DROP ... CASCADE to drop them too", list.join("; ")),
                ));
            }
            for s in &sinks {
                self.drop_sink(s).await?;
            }
            let mut deps = deps;
            deps.sort_by_key(|d| std::cmp::Reverse(d.rel.id));
            for d in deps.iter().chain(std::iter::once(entry)) {
                let mut writes = vec![(StoredEntry::key(d.rel.id), None)];
                for (sub, _) in cat.comments_of(d.rel.id) {
                    writes.push((crate::catalog::comment_key(d.rel.id, sub), None));
                }
                self.engine.drop_object(d.rel.id, writes).await?;
                self.with_catalog(|c| c.remove(&d.rel.name))?;
            }
        }
        Ok(Output::Command { tag, rows: None })
    }
}

impl Server {
    /// Plans connector DDL into a catalog entry (a source, or a table fed by
    /// a connector), checking its options.
    async fn plan_connector(
        &self,
        ddl: &ConnectorDdl,
        id: Option<TableId>,
    ) -> ExecResult<CatalogEntry> {
        let spec_err = |e: SourceError| ExecError::from(freshet_runtime::RuntimeError::from(e));
        let connector = ddl
            .with
            .iter()
            .find(|(k, _)| k == "connector")
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let table_sql = match &ddl.table_sql {
            Some(s) => s.clone(),
            None if connector == "nexmark" => {
                let table = ddl
                    .with
                    .iter()
                    .find(|(k, _)| k == "nexmark.table.type")
                    .map(|(_, v)| v.to_ascii_lowercase());
                let t = match table.as_deref() {
                    Some("person") => NexmarkTable::Person,
                    Some("auction") => NexmarkTable::Auction,
                    _ => NexmarkTable::Bid,
                };
                format!(
                    "CREATE TABLE \"{}\" ({})",
                    ddl.name.replace('"', "\"\""),
                    nexmark_columns(t)
                )
            }
            None => {
                return Err(ExecError::new(
                    code::SYNTAX,
                    format!("\"{}\" needs a column list", ddl.name),
                ))
            }
        };
        let Parsed::Sql(stmt) = crate::dialect::parse_one(&table_sql)? else {
            return Err(ExecError::new(code::SYNTAX, "expected a column list"));
        };
        let base = self.plan_table(&stmt, id).await?;
        let rel = base.rel.as_ref();
        if ddl.is_source && rel.pk.is_some() {
            return Err(ExecError::not_supported(
                "a source has no PRIMARY KEY; use CREATE TABLE ... WITH (connector = ...) to keep rows by key",
            ));
        }
        let spec = SourceSpec::parse(
            &rel.name,
            nullable(&rel.schema),
            rel.pk.clone(),
            !ddl.is_source,
            &ddl.with,
            ddl.format.as_deref(),
            ddl.encode.as_deref(),
            &ddl.encode_opts,
        )
        .map_err(spec_err)?;
        let mut spec = spec;
        spec.watermark = watermark_def(&rel.schema, &ddl.time)?;
        let append_only = ddl.is_source || ddl.time.append_only;
        if !ddl.is_source && ddl.time.append_only && rel.pk.is_some() {
            return Err(ExecError::not_supported(
                "a PRIMARY KEY on an APPEND ONLY table",
            ));
        }
        if spec.watermark.is_some() && !append_only {
            return Err(ExecError::not_supported(
                "WATERMARK on a table that is not APPEND ONLY (add APPEND ONLY after the column list)",
            ));
        }
        let rel = Relation {
            kind: if ddl.is_source {
                RelKind::Source
            } else {
                RelKind::Table
            },
            watermark: spec.watermark,
            append_only: !ddl.is_source && ddl.time.append_only,
            source: Some(Arc::new(spec)),
            ..rel.clone()
        };
        Ok(CatalogEntry {
            rel: Arc::new(rel),
            ddl: ddl.text.clone(),
            deps: vec![],
            fingerprint: 0,
            width: 1,
        })
    }

    async fn create_connector(&self, ddl: &ConnectorDdl) -> ExecResult<Output> {
        let tag = if ddl.is_source {
            "CREATE SOURCE"
        } else {
            "CREATE TABLE"
        };
        if self.catalog().taken(&ddl.name) {
            if ddl.if_not_exists {
                return Ok(Output::Command { tag, rows: None });
            }
            return Err(ExecError::new(
                code::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", ddl.name),
            ));
        }
        let entry = self.plan_connector(ddl, None).await?;
        let spec = entry
            .rel
            .source
            .clone()
            .ok_or_else(|| ExecError::new(code::INTERNAL, "connector without a spec"))?;
        let check = spec.clone();
        tokio::task::spawn_blocking(move || freshet_runtime::source::validate(&check))
            .await
            .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
            .map_err(|e| ExecError::from(freshet_runtime::RuntimeError::from(e)))?;
        let stored = StoredEntry {
            kind: entry.rel.kind,
            id: entry.rel.id,
            fingerprint: 0,
            ddl: entry.ddl.clone(),
            layout: ViewLayout::Legacy,
        };
        let mut catalog = vec![(StoredEntry::key(entry.rel.id), Some(stored.encode()))];
        if entry.rel.kind == RelKind::Table {
            let key = ReaderKey {
                owner: entry.rel.id,
                slot: 0,
            };
            catalog.extend(initial_state_writes(spec, key).await?);
            self.engine
                .create_table(entry.rel.table_def(), catalog)
                .await?;
        } else {
            self.engine.write_meta(catalog).await?;
            self.engine.flush().await?;
        }
        self.with_catalog(|c| c.insert(entry))?;
        Ok(Output::Command { tag, rows: None })
    }

    /// `SHOW STATE`: how many entries (and bytes of keys and values) each
    /// materialized view's operators keep in the committed state store.
    async fn state_sizes(&self) -> ExecResult<Output> {
        let mut views: Vec<(String, TableId, u32)> = self
            .catalog()
            .entries()
            .filter(|e| e.rel.kind == RelKind::View)
            .map(|e| (e.rel.name.clone(), e.rel.id, e.width))
            .collect();
        views.sort();
        let store = self.store.clone();
        let sizes = tokio::task::spawn_blocking(move || {
            views
                .into_iter()
                .map(|(name, id, width)| {
                    let (mut keys, mut bytes) = (0i64, 0i64);
                    for t in id.0 + 1..id.0 + width {
                        let prefix = freshet_storage::keys::table_prefix(TableId(t));
                        store.scan_prefix_while(&prefix, |k, v| {
                            // A multiset entry whose count reached zero is
                            // gone; compaction drops it later.
                            let gone = v.first() == Some(&freshet_storage::count::COUNT_TAG)
                                && matches!(freshet_storage::count::decode(v), Ok((0, _)));
                            if !gone {
                                keys += 1;
                                bytes += (k.len() + v.len()) as i64;
                            }
                            Ok(true)
                        })?;
                    }
                    Ok((name, keys, bytes))
                })
                .collect::<Result<Vec<_>, freshet_storage::StorageError>>()
        })
        .await
        .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
        .map_err(freshet_runtime::RuntimeError::from)?;
        let schema = state_schema();
        let cols: Vec<datafusion::arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(
                sizes.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from(
                sizes.iter().map(|s| s.1).collect::<Vec<_>>(),
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from(
                sizes.iter().map(|s| s.2).collect::<Vec<_>>(),
            )),
        ];
        let batches = RecordBatch::try_new(schema.clone(), cols)
            .map(|b| vec![b])
            .unwrap_or_default();
        Ok(Output::Rows { schema, batches })
    }

    /// `SHOW WATERMARKS`: each table's, source reader's and view's watermark,
    /// late events and (views) retracted rows.
    fn watermarks(&self) -> Output {
        let schema = watermarks_schema();
        let mut stats = self.engine.time_stats();
        stats.sort_by(|a, b| (a.kind, &a.name, &a.consumer).cmp(&(b.kind, &b.name, &b.consumer)));
        let kind: Vec<&str> = stats.iter().map(|t| t.kind).collect();
        let name: Vec<String> = stats.iter().map(|t| t.name.clone()).collect();
        let consumer: Vec<Option<String>> = stats
            .iter()
            .map(|t| (!t.consumer.is_empty()).then(|| t.consumer.clone()))
            .collect();
        let wm: Vec<Option<String>> = stats
            .iter()
            .map(|t| t.watermark().map(|w| timestamp_text(&w)))
            .collect();
        let late: Vec<i64> = stats.iter().map(|t| t.late_total() as i64).collect();
        let retr: Vec<i64> = stats
            .iter()
            .map(|t| t.retractions.load(std::sync::atomic::Ordering::Relaxed) as i64)
            .collect();
        let cols: Vec<datafusion::arrow::array::ArrayRef> = vec![
            Arc::new(StringArray::from(kind)),
            Arc::new(StringArray::from(name)),
            Arc::new(StringArray::from(consumer)),
            Arc::new(StringArray::from(wm)),
            Arc::new(datafusion::arrow::array::Int64Array::from(late)),
            Arc::new(datafusion::arrow::array::Int64Array::from(retr)),
        ];
        let batches = RecordBatch::try_new(schema.clone(), cols)
            .map(|b| vec![b])
            .unwrap_or_default();
        Output::Rows { schema, batches }
    }
}

/// A timestamp watermark as PostgreSQL prints a `timestamp`.
fn timestamp_text(v: &ScalarValue) -> String {
    let Some((x, unit)) = freshet_runtime::time::timestamp_parts(v) else {
        return v.to_string();
    };
    let ns = x.saturating_mul(freshet_runtime::time::unit_ns(&unit));
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S%.f")
        .to_string()
}

fn state_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("state_keys", DataType::Int64, true),
        Field::new("state_bytes", DataType::Int64, true),
    ]))
}

fn watermarks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("consumer", DataType::Utf8, true),
        Field::new("watermark", DataType::Utf8, true),
        Field::new("late_events", DataType::Int64, true),
        Field::new("retractions", DataType::Int64, true),
    ]))
}

/// Takes the event-time options (`WATERMARK FOR`, `APPEND ONLY`, carried
/// as `WITH` options) out of a `CREATE TABLE`.
fn table_time_clauses(stmt: &mut Statement) -> ExecResult<crate::dialect::TimeClauses> {
    use crate::dialect::{OPT_APPEND_ONLY, OPT_WATERMARK_COLUMN, OPT_WATERMARK_DELAY};
    let mut time = crate::dialect::TimeClauses::default();
    let Statement::CreateTable(c) = stmt else {
        return Ok(time);
    };
    let opts = crate::dialect::take_options(
        &mut c.table_options,
        &[OPT_WATERMARK_COLUMN, OPT_WATERMARK_DELAY, OPT_APPEND_ONLY],
    );
    let get = |k: &str| opts.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(col) = get(OPT_WATERMARK_COLUMN) {
        time.watermark = Some((
            col,
            get(OPT_WATERMARK_DELAY).unwrap_or_else(|| "0 seconds".into()),
        ));
    }
    time.append_only = get(OPT_APPEND_ONLY).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(time)
}

/// The `WATERMARK FOR` of a table or source with columns `schema`.
fn watermark_def(
    schema: &SchemaRef,
    time: &crate::dialect::TimeClauses,
) -> ExecResult<Option<freshet_runtime::time::WatermarkDef>> {
    let Some((col, delay)) = &time.watermark else {
        return Ok(None);
    };
    let Some((idx, field)) = schema
        .fields()
        .iter()
        .enumerate()
        .find(|(_, f)| f.name() == col)
    else {
        return Err(ExecError::new(
            code::UNDEFINED_COLUMN,
            format!("WATERMARK FOR: column \"{col}\" does not exist"),
        ));
    };
    if !freshet_runtime::time::is_event_time_type(field.data_type()) {
        return Err(ExecError::new(
            code::DATATYPE_MISMATCH,
            format!(
                "WATERMARK FOR: column \"{col}\" must be a timestamp, not {}",
                field.data_type()
            ),
        ));
    }
    let bad = || {
        ExecError::new(
            code::INVALID_PARAMETER,
            format!("WATERMARK FOR {col}: invalid interval '{delay}'"),
        )
    };
    let v = ScalarValue::Utf8(Some(delay.clone()))
        .cast_to(&DataType::Interval(
            datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
        ))
        .map_err(|_| bad())?;
    let ScalarValue::IntervalMonthDayNano(Some(i)) = v else {
        return Err(bad());
    };
    if i.months != 0 {
        return Err(ExecError::not_supported(
            "a WATERMARK delay in months or years (use days, hours, minutes or seconds)",
        ));
    }
    let delay_ns = i64::from(i.days)
        .checked_mul(86_400_000_000_000)
        .and_then(|d| d.checked_add(i.nanoseconds))
        .filter(|d| *d >= 0)
        .ok_or_else(bad)?;
    Ok(Some(freshet_runtime::time::WatermarkDef {
        col: idx,
        delay_ns,
    }))
}

/// Resolves a new reader's start positions as catalog writes.
async fn initial_state_writes(
    spec: Arc<SourceSpec>,
    key: ReaderKey,
) -> ExecResult<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
    let state = tokio::task::spawn_blocking(move || freshet_runtime::source::initial_state(&spec))
        .await
        .map_err(|e| ExecError::new(code::INTERNAL, e.to_string()))?
        .map_err(|e| ExecError::from(freshet_runtime::RuntimeError::from(e)))?;
    Ok(state
        .into_iter()
        .map(|(split, v)| (key.state_key(&split), Some(v.to_be_bytes().to_vec())))
        .collect())
}

/// Sources hold no rows: a query must read them through a materialized view.
fn refuse_sources(plan: &LogicalPlan) -> ExecResult<()> {
    if let Some(r) = referenced_relations(plan)
        .iter()
        .find(|r| r.kind == RelKind::Source)
    {
        return Err(ExecError::not_supported(format!(
            "cannot query source \"{0}\" directly: a source stores no rows; create a materialized view over it (CREATE MATERIALIZED VIEW ... AS SELECT ... FROM {0})",
            r.name
        )));
    }
    Ok(())
}

/// Applies PostgreSQL's names for unnamed output columns.
fn rename(schema: &SchemaRef, q: &datafusion::sql::sqlparser::ast::Query) -> SchemaRef {
    match crate::colnames::pg_column_names(q) {
        Some(names)
            if names.len() == schema.fields().len() && names.iter().any(Option::is_some) =>
        {
            Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .zip(names)
                    .map(|(f, n)| match n {
                        Some(n) => f.as_ref().clone().with_name(n),
                        None => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            ))
        }
        _ => schema.clone(),
    }
}

/// Refuses functions whose value depends on when they run (`now()`,
/// `random()`): the optimizer would freeze them at CREATE time.
fn reject_nondeterministic(plan: &LogicalPlan) -> ExecResult<()> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut bad: Option<String> = None;
    plan.apply_with_subqueries(|p| {
        p.apply_expressions(|e| {
            e.apply(|x| {
                if let datafusion::logical_expr::Expr::ScalarFunction(f) = x {
                    if f.func.signature().volatility != Volatility::Immutable
                        && f.func.name() != freshet_planner::tvf::PROCTIME
                    {
                        bad = Some(format!("{}()", f.func.name()));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match bad {
        Some(f) => Err(ExecError::not_supported(format!(
            "the time- or randomness-dependent function {f} is not supported in materialized views yet"
        ))),
        None => Ok(()),
    }
}

fn target(r: &Relation, keys: Option<Vec<Vec<u8>>>) -> ReadTarget {
    match r.kind {
        RelKind::Table => ReadTarget::Table {
            id: r.id,
            schema: nullable(&r.schema),
            keys,
        },
        // Sources never reach here (refused before loading); an empty view
        // read keeps this total.
        RelKind::View => ReadTarget::View {
            id: r.id,
            schema: r.schema.clone(),
            keyed: r.pk.is_some(),
            keys: keys.filter(|_| r.pk.is_some()),
        },
        RelKind::Source | RelKind::PlainView => ReadTarget::View {
            id: r.id,
            schema: r.schema.clone(),
            keyed: false,
            keys: None,
        },
    }
}

fn rowkeys(batches: &[RecordBatch]) -> ExecResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for b in batches {
        let idx = b.schema().index_of(ROWKEY_COLUMN)?;
        let col = b.column(idx);
        let keys = col
            .as_binary_opt::<i32>()
            .ok_or_else(|| ExecError::new(code::INTERNAL, "row key column is not binary"))?;
        for i in 0..keys.len() {
            out.push(keys.value(i).to_vec());
        }
    }
    Ok(out)
}

fn bind(plan: LogicalPlan, params: Option<ParamValues>) -> ExecResult<LogicalPlan> {
    match params {
        Some(p) => Ok(plan.with_param_values(p)?),
        None => Ok(plan),
    }
}

fn param_types(plan: &LogicalPlan) -> ExecResult<Vec<Option<DataType>>> {
    Ok(crate::params::infer_types(plan))
}

pub fn normalize_ident(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        s[1..s.len() - 1].replace("\"\"", "\"")
    } else {
        s.to_lowercase()
    }
}

fn ident_name(v: &[datafusion::sql::sqlparser::ast::Ident]) -> String {
    v.iter()
        .map(|i| i.value.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" | "t" => Some(true),
        "false" | "off" | "0" | "no" | "f" => Some(false),
        _ => None,
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn name_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("Name", DataType::Utf8, false)]))
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
    ]))
}

fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        false,
    )]))
}

fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

fn text_rows(schema: SchemaRef, rows: Vec<String>) -> Output {
    match RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(rows))]) {
        Ok(b) => Output::Rows {
            schema,
            batches: vec![b],
        },
        Err(_) => Output::Rows {
            schema,
            batches: vec![],
        },
    }
}

/// Plain views a query names (DataFusion expands them while planning, so
/// the plan no longer shows them): a view over one depends on it.
fn plain_views_named(
    cat: &Catalog,
    query: &datafusion::sql::sqlparser::ast::Query,
) -> Vec<TableId> {
    let mut out = Vec::new();
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        let n = normalize_ident(&name.0.last().map(|p| p.to_string()).unwrap_or_default());
        if let Some(e) = cat.get(&n) {
            if e.rel.kind == RelKind::PlainView && !out.contains(&e.rel.id) {
                out.push(e.rel.id);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// The defining query of a (materialized) view, as `pg_get_viewdef` shows it.
fn view_definition(e: &CatalogEntry) -> Option<String> {
    if !matches!(e.rel.kind, RelKind::View | RelKind::PlainView) {
        return None;
    }
    match crate::dialect::parse_one(&e.ddl) {
        Ok(Parsed::Sql(stmt)) => match *stmt {
            Statement::CreateView(cv) => Some(format!(" {};", cv.query)),
            _ => None,
        },
        _ => None,
    }
}

/// The logical plan of a `CREATE VIEW`'s query in `ctx` (with its column
/// names applied), and the query text.
async fn plan_plain_view(
    ctx: &SessionContext,
    stmt: &Statement,
) -> ExecResult<(LogicalPlan, String)> {
    let Statement::CreateView(cv) = stmt else {
        return Err(ExecError::new(code::INTERNAL, "expected CREATE VIEW"));
    };
    let mut plan = ctx
        .state()
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(
            cv.query.clone(),
        ))))
        .await
        .and_then(freshet_planner::pg::type_literals)?;
    if !cv.columns.is_empty() {
        let schema = plan.schema().clone();
        if cv.columns.len() != schema.fields().len() {
            return Err(ExecError::new(
                code::SYNTAX,
                format!(
                    "view has {} columns but {} column names were given",
                    schema.fields().len(),
                    cv.columns.len()
                ),
            ));
        }
        let exprs: Vec<datafusion::logical_expr::Expr> = cv
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (q, f) = schema.qualified_field(i);
                datafusion::logical_expr::Expr::Column(datafusion::common::Column::from((q, f)))
                    .alias(normalize_ident(&c.name.to_string()))
            })
            .collect();
        plan = datafusion::logical_expr::LogicalPlanBuilder::from(plan)
            .project(exprs)?
            .build()?;
    }
    Ok((plan, cv.query.to_string()))
}

/// Where a user's password secret is kept (`""` gives the prefix).
fn user_key(name: &str) -> Vec<u8> {
    freshet_storage::keys::meta_key(&format!("user/{name}"))
}

/// A setting's key as stored in [`Session::settings`]: lower case, with
/// PostgreSQL's multi-word aliases mapped (`SHOW TRANSACTION ISOLATION LEVEL`).
pub fn setting_name(name: &str) -> String {
    let key = name.trim().to_ascii_lowercase();
    let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
    match key.as_str() {
        "transaction isolation level" => "transaction_isolation".into(),
        "time zone" => "timezone".into(),
        "session authorization" => "session_authorization".into(),
        _ => key,
    }
}

/// A function of no arguments that returns `value` (`current_user`, the
/// user the connection logged in as; `version()`, ...).
fn constant_udf(name: &str, value: String) -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

/// `current_setting(name [, missing_ok])` over a session's settings.
fn current_setting_udf(settings: BTreeMap<String, String>) -> datafusion::logical_expr::ScalarUDF {
    datafusion::logical_expr::create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::arrow::compute::cast(&names[0], &DataType::Utf8)?;
            let names = names
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal("current_setting".into())
                })?;
            let mut out = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                if names.is_null(i) {
                    out.push(None);
                    continue;
                }
                let key = setting_name(names.value(i));
                match settings.get(&key) {
                    Some(v) => out.push(Some(v.clone())),
                    None => {
                        return Err(datafusion::error::DataFusionError::Execution(format!(
                            "unrecognized configuration parameter \"{}\"",
                            names.value(i)
                        )))
                    }
                }
            }
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
        }),
    )
}

/// Registers the PostgreSQL functions Freshet adds to DataFusion's.
fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(constant_udf(
        "version",
        format!(
            "PostgreSQL {PG_VERSION} (Freshet {}) on x86_64-pc-linux-gnu, a streaming SQL database",
            env!("CARGO_PKG_VERSION")
        ),
    ));
    ctx.register_udf(constant_udf("current_database", "freshet".into()));
    ctx.register_udf(constant_udf("current_schema", "public".into()));
}

/// Whether `name` is a function DataFusion or Freshet defines.
fn builtin_function(ctx: &SessionContext, name: &str) -> bool {
    use datafusion::execution::FunctionRegistry;
    ctx.udf(name).is_ok() || ctx.udaf(name).is_ok() || ctx.udwf(name).is_ok()
}
