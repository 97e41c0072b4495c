//! SQL functions: `CREATE [OR REPLACE] FUNCTION ... LANGUAGE SQL` and
//! `DROP FUNCTION`, their catalog records (`function/<name>` in the
//! metadata keyspace, holding the DDL), and their registration in every
//! session (`freshet_planner::sqlfunc` compiles and inlines them).

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::ExprSchemable;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CreateFunction, CreateFunctionBody, Expr, FunctionBehavior, FunctionReturnType, SetExpr,
    Statement, Value, VisitMut, VisitorMut,
};
use freshet_planner::sqlfunc::{compile, param_column, SqlFunctionDef};
use freshet_storage::keys::meta_key;

use crate::error::{code, ExecError, ExecResult};

const PREFIX: &str = "function/";

/// The catalog key of function `name`.
pub fn key(name: &str) -> Vec<u8> {
    meta_key(&format!("{PREFIX}{name}"))
}

/// The prefix of every function's key.
pub fn prefix() -> Vec<u8> {
    meta_key(PREFIX)
}

/// A defined function: its compiled form's definition and the DDL that
/// re-creates it.
#[derive(Debug, Clone)]
pub struct Function {
    pub def: SqlFunctionDef,
    pub ddl: String,
    /// Creation order (functions may call the ones made before them).
    pub seq: u64,
}

/// Functions by name.
pub type Functions = BTreeMap<String, Function>;

/// The Arrow type of a SQL type name, as Freshet's tables use it.
fn arrow_type(
    ctx: &SessionContext,
    t: &datafusion::sql::sqlparser::ast::DataType,
) -> ExecResult<DataType> {
    let e = ctx.state().create_logical_expr(
        &format!("CAST(NULL AS {t})"),
        &datafusion::common::DFSchema::empty(),
    )?;
    Ok(e.get_type(&datafusion::common::DFSchema::empty())?)
}

/// Renames parameter references (by name or `$n`) to their internal
/// column names.
struct Params<'a>(&'a [String]);

impl VisitorMut for Params<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> std::ops::ControlFlow<()> {
        let idx = match e {
            Expr::Identifier(i) => self.0.iter().position(|p| p.eq_ignore_ascii_case(&i.value)),
            Expr::CompoundIdentifier(_) => None,
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => p
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| n.checked_sub(1)),
                _ => None,
            },
            _ => None,
        };
        if let Some(i) = idx {
            *e = Expr::Identifier(datafusion::sql::sqlparser::ast::Ident::with_quote(
                '"',
                param_column(i),
            ));
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// The body expression of a function: `RETURN expr`, or `AS $$ SELECT expr
/// $$` (one expression, no FROM).
fn body_expr(f: &CreateFunction) -> ExecResult<Expr> {
    let not_scalar = || {
        ExecError::not_supported(
            "a SQL function body other than one expression (SELECT expr, or RETURN expr)",
        )
    };
    match &f.function_body {
        Some(CreateFunctionBody::Return(e)) => Ok(e.clone()),
        Some(CreateFunctionBody::AsBeforeOptions { body, .. })
        | Some(CreateFunctionBody::AsAfterOptions(body)) => {
            let text = match body {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    Value::DollarQuotedString(d) => d.value.clone(),
                    _ => return Err(not_scalar()),
                },
                _ => return Err(not_scalar()),
            };
            let mut stmts = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
                &text,
            )
            .map_err(|e| {
                ExecError::new(code::SYNTAX, format!("syntax error in function body: {e}"))
            })?;
            let Some(Statement::Query(q)) = stmts.pop().filter(|_| stmts.is_empty()) else {
                return Err(not_scalar());
            };
            let SetExpr::Select(s) = q.body.as_ref() else {
                return Err(not_scalar());
            };
            if !s.from.is_empty() || s.projection.len() != 1 || s.selection.is_some() {
                return Err(not_scalar());
            }
            match &s.projection[0] {
                datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e)
                | datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    Ok(e.clone())
                }
                _ => Err(not_scalar()),
            }
        }
        _ => Err(not_scalar()),
    }
}

/// The definition `CREATE FUNCTION` gives, checked by compiling it in
/// `ctx`.
pub fn define(ctx: &SessionContext, f: &CreateFunction) -> ExecResult<SqlFunctionDef> {
    if let Some(lang) = &f.language {
        if !lang.value.eq_ignore_ascii_case("sql") {
            return Err(ExecError::not_supported(format!(
                "functions in LANGUAGE {}",
                lang.value
            )));
        }
    }
    let returns = match &f.return_type {
        Some(FunctionReturnType::DataType(t)) => arrow_type(ctx, t)?,
        Some(FunctionReturnType::SetOf(_)) => {
            return Err(ExecError::not_supported(
                "set-returning SQL functions (RETURNS SETOF)",
            ))
        }
        None => return Err(ExecError::not_supported("a SQL function without RETURNS")),
    };
    let mut names = Vec::new();
    let mut params = Vec::new();
    for a in f.args.iter().flatten() {
        if a.default_expr.is_some() {
            return Err(ExecError::not_supported(
                "parameter defaults of SQL functions",
            ));
        }
        if matches!(&a.mode, Some(m) if !matches!(m, datafusion::sql::sqlparser::ast::ArgMode::In))
        {
            return Err(ExecError::not_supported("OUT and INOUT parameters"));
        }
        let name = a.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
        let t = arrow_type(ctx, &a.data_type)?;
        names.push(name.clone());
        params.push((name, t));
    }
    let mut body = body_expr(f)?;
    let _ = body.visit(&mut Params(&names));
    let def = SqlFunctionDef {
        name: f.name.to_string().to_ascii_lowercase(),
        params,
        returns,
        body: body.to_string(),
        volatile: matches!(f.behavior, Some(FunctionBehavior::Volatile)),
    };
    compile(ctx, &def)?;
    Ok(def)
}

/// Registers every function in `fns` in `ctx`, in creation order.
pub fn register_all(ctx: &SessionContext, fns: &Functions) -> ExecResult<()> {
    let mut all: Vec<&Function> = fns.values().collect();
    all.sort_by_key(|f| f.seq);
    for f in all {
        ctx.register_udf(compile(ctx, &f.def)?);
    }
    Ok(())
}

/// Whether `ddl` (a view's) calls function `name`.
pub fn calls(ddl: &str, name: &str) -> bool {
    let lower = ddl.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().last();
        let after = rest[i + name.len()..].trim_start().chars().next();
        let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if word_start && after == Some('(') {
            return true;
        }
        rest = &rest[i + name.len()..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_calls() {
        assert!(calls(
            "CREATE MATERIALIZED VIEW v AS SELECT add1(x) FROM t",
            "add1"
        ));
        assert!(calls("select ADD1 (x) from t", "add1"));
        assert!(!calls("SELECT xadd1(x) FROM t", "add1"));
        assert!(!calls("SELECT add1 FROM t", "add1"));
    }
}
