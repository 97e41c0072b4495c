//! PostgreSQL's names for unnamed output columns.
//!
//! DataFusion names `count(*)` "count(*)" and `1 + 2` "Int64(1) + Int64(2)";
//! PostgreSQL names them `count` and `?column?`, and clients and BI tools key
//! off those names. For a plain `SELECT` list (no `*`), each unaliased item
//! gets PostgreSQL's name: a column keeps its name, a function call takes the
//! function's name, `CASE` is `case`, anything else is `?column?`.

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
    let mut seen = std::collections::HashSet::new();
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(e) = item {
            if !seen.insert(e.to_string()) {
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
        Expr::Function(f) => f
            .name
            .0
            .last()
            .map(|p| p.to_string().trim_matches('"').to_lowercase()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => match expr.as_ref() {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Function(_)
            | Expr::Nested(_)
            | Expr::Cast { .. } => expr_name(expr),
            _ => Some("?column?".into()),
        },
        Expr::Case { .. } => Some("case".into()),
        _ => Some("?column?".into()),
    }
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
            SelectItem::ExprWithAlias { expr, alias } if alias.value.starts_with(DUP_PREFIX) => out
                .push(Some(expr_name(expr).unwrap_or_else(|| match expr {
                    Expr::Identifier(i) => i.value.clone(),
                    Expr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.clone()).unwrap_or_default()
                    }
                    _ => "?column?".into(),
                }))),
            SelectItem::ExprWithAlias { .. } => out.push(None),
            _ => return None,
        }
    }
    Some(out)
}
