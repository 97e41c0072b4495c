//! PostgreSQL's names for unnamed output columns.
//!
//! DataFusion names `count(*)` "count(*)" and `1 + 2` "Int64(1) + Int64(2)";
//! PostgreSQL names them `count` and `?column?`, and clients and BI tools key
//! off those names. For a plain `SELECT` list (no `*`), each unaliased item
//! gets PostgreSQL's name: a column keeps its name (also through a cast), a
//! function call takes the function's name, a cast of anything else its
//! type's (`int8`), `CASE` is `case`, anything else is `?column?`.

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr};

/// Alias prefix of select items that would repeat an earlier item's name.
const DUP_PREFIX: &str = "__freshet_dup_";

/// PostgreSQL allows a select list to repeat an unnamed expression
/// (`SELECT NULL, NULL`); DataFusion needs distinct names. Repeats get a
/// private alias, which [`pg_column_names`] maps back to PostgreSQL's name.
pub fn disambiguate(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    // DataFusion names `x::text` and `(x)` after `x`, and `t.x` like `x`.
    fn key(e: &Expr) -> String {
        match e {
            Expr::Cast { expr, .. } | Expr::Nested(expr) => key(expr),
            Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()).unwrap_or_default(),
            Expr::Identifier(i) => i.value.clone(),
            other => {
                // Casts inside do not count either: `round(2.5)` and
                // `round(2.5::float8)` end up with one name once the
                // literal's cast is folded.
                let mut e = other.clone();
                let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut e, |x| {
                    while let Expr::Cast { expr, .. } | Expr::Nested(expr) = x {
                        *x = expr.as_ref().clone();
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
                e.to_string()
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(e) = item {
            if !seen.insert(key(e)) {
                *item = SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: Ident::new(format!("{DUP_PREFIX}{i}")),
                };
            }
        }
    }
}

fn expr_name(e: &Expr) -> Option<String> {
    match e {
        // Column references: DataFusion's name is already PostgreSQL's.
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        other => Some(figure(other).1),
    }
}

/// PostgreSQL's column name for an expression, with how strongly it holds
/// (as its `FigureColname`): 2 for a column or function name, 1 for a type
/// or keyword name, 0 for `?column?`. A cast keeps a strong name of its
/// operand and otherwise takes the type's (`42::bigint` is `int8`).
fn figure(e: &Expr) -> (u8, String) {
    use datafusion::sql::sqlparser::ast::Value;
    match e {
        Expr::Identifier(i) => (2, i.value.clone()),
        Expr::CompoundIdentifier(p) => (2, p.last().map(|i| i.value.clone()).unwrap_or_default()),
        Expr::Function(f) => (
            2,
            f.name
                .0
                .last()
                .map(|p| p.to_string().trim_matches('"').to_lowercase())
                .unwrap_or_default(),
        ),
        Expr::Nested(inner) => figure(inner),
        // A bound parameter (`SELECT $1`, typed from its declaration).
        Expr::Cast { expr, .. } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_))) => {
            (0, "?column?".into())
        }
        Expr::Cast {
            expr, data_type, ..
        } => match figure(expr) {
            (2, name) => (2, name),
            _ => (1, type_column_name(data_type)),
        },
        Expr::TypedString(t) => (1, type_column_name(&t.data_type)),
        Expr::Array(_) => (2, "array".into()),
        Expr::Interval(_) => (1, "interval".into()),
        Expr::Case { .. } => (1, "case".into()),
        Expr::Value(v) if matches!(v.value, Value::Boolean(_)) => (1, "bool".into()),
        _ => (0, "?column?".into()),
    }
}

/// PostgreSQL's name of a type, which names a cast's column (`int8`).
fn type_column_name(t: &datafusion::sql::sqlparser::ast::DataType) -> String {
    let full = t.to_string().to_ascii_lowercase();
    let base = full.trim_end_matches("[]");
    let base = base.split('(').next().unwrap_or(base).trim();
    let base = base.rsplit('.').next().unwrap_or(base);
    match base {
        "bigint" | "int8" => "int8",
        "int" | "integer" | "int4" => "int4",
        "smallint" | "int2" => "int2",
        "double precision" | "double" | "float8" | "float" => "float8",
        "real" | "float4" => "float4",
        "numeric" | "decimal" => "numeric",
        "varchar" | "character varying" => "varchar",
        "char" | "character" | "bpchar" => "bpchar",
        "boolean" | "bool" => "bool",
        "timestamp" | "timestamp without time zone" => "timestamp",
        "timestamptz" | "timestamp with time zone" => "timestamptz",
        "time" | "time without time zone" => "time",
        other => other,
    }
    .trim_matches('"')
    .to_string()
}

/// PostgreSQL names for the output columns of `query`, position by position
/// (`None` keeps DataFusion's name). `None` when the select list cannot be
/// mapped one to one (wildcards, set operations).
pub fn pg_column_names(query: &Query) -> Option<Vec<Option<String>>> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let mut out = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => out.push(expr_name(e)),
            SelectItem::ExprWithAlias { expr, alias } if alias.value.starts_with(DUP_PREFIX) => {
                out.push(Some(figure(expr).1))
            }
            SelectItem::ExprWithAlias { .. } => out.push(None),
            _ => return None,
        }
    }
    Some(out)
}
