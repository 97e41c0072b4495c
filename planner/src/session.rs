//! DataFusion session setup shared by planning and ad-hoc queries.

use std::sync::Arc;

use datafusion::common::config::Dialect;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::relation::{QueryData, Relation, RelationProvider};

/// A fresh DataFusion context with Freshet's settings: PostgreSQL dialect,
/// plain `Utf8` strings, the `public` schema as default, JSON functions,
/// PostgreSQL's `to_char`.
pub fn new_context() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema("freshet", "public")
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true)
        .with_target_partitions(2)
        .with_extension(Arc::new(crate::tvf::TvfRelations::default()));
    {
        let opts = config.options_mut();
        opts.sql_parser.dialect = Dialect::PostgreSQL;
        opts.sql_parser.map_string_types_to_utf8view = false;
        // `1.5` is numeric, as in PostgreSQL.
        opts.sql_parser.parse_float_as_decimal = true;
        opts.execution.time_zone = Some("+00:00".to_string());
    }
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_analyzer_rules(crate::pg::analyzer_rules())
        .build();
    let planners = crate::pg::expr_planners(state.expr_planners().to_vec());
    let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
        .with_expr_planners(planners)
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    crate::pg::register(&ctx);
    crate::tvf::register(&ctx);
    // PostgreSQL's to_char templates (DataFusion's takes chrono's).
    ctx.register_udf(crate::to_char::to_char_udf());
    for f in crate::to_timestamp::functions() {
        ctx.register_udf(f);
    }
    // JSON functions and the `->` / `->>` operators over JSON text.
    if let Err(e) = datafusion_functions_json::register_all(&mut ctx) {
        tracing::warn!("JSON functions unavailable: {e}");
    }
    ctx
}

/// Registers `rels` in `ctx`, backed by `data` when the query runs. Plain
/// views are registered separately, once their queries are planned.
pub fn register(
    ctx: &SessionContext,
    rels: &[Arc<Relation>],
    with_rowkey: bool,
    data: &Arc<QueryData>,
) -> datafusion::error::Result<()> {
    for r in rels
        .iter()
        .filter(|r| r.kind != crate::relation::RelKind::PlainView)
    {
        let provider = RelationProvider::new(r.clone(), with_rowkey, data.clone());
        register_provider(ctx, r.name.as_str(), Arc::new(provider))?;
    }
    Ok(())
}

/// Registers a table provider under `name`, also for window functions
/// (`TUMBLE(name, ...)`).
pub fn register_provider(
    ctx: &SessionContext,
    name: &str,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
) -> datafusion::error::Result<()> {
    if let Some(rels) = ctx
        .state()
        .config()
        .get_extension::<crate::tvf::TvfRelations>()
    {
        rels.insert(name, provider.clone());
    }
    ctx.register_table(name, provider)?;
    Ok(())
}
