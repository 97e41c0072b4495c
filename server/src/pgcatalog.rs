//! `pg_catalog` for clients (psql, drivers, BI tools): the tables and
//! functions of `datafusion-pg-catalog`, fed from Freshet's catalog, with
//! Freshet's object kinds (materialized views are `relkind = 'm'`, sources
//! `'f'`), comments in `pg_description`, and OIDs that stay the same from one
//! query to the next (clients look an object up, then query by its OID).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, Int32Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{
    self as pgc, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use freshet_planner::relation::RelKind;

/// The database (catalog) name clients see.
pub const DATABASE: &str = "freshet";
/// The one user schema.
pub const SCHEMA: &str = "public";
/// Its OID, PostgreSQL's for `public` (tools and replayed catalog queries
/// use it).
pub const SCHEMA_OID: i32 = 2200;

/// One object as the catalog tables show it.
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub schema: SchemaRef,
    pub kind: ObjectKind,
    /// `COMMENT ON` the object (column 0) and its columns (1-based).
    pub comments: Vec<(i32, String)>,
    /// The defining query of a view or materialized view.
    pub definition: Option<String>,
    /// Primary key columns, in key order (tables only).
    pub pk: Vec<String>,
}

/// What kind of relation an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Table,
    MaterializedView,
    View,
    Source,
}

impl ObjectKind {
    pub fn of(kind: RelKind) -> Self {
        match kind {
            RelKind::Table => ObjectKind::Table,
            RelKind::View => ObjectKind::MaterializedView,
            RelKind::Source => ObjectKind::Source,
            RelKind::PlainView => ObjectKind::View,
        }
    }

    fn relkind(self) -> &'static str {
        match self {
            ObjectKind::Table => "r",
            ObjectKind::MaterializedView => "m",
            ObjectKind::View => "v",
            ObjectKind::Source => "f",
        }
    }
}

/// The objects of the current catalog, replaced on every change.
#[derive(Debug, Clone, Default)]
struct Objects(Arc<RwLock<Arc<Vec<Object>>>>);

impl Objects {
    fn get(&self) -> Arc<Vec<Object>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn find(&self, name: &str) -> Option<Object> {
        self.get().iter().find(|o| o.name == name).cloned()
    }
}

#[async_trait]
impl CatalogInfo for Objects {
    async fn catalog_names(&self) -> Result<Vec<String>> {
        Ok(vec![DATABASE.to_string()])
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>> {
        Ok((catalog == DATABASE).then(|| vec![SCHEMA.to_string()]))
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> Result<Option<Vec<String>>> {
        if catalog != DATABASE || schema != SCHEMA {
            return Ok(None);
        }
        Ok(Some(self.get().iter().map(|o| o.name.clone()).collect()))
    }

    async fn table_schema(&self, _c: &str, _s: &str, table: &str) -> Result<Option<SchemaRef>> {
        Ok(self.find(table).map(|o| o.schema))
    }

    async fn table_type(&self, _c: &str, _s: &str, table: &str) -> Result<Option<TableType>> {
        Ok(self.find(table).map(|o| match o.kind {
            ObjectKind::Table | ObjectKind::Source => TableType::Base,
            ObjectKind::MaterializedView | ObjectKind::View => TableType::View,
        }))
    }
}

type Inner = PgCatalogSchemaProvider<Objects, EmptyContextProvider>;

/// The long-lived `pg_catalog`: one per server, so OIDs are stable.
pub struct PgCatalog {
    objects: Objects,
    inner: Arc<Inner>,
    static_tables: Arc<PgCatalogStaticTables>,
    index: crate::pgfuncs::OidIndex,
}

fn static_tables() -> Result<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<Arc<PgCatalogStaticTables>> = OnceLock::new();
    if let Some(t) = TABLES.get() {
        return Ok(t.clone());
    }
    let t = Arc::new(PgCatalogStaticTables::try_new()?);
    Ok(TABLES.get_or_init(|| t).clone())
}

impl PgCatalog {
    pub fn new() -> Result<Self> {
        let objects = Objects::default();
        let static_tables = static_tables()?;
        let inner = Arc::new(PgCatalogSchemaProvider::try_new(
            objects.clone(),
            static_tables.clone(),
            EmptyContextProvider,
        )?);
        Ok(PgCatalog {
            objects,
            inner,
            static_tables,
            index: Default::default(),
        })
    }

    /// Replaces the objects the catalog tables describe.
    pub fn set_objects(&self, objects: Vec<Object>) {
        let mut g = match self.objects.0.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Arc::new(objects);
    }

    /// Registers `pg_catalog` and the PostgreSQL functions clients call in `ctx`.
    pub fn install(&self, ctx: &SessionContext) -> Result<()> {
        let schema = Arc::new(FreshetPgCatalog {
            inner: self.inner.clone(),
            objects: self.objects.clone(),
            index: self.index.clone(),
        });
        ctx.catalog(DATABASE)
            .ok_or_else(|| DataFusionError::Plan(format!("catalog {DATABASE} missing")))?
            .register_schema("pg_catalog", schema)?;
        ctx.register_udf(pgc::create_current_database_udf(DATABASE));
        ctx.register_udf(pgc::create_current_schema_udf());
        ctx.register_udf(pgc::create_current_schemas_udf());
        ctx.register_udf(pgc::create_pg_get_userbyid_udf());
        for name in [
            "has_table_privilege",
            "has_schema_privilege",
            "has_database_privilege",
            "has_any_column_privilege",
        ] {
            ctx.register_udf(pgc::has_privilege_udf::create_has_privilege_udf(name));
        }
        ctx.register_udf(pgc::create_pg_table_is_visible());
        ctx.register_udf(pgc::format_type::create_format_type_udf());
        ctx.register_udf(pgc::create_session_user_udf());
        ctx.register_udtf(
            "pg_get_keywords",
            self.static_tables.pg_get_keywords.clone(),
        );
        ctx.register_udf(pgc::pg_get_expr_udf::create_pg_get_expr_udf());
        ctx.register_udf(pgc::create_pg_get_partkeydef_udf());
        ctx.register_udf(pgc::create_pg_relation_is_publishable_udf());
        ctx.register_udf(pgc::create_pg_get_statisticsobjdef_columns_udf());
        ctx.register_udf(pgc::create_pg_encoding_to_char_udf());
        ctx.register_udf(pgc::create_pg_backend_pid_udf());
        ctx.register_udf(pgc::create_pg_relation_size_udf());
        ctx.register_udf(pgc::create_pg_total_relation_size_udf());
        ctx.register_udf(pgc::create_pg_stat_get_numscans());
        ctx.register_udf(pgc::create_pg_get_constraintdef());
        ctx.register_udf(pgc::create_pg_get_partition_ancestors_udf());
        ctx.register_udf(pgc::quote_ident_udf::create_quote_ident_udf());
        ctx.register_udf(pgc::quote_ident_udf::create_parse_ident_udf());
        ctx.register_udf(pgc::array_bounds_udf::create_array_upper_udf());
        ctx.register_udf(pgc::array_bounds_udf::create_array_lower_udf());
        {
            use datafusion::execution::session_state::SessionStateBuilder;
            let state = ctx.state_ref();
            let existing = state.read().clone();
            let new_state = SessionStateBuilder::new_from_existing(existing)
                .with_type_planner(Arc::new(PgTypePlanner))
                .build();
            *state.write() = new_state;
        }
        pgc::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
        crate::pgfuncs::register(ctx, &self.index);
        Ok(())
    }
}

/// `pg_catalog` as one query sees it: the library's tables, with `pg_class`
/// and `pg_description` adjusted to Freshet's objects.
#[derive(Debug)]
struct FreshetPgCatalog {
    inner: Arc<Inner>,
    objects: Objects,
    index: crate::pgfuncs::OidIndex,
}

#[async_trait]
impl SchemaProvider for FreshetPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push("pg_policies".into());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case("pg_policies") {
            return Ok(Some(pg_policies()?));
        }
        if name == crate::infoschema::COLUMNS_TABLE {
            let batch = crate::infoschema::columns(&self.objects.get())?;
            return Ok(Some(Arc::new(datafusion::datasource::MemTable::try_new(
                batch.schema(),
                vec![vec![batch]],
            )?)));
        }
        let Some(t) = self.inner.table(name).await? else {
            return Ok(None);
        };
        Ok(Some(match name.to_ascii_lowercase().as_str() {
            "pg_class" => Arc::new(Adjusted {
                inner: t,
                objects: self.objects.clone(),
                pg_class: None,
                index: self.index.clone(),
                fix: Fix::Relkind,
            }),
            "pg_namespace" => Arc::new(Adjusted {
                inner: t,
                objects: self.objects.clone(),
                pg_class: None,
                index: self.index.clone(),
                fix: Fix::Namespaces,
            }),
            "pg_index" | "pg_constraint" | "pg_attribute" => {
                let pg_class = self.inner.table("pg_class").await?;
                let fix = match name.to_ascii_lowercase().as_str() {
                    "pg_index" => Fix::Indexes,
                    "pg_constraint" => Fix::Constraints,
                    _ => Fix::Attributes,
                };
                Arc::new(Adjusted {
                    inner: t,
                    objects: self.objects.clone(),
                    pg_class,
                    index: self.index.clone(),
                    fix,
                })
            }
            "pg_description" => {
                let pg_class = self.inner.table("pg_class").await?;
                Arc::new(Adjusted {
                    inner: t,
                    objects: self.objects.clone(),
                    pg_class,
                    index: self.index.clone(),
                    fix: Fix::Comments,
                })
            }
            _ => t,
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("pg_policies")
            || name == crate::infoschema::COLUMNS_TABLE
            || self.inner.table_exist(name)
    }
}

/// The `pg_policies` view: Freshet has no row-level security, so no rows.
fn pg_policies() -> Result<Arc<dyn TableProvider>> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        text("schemaname"),
        text("tablename"),
        text("policyname"),
        text("permissive"),
        Field::new(
            "roles",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        text("cmd"),
        text("qual"),
        text("with_check"),
    ]));
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![]],
    )?))
}

#[derive(Debug, Clone, Copy)]
enum Fix {
    /// Sets `relkind` from the object kinds.
    Relkind,
    /// Adds a row per stored comment.
    Comments,
    /// Freshet's primary-key indexes, with array-typed vector columns.
    Indexes,
    /// Freshet's primary-key constraints, with array-typed key columns.
    Constraints,
    /// Adds the columns of primary-key indexes; key columns are NOT NULL.
    Attributes,
    /// Adds the system namespaces (`pg_catalog` is OID 11, as the static
    /// `pg_type` and `pg_proc` rows expect).
    Namespaces,
}

/// One row of `schema` with the given values; other columns NULL, or zero
/// where the column is not nullable.
pub(crate) fn row_batch(
    schema: &SchemaRef,
    values: &[(&str, datafusion::common::ScalarValue)],
) -> Result<RecordBatch> {
    use datafusion::common::ScalarValue;
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            let v = match values.iter().find(|(n, _)| n == f.name()) {
                Some((_, v)) => v.cast_to(f.data_type())?,
                None if f.is_nullable() => ScalarValue::try_from(f.data_type())?,
                None => ScalarValue::new_zero(f.data_type())
                    .or_else(|_| ScalarValue::try_from(f.data_type()))?,
            };
            v.to_array_of_size(1)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// A catalog table whose rows are read from the library's table and then
/// adjusted for Freshet.
#[derive(Debug)]
struct Adjusted {
    inner: Arc<dyn TableProvider>,
    objects: Objects,
    pg_class: Option<Arc<dyn TableProvider>>,
    index: crate::pgfuncs::OidIndex,
    fix: Fix,
}

async fn read_all(t: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<Vec<RecordBatch>> {
    let plan = t.scan(state, None, &[], None).await?;
    datafusion::physical_plan::collect(plan, state.task_ctx()).await
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            DataFusionError::Internal(format!("pg_catalog column {name} has an unexpected type"))
        })
}

/// The `oid` column as u32 values, whatever integer type the library uses.
fn oids(b: &RecordBatch) -> Result<Vec<u32>> {
    let c = b
        .column_by_name("oid")
        .ok_or_else(|| DataFusionError::Internal("pg_class has no oid".into()))?;
    let c = datafusion::arrow::compute::cast(c, &DataType::UInt32)?;
    let c = c
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| DataFusionError::Internal("oid cast".into()))?;
    Ok((0..c.len()).map(|i| c.value(i)).collect())
}

/// `batch` with `column` set to the user schema's OID in the marked rows.
fn with_oids(batch: RecordBatch, column: &str, rows: &[bool]) -> Result<RecordBatch> {
    if !rows.iter().any(|r| *r) {
        return Ok(batch);
    }
    let idx = batch.schema().index_of(column)?;
    let old = datafusion::arrow::compute::cast(batch.column(idx), &DataType::Int32)?;
    let old = old
        .as_any()
        .downcast_ref::<Int32Array>()
        .ok_or_else(|| DataFusionError::Internal(format!("{column} is not an OID")))?;
    let fixed: Int32Array = (0..batch.num_rows())
        .map(|i| {
            if rows[i] {
                Some(SCHEMA_OID)
            } else {
                old.is_valid(i).then(|| old.value(i))
            }
        })
        .collect();
    let mut cols = batch.columns().to_vec();
    cols[idx] = datafusion::arrow::compute::cast(&fixed, batch.schema().field(idx).data_type())?;
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

/// The tables with a primary key, with their OID and namespace from
/// `pg_class` batches.
fn keyed<'a>(
    objects: &'a [Object],
    pg_class: &[RecordBatch],
) -> Result<Vec<crate::pgkeys::Keyed<'a>>> {
    let mut found: HashMap<String, (i32, i32)> = HashMap::new();
    for b in pg_class {
        let names = column::<StringArray>(b, "relname")?;
        let ns = datafusion::arrow::compute::cast(
            b.column_by_name("relnamespace")
                .ok_or_else(|| DataFusionError::Internal("relnamespace".into()))?,
            &DataType::Int32,
        )?;
        let ns = ns
            .as_any()
            .downcast_ref::<Int32Array>()
            .ok_or_else(|| DataFusionError::Internal("relnamespace".into()))?;
        for (i, oid) in oids(b)?.into_iter().enumerate() {
            found.insert(names.value(i).to_string(), (oid as i32, ns.value(i)));
        }
    }
    Ok(objects
        .iter()
        .filter(|o| o.kind == ObjectKind::Table && !o.pk.is_empty())
        .filter_map(|o| {
            let (oid, _) = *found.get(&o.name)?;
            let namespace = SCHEMA_OID;
            let attnums =
                o.pk.iter()
                    .map(|c| o.schema.index_of(c).ok().map(|i| i as i16 + 1))
                    .collect::<Option<Vec<_>>>()?;
            Some(crate::pgkeys::Keyed {
                object: o,
                oid,
                namespace,
                attnums,
            })
        })
        .collect())
}

impl Adjusted {
    async fn rows(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let batches = read_all(&self.inner, state).await?;
        let objects = self.objects.get();
        let kind_of: HashMap<&str, ObjectKind> =
            objects.iter().map(|o| (o.name.as_str(), o.kind)).collect();
        match self.fix {
            Fix::Relkind => {
                // Remember which OID is which object, for the functions.
                let mut by_oid = HashMap::new();
                for b in &batches {
                    let names = column::<StringArray>(b, "relname")?;
                    for (i, oid) in oids(b)?.into_iter().enumerate() {
                        if let Some(o) = objects.iter().find(|o| o.name == names.value(i)) {
                            by_oid.insert(i64::from(oid), o.clone());
                        }
                    }
                }
                self.index.set(by_oid);
                let schema = self.schema();
                let keys = keyed(&objects, &batches)?;
                let with_index: std::collections::HashSet<&str> =
                    keys.iter().map(|k| k.object.name.as_str()).collect();
                let mut out: Vec<RecordBatch> = batches
                    .into_iter()
                    .map(|b| {
                        let names = column::<StringArray>(&b, "relname")?;
                        let kinds = column::<StringArray>(&b, "relkind")?;
                        let fixed: StringArray = (0..b.num_rows())
                            .map(|i| {
                                Some(match kind_of.get(names.value(i)) {
                                    Some(k) => k.relkind().to_string(),
                                    None => kinds.value(i).to_string(),
                                })
                            })
                            .collect();
                        let ours: Vec<bool> = (0..b.num_rows())
                            .map(|i| kind_of.contains_key(names.value(i)))
                            .collect();
                        let b = with_oids(b.clone(), "relnamespace", &ours)?;
                        let names = column::<StringArray>(&b, "relname")?;
                        let idx = b.schema().index_of("relkind")?;
                        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
                        cols[idx] = Arc::new(fixed);
                        if let Ok(h) = b.schema().index_of("relhasindex") {
                            let had = column::<datafusion::arrow::array::BooleanArray>(
                                &b,
                                "relhasindex",
                            )?;
                            let fixed: datafusion::arrow::array::BooleanArray = (0..b.num_rows())
                                .map(|i| Some(with_index.contains(names.value(i)) || had.value(i)))
                                .collect();
                            cols[h] = Arc::new(fixed);
                        }
                        // Columns the library lacks (reloptions), all NULL.
                        for f in schema.fields().iter().skip(cols.len()) {
                            cols.push(datafusion::arrow::array::new_null_array(
                                f.data_type(),
                                b.num_rows(),
                            ));
                        }
                        Ok(RecordBatch::try_new(schema.clone(), cols)?)
                    })
                    .collect::<Result<_>>()?;
                let inner = self.inner.schema();
                for k in &keys {
                    let row = crate::pgkeys::class_row(&inner, k)?;
                    let mut cols = row.columns().to_vec();
                    for f in schema.fields().iter().skip(cols.len()) {
                        cols.push(datafusion::arrow::array::new_null_array(f.data_type(), 1));
                    }
                    out.push(RecordBatch::try_new(schema.clone(), cols)?);
                }
                Ok(out)
            }
            Fix::Indexes | Fix::Constraints => {
                let Some(pg_class) = &self.pg_class else {
                    return Ok(vec![]);
                };
                let classes = read_all(pg_class, state).await?;
                let keys = keyed(&objects, &classes)?;
                let schema = self.schema();
                keys.iter()
                    .map(|k| match self.fix {
                        Fix::Indexes => crate::pgkeys::index_row(&schema, k),
                        _ => crate::pgkeys::constraint_row(&schema, k),
                    })
                    .collect()
            }
            Fix::Attributes => {
                let Some(pg_class) = &self.pg_class else {
                    return Ok(batches);
                };
                let classes = read_all(pg_class, state).await?;
                let keys = keyed(&objects, &classes)?;
                if keys.is_empty() {
                    return Ok(batches);
                }
                let mut out = Vec::with_capacity(batches.len() + keys.len());
                for b in &batches {
                    for k in &keys {
                        if let Some(rows) = crate::pgkeys::index_attributes(b, k)? {
                            out.push(rows);
                        }
                    }
                }
                for b in batches {
                    out.push(crate::pgkeys::key_columns_not_null(b, &keys)?);
                }
                Ok(out)
            }
            Fix::Namespaces => {
                use datafusion::common::ScalarValue;
                let mut have = std::collections::HashSet::new();
                for b in &batches {
                    let names = column::<StringArray>(b, "nspname")?;
                    for i in 0..b.num_rows() {
                        have.insert(names.value(i).to_string());
                    }
                }
                let schema = self.inner.schema();
                let mut out = batches
                    .into_iter()
                    .map(|b| {
                        let names = column::<StringArray>(&b, "nspname")?;
                        let public: Vec<bool> = (0..b.num_rows())
                            .map(|i| names.value(i) == SCHEMA)
                            .collect();
                        with_oids(b, "oid", &public)
                    })
                    .collect::<Result<Vec<_>>>()?;
                for (oid, name) in [
                    (11, "pg_catalog"),
                    (99, "pg_toast"),
                    (13000, "information_schema"),
                ] {
                    if !have.contains(name) {
                        out.push(row_batch(
                            &schema,
                            &[
                                ("oid", ScalarValue::Int32(Some(oid))),
                                ("nspname", ScalarValue::Utf8(Some(name.into()))),
                                ("nspowner", ScalarValue::Int32(Some(10))),
                            ],
                        )?);
                    }
                }
                Ok(out)
            }
            Fix::Comments => {
                let Some(pg_class) = &self.pg_class else {
                    return Ok(batches);
                };
                let mut oid_of: HashMap<String, u32> = HashMap::new();
                for b in read_all(pg_class, state).await? {
                    let names = column::<StringArray>(&b, "relname")?;
                    for (i, oid) in oids(&b)?.into_iter().enumerate() {
                        oid_of.insert(names.value(i).to_string(), oid);
                    }
                }
                let schema = self.inner.schema();
                let mut rows: Vec<(u32, u32, i32, String)> = Vec::new();
                for o in objects.iter() {
                    let Some(&oid) = oid_of.get(&o.name) else {
                        continue;
                    };
                    for (sub, text) in &o.comments {
                        // classoid 1259 is pg_class.
                        rows.push((oid, 1259, *sub, text.clone()));
                    }
                }
                if rows.is_empty() {
                    return Ok(batches);
                }
                let mut cols: Vec<ArrayRef> = Vec::new();
                for f in schema.fields() {
                    let col: ArrayRef = match f.name().as_str() {
                        "objoid" => {
                            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.0)))
                        }
                        "classoid" => {
                            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1)))
                        }
                        "objsubid" => {
                            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.2)))
                        }
                        "description" => Arc::new(StringArray::from_iter_values(
                            rows.iter().map(|r| r.3.as_str()),
                        )),
                        other => {
                            return Err(DataFusionError::Internal(format!(
                                "unexpected pg_description column {other}"
                            )))
                        }
                    };
                    cols.push(datafusion::arrow::compute::cast(&col, f.data_type())?);
                }
                let mut out = batches;
                out.push(RecordBatch::try_new(schema, cols)?);
                Ok(out)
            }
        }
    }
}

#[async_trait]
impl TableProvider for Adjusted {
    fn schema(&self) -> SchemaRef {
        let inner = self.inner.schema();
        match self.fix {
            Fix::Indexes => return crate::pgkeys::schema_with_arrays("pg_index", &inner),
            Fix::Constraints => return crate::pgkeys::schema_with_arrays("pg_constraint", &inner),
            _ => {}
        }
        if matches!(self.fix, Fix::Relkind) && inner.index_of("reloptions").is_err() {
            let mut fields: Vec<datafusion::arrow::datatypes::FieldRef> =
                inner.fields().iter().cloned().collect();
            fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
                "reloptions",
                DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
                    "item",
                    DataType::Utf8,
                    true,
                ))),
                true,
            )));
            return Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        }
        inner
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.rows(state).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[rows],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// PostgreSQL type names clients cast to that DataFusion lacks: `name`,
/// `"char"`, `pg_node_tree`, and the vector types as arrays, then the
/// library's OID aliases (`regclass`, `oid`, ...).
#[derive(Debug)]
struct PgTypePlanner;

impl datafusion::logical_expr::planner::TypePlanner for PgTypePlanner {
    fn plan_type_field(
        &self,
        sql_type: &datafusion::sql::sqlparser::ast::DataType,
    ) -> Result<Option<datafusion::arrow::datatypes::FieldRef>> {
        use datafusion::arrow::datatypes::Field;
        use datafusion::sql::sqlparser::ast::{DataType as T, ObjectNamePart};
        let name = match sql_type {
            T::Custom(name, args) if args.is_empty() => match name.0.last() {
                Some(ObjectNamePart::Identifier(i)) => i.value.to_ascii_lowercase(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        let t = match name.as_str() {
            "name" | "char" | "pg_node_tree" | "unknown" => Some(DataType::Utf8),
            "int2vector" => Some(list(DataType::Int16)),
            "oidvector" => Some(list(DataType::Int32)),
            "xid" | "cid" => Some(DataType::Int64),
            _ => None,
        };
        if let Some(t) = t {
            return Ok(Some(Arc::new(Field::new("", t, true))));
        }
        pgc::oid_type_planner::PgOidTypePlanner.plan_type_field(sql_type)
    }
}
