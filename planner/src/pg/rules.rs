//! The analyzer rules: [`PgLiterals`] types integer literals as PostgreSQL
//! does (before type coercion), [`PgOperators`] gives operators PostgreSQL's
//! meaning once types are known.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, Values,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

use super::{arith, datetime, funcs, interval};

/// Integer literals that fit in 32 bits are `int4`, as in PostgreSQL
/// (DataFusion makes every integer literal `Int64`). Coercion then widens
/// them where the other operand is wider, so `int8_col + 1` stays `int8`.
#[derive(Debug)]
pub struct PgLiterals;

impl AnalyzerRule for PgLiterals {
    fn name(&self) -> &str {
        "pg_literals"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        // An INSERT's casts to its table's column types stay as they are.
        let dml = matches!(plan, LogicalPlan::Dml(_));
        Ok(plan
            .transform_up_with_subqueries(|p| match p {
                // LIMIT/OFFSET counts are not values.
                LogicalPlan::Limit(_) => Ok(Transformed::no(p)),
                LogicalPlan::Values(v) => narrow_values(v),
                p => {
                    let schema = merge_schema(&p.inputs());
                    let preserver = NamePreserver::new(&p);
                    p.map_expressions(|e| {
                        let name = preserver.save(&e);
                        narrow_expr(e, &schema, dml).map(|t| t.update_data(|e| name.restore(e)))
                    })?
                    .map_data(|p| p.recompute_schema())
                }
            })?
            .data)
    }
}

fn fits_i32(v: i64) -> bool {
    i32::try_from(v).is_ok()
}

/// DataFusion's type for a bare `numeric`.
const BARE_NUMERIC: DataType = DataType::Decimal128(38, 10);

fn narrow_expr(e: Expr, schema: &DFSchema, dml: bool) -> Result<Transformed<Expr>> {
    e.transform_down(|e| match e {
        // `x::numeric` keeps the scale of an integer or numeric operand, as
        // PostgreSQL's numeric carries the scale of its value.
        Expr::Cast(Cast { expr, field }) if !dml && *field.data_type() == BARE_NUMERIC => {
            let to = match expr.get_type(schema) {
                Ok(t) if t.is_integer() => Some(DataType::Decimal128(38, 0)),
                Ok(DataType::Decimal128(_, s)) => Some(DataType::Decimal128(38, s)),
                _ => None,
            };
            Ok(match to {
                Some(t) => Transformed::yes(Expr::Cast(Cast::new(expr, t))),
                None => Transformed::no(Expr::Cast(Cast { expr, field })),
            })
        }
        // Arguments Freshet's own planning builds (session window gaps in
        // nanoseconds) keep their type.
        // Grouping sets name their output columns after their expressions,
        // which an alias cannot preserve inside a set: left as planned.
        Expr::GroupingSet(_) => Ok(Transformed::new(
            e,
            false,
            datafusion::common::tree_node::TreeNodeRecursion::Jump,
        )),
        Expr::WindowFunction(ref wf)
            if matches!(wf.fun.name(), "session_start" | "session_end") =>
        {
            Ok(Transformed::new(
                e,
                false,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            ))
        }
        // sum(bigint) is a numeric in PostgreSQL (it cannot overflow).
        Expr::AggregateFunction(mut f) if f.func.name() == "sum" && f.params.args.len() == 1 => {
            // Its argument's literals first: `sum(int_col * 2)` is of int4.
            let arg = narrow_expr(f.params.args.remove(0), schema, dml)?.data;
            let arg = if matches!(arg.get_type(schema), Ok(DataType::Int64)) {
                Expr::Cast(Cast::new(Box::new(arg), DataType::Decimal128(38, 0)))
            } else {
                arg
            };
            f.params.args.push(arg);
            if let Some(filter) = f.params.filter.take() {
                f.params.filter = Some(Box::new(narrow_expr(*filter, schema, dml)?.data));
            }
            Ok(Transformed::new(
                Expr::AggregateFunction(f),
                true,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            ))
        }
        // generate_series of integers is of integers (DataFusion's is bigint).
        Expr::ScalarFunction(f)
            if f.func.name() == "generate_series"
                && !f.args.is_empty()
                && f.args.iter().all(|a| match a {
                    // Literals not narrowed yet (this pass goes top down).
                    Expr::Literal(ScalarValue::Int64(Some(v)), _) => fits_i32(*v),
                    a => matches!(a.get_type(schema), Ok(DataType::Int32)),
                }) =>
        {
            let item = Arc::new(Field::new_list_field(DataType::Int32, true));
            let mut f = f;
            f.args = std::mem::take(&mut f.args)
                .into_iter()
                .map(|a| narrow_expr(a, schema, dml).map(|t| t.data))
                .collect::<Result<_>>()?;
            Ok(Transformed::new(
                Expr::Cast(Cast::new(
                    Box::new(Expr::ScalarFunction(f)),
                    DataType::List(item),
                )),
                true,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            ))
        }
        // Array sizes are integers in PostgreSQL (DataFusion's are bigint).
        Expr::ScalarFunction(f)
            if matches!(
                f.func.name(),
                "cardinality" | "array_length" | "array_ndims"
            ) && !matches!(
                Expr::ScalarFunction(f.clone()).get_type(schema),
                Ok(DataType::Int32) | Err(_)
            ) =>
        {
            let mut f = f;
            f.args = std::mem::take(&mut f.args)
                .into_iter()
                .map(|a| narrow_expr(a, schema, dml).map(|t| t.data))
                .collect::<Result<_>>()?;
            Ok(Transformed::new(
                Expr::Cast(Cast::new(
                    Box::new(Expr::ScalarFunction(f)),
                    DataType::Int32,
                )),
                true,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            ))
        }
        // date_part is double precision in PostgreSQL.
        Expr::ScalarFunction(f)
            if f.func.name() == "date_part"
                && !matches!(
                    Expr::ScalarFunction(f.clone()).get_type(schema),
                    Ok(DataType::Float64) | Err(_)
                ) =>
        {
            Ok(Transformed::new(
                Expr::Cast(Cast::new(
                    Box::new(Expr::ScalarFunction(f)),
                    DataType::Float64,
                )),
                true,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            ))
        }
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if fits_i32(v) => Ok(Transformed::yes(
            Expr::Literal(ScalarValue::Int32(Some(v as i32)), meta),
        )),
        e => Ok(Transformed::no(e)),
    })
}

/// A `VALUES` column of integer literals that all fit is `int4`.
fn narrow_values(v: Values) -> Result<Transformed<LogicalPlan>> {
    let ncols = v.schema.fields().len();
    let mut narrow = vec![false; ncols];
    for (c, flag) in narrow.iter_mut().enumerate() {
        if v.schema.field(c).data_type() != &DataType::Int64 {
            continue;
        }
        *flag = v.values.iter().all(|row| match row.get(c) {
            Some(Expr::Literal(ScalarValue::Int64(Some(x)), _)) => fits_i32(*x),
            Some(Expr::Literal(ScalarValue::Int64(None) | ScalarValue::Null, _)) => true,
            _ => false,
        }) && v.values.iter().any(|row| {
            matches!(
                row.get(c),
                Some(Expr::Literal(ScalarValue::Int64(Some(_)), _))
            )
        });
    }
    if !narrow.iter().any(|x| *x) {
        return Ok(Transformed::no(LogicalPlan::Values(v)));
    }
    let values = v
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .enumerate()
                .map(|(c, e)| match e {
                    Expr::Literal(ScalarValue::Int64(x), m) if narrow[c] => {
                        Expr::Literal(ScalarValue::Int32(x.map(|x| x as i32)), m)
                    }
                    e => e,
                })
                .collect()
        })
        .collect();
    let fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = v
        .schema
        .iter()
        .enumerate()
        .map(|(c, (q, f))| {
            let f = if narrow[c] {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Int32))
            } else {
                f.clone()
            };
            (q.cloned(), f)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, v.schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values,
    })))
}

/// Operators with PostgreSQL's meaning: integer `+ - *` fail on overflow,
/// float division by zero fails, intervals compare as PostgreSQL compares
/// them, and text becomes a date or timestamp through PostgreSQL's input rules.
#[derive(Debug)]
pub struct PgOperators;

impl AnalyzerRule for PgOperators {
    fn name(&self) -> &str {
        "pg_operators"
    }

    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        Ok(plan
            .transform_up_with_subqueries(|p| {
                if matches!(p, LogicalPlan::Limit(_)) {
                    return Ok(Transformed::no(p));
                }
                let mut schema = merge_schema(&p.inputs());
                if let LogicalPlan::TableScan(ts) = &p {
                    schema.merge(&DFSchema::try_from_qualified_schema(
                        ts.table_name.clone(),
                        &ts.source.schema(),
                    )?);
                }
                let preserver = NamePreserver::new(&p);
                p.map_expressions(|e| {
                    let name = preserver.save(&e);
                    e.transform_up(|e| rewrite_op(e, &schema))
                        .map(|t| t.update_data(|e| name.restore(e)))
                })?
                .map_data(|p| p.recompute_schema())
            })?
            .data)
    }
}

pub(crate) fn udf_call(name: &'static str, args: Vec<Expr>) -> Expr {
    let f = all_functions()
        .into_iter()
        .find(|f| f.name() == name)
        .map(Arc::new);
    match f {
        Some(f) => Expr::ScalarFunction(ScalarFunction::new_udf(f, args)),
        // Unreachable: every name used here is one of ours.
        None => Expr::Literal(ScalarValue::Null, None),
    }
}

fn all_functions() -> Vec<ScalarUDF> {
    arith::functions()
        .into_iter()
        .chain(interval::functions())
        .chain(datetime::functions())
        .chain(funcs::functions())
        .chain(super::floattext::functions())
        .chain(super::textout::functions())
        .chain(super::textout::array_functions())
        .chain(super::jsonb::functions())
        .collect()
}

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

fn rewrite_op(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (lt, rt) = match (left.get_type(schema), right.get_type(schema)) {
                (Ok(l), Ok(r)) => (l, r),
                _ => {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                        left,
                        op,
                        right,
                    })))
                }
            };
            let call = |name, l: Box<Expr>, r: Box<Expr>| {
                Ok(Transformed::yes(udf_call(name, vec![*l, *r])))
            };
            match op {
                Operator::Plus | Operator::Minus | Operator::Multiply
                    if lt == rt && is_int(&lt) =>
                {
                    let name = match op {
                        Operator::Plus => arith::ADD,
                        Operator::Minus => arith::SUB,
                        _ => arith::MUL,
                    };
                    call(name, left, right)
                }
                Operator::Divide
                    if lt == rt && matches!(lt, DataType::Float32 | DataType::Float64) =>
                {
                    call(arith::FLOAT_DIV, left, right)
                }
                Operator::Divide
                    if matches!(lt, DataType::Decimal128(_, _))
                        && matches!(rt, DataType::Decimal128(_, _)) =>
                {
                    call(arith::NUMERIC_DIV, left, right)
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
                | Operator::IsDistinctFrom
                | Operator::IsNotDistinctFrom
                    if matches!(lt, DataType::Interval(_))
                        && matches!(rt, DataType::Interval(_)) =>
                {
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                        left: Box::new(udf_call(interval::KEY, vec![*left])),
                        op,
                        right: Box::new(udf_call(interval::KEY, vec![*right])),
                    })))
                }
                _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                }))),
            }
        }
        // Numeric ceil/floor/trunc at PostgreSQL's scales, float round
        // half to even.
        Expr::ScalarFunction(f) => {
            let types: Vec<Option<DataType>> =
                f.args.iter().map(|a| a.get_type(schema).ok()).collect();
            let decimal = matches!(types.first(), Some(Some(DataType::Decimal128(_, _))));
            let float = matches!(
                types.first(),
                Some(Some(DataType::Float64 | DataType::Float32))
            );
            let name = f.func.name().to_string();
            let n = f.args.len();
            let replaced = match (name.as_str(), n) {
                ("ceil", 1) if decimal => Some(udf_call(funcs::CEIL, f.args.clone())),
                ("floor", 1) if decimal => Some(udf_call(funcs::FLOOR, f.args.clone())),
                ("trunc", 1) if decimal => {
                    let mut args = f.args.clone();
                    args.push(Expr::Literal(ScalarValue::Int64(Some(0)), None));
                    Some(udf_call(funcs::TRUNC, args))
                }
                ("trunc", 2) if decimal => Some(udf_call(funcs::TRUNC, f.args.clone())),
                ("round", 1) if float => Some(udf_call(arith::RINT, f.args.clone())),
                _ => None,
            };
            Ok(match replaced {
                Some(e) => Transformed::yes(e),
                None => Transformed::no(Expr::ScalarFunction(f)),
            })
        }
        // Floats as text are PostgreSQL's text of them.
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8)
                && matches!(
                    expr.get_type(schema),
                    Ok(DataType::Float32 | DataType::Float64)
                ) =>
        {
            Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                Box::new(udf_call(super::floattext::FLOAT_TEXT, vec![*expr])),
                field,
            ))))
        }
        // Text to an array reads PostgreSQL's array literal (`'{1,2}'`).
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::List(_))
                && matches!(
                    expr.get_type(schema),
                    Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                ) =>
        {
            Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                Box::new(udf_call(super::textout::ARRAY_IN, vec![*expr])),
                field,
            ))))
        }
        // Timestamps and intervals as text are PostgreSQL's text of them.
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8)
                && matches!(
                    expr.get_type(schema),
                    Ok(DataType::Timestamp(_, _) | DataType::Interval(_))
                ) =>
        {
            Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                Box::new(udf_call(super::textout::TEXT_OUT, vec![*expr])),
                field,
            ))))
        }
        // Numeric and float to integer round as PostgreSQL rounds (half away
        // from zero, half to even); Arrow's casts truncate.
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::Int16 | DataType::Int32 | DataType::Int64)
                && matches!(
                    expr.get_type(schema),
                    Ok(DataType::Decimal128(_, _) | DataType::Float32 | DataType::Float64)
                )
                // Already rounded (DataFusion analyzes a plan again to run it).
                && !matches!(expr.as_ref(), Expr::ScalarFunction(f)
                    if matches!(f.func.name(), arith::NUMERIC_ROUND | arith::RINT)) =>
        {
            let name = match expr.get_type(schema) {
                Ok(DataType::Decimal128(_, _)) => arith::NUMERIC_ROUND,
                _ => arith::RINT,
            };
            Ok(Transformed::yes(Expr::Cast(Cast::new_from_field(
                Box::new(udf_call(name, vec![*expr])),
                field,
            ))))
        }
        Expr::Cast(Cast { expr, field })
            if matches!(
                field.data_type(),
                DataType::Timestamp(_, _) | DataType::Date32
            ) && matches!(
                expr.get_type(schema),
                Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            ) =>
        {
            let data_type = field.data_type().clone();
            let name = match &data_type {
                DataType::Date32 => datetime::DATE_IN,
                DataType::Timestamp(_, Some(_)) => datetime::TIMESTAMPTZ_IN,
                _ => datetime::TIMESTAMP_IN,
            };
            let parsed = udf_call(name, vec![*expr]);
            Ok(Transformed::yes(if data_type == DataType::Date32 {
                parsed
            } else {
                Expr::Cast(Cast::new(Box::new(parsed), data_type))
            }))
        }
        e => Ok(Transformed::no(e)),
    }
}
