//! Operators bound as PostgreSQL binds them while SQL becomes a plan (an
//! `ExprPlanner`): `interval * number`, `interval / number` and
//! `timestamp - timestamp`, which DataFusion refuses or types as a duration,
//! and `date - date`, an `int4`.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{binary_expr, Cast, Expr, ExprSchemable, Operator};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use super::{funcs, interval, jsonb, rules::udf_call};

#[derive(Debug)]
pub struct PgOps;

impl ExprPlanner for PgOps {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (Ok(lt), Ok(rt)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        let is_iv = |t: &DataType| matches!(t, DataType::Interval(_));
        let is_num = |t: &DataType| t.is_numeric();
        let is_ts = |t: &DataType| matches!(t, DataType::Timestamp(_, _));
        let is_text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let RawBinaryExpr { op, left, right } = expr;
        let planned = match op {
            BinaryOperator::Multiply if is_iv(&lt) && is_num(&rt) => {
                udf_call(interval::MUL, vec![left, right])
            }
            BinaryOperator::Multiply if is_num(&lt) && is_iv(&rt) => {
                udf_call(interval::MUL, vec![right, left])
            }
            BinaryOperator::Divide if is_iv(&lt) && is_num(&rt) => {
                udf_call(interval::DIV, vec![left, right])
            }
            BinaryOperator::Minus if is_ts(&lt) && is_ts(&rt) => {
                udf_call(interval::TS_SUB, vec![left, right])
            }
            // `date - date` is a count of days, `int4`.
            BinaryOperator::Minus if lt == DataType::Date32 && rt == DataType::Date32 => {
                Expr::Cast(Cast::new(
                    Box::new(binary_expr(left, Operator::Minus, right)),
                    DataType::Int32,
                ))
            }
            // `date ± interval` is a timestamp.
            BinaryOperator::Plus | BinaryOperator::Minus
                if (lt == DataType::Date32 && is_iv(&rt))
                    || (is_iv(&lt) && rt == DataType::Date32) =>
            {
                let ts = |e: Expr, t: &DataType| {
                    if *t == DataType::Date32 {
                        Expr::Cast(Cast::new(
                            Box::new(e),
                            DataType::Timestamp(TimeUnit::Nanosecond, None),
                        ))
                    } else {
                        e
                    }
                };
                let o = if matches!(op, BinaryOperator::Plus) {
                    Operator::Plus
                } else {
                    Operator::Minus
                };
                binary_expr(ts(left, &lt), o, ts(right, &rt))
            }
            // real with an integer is double precision arithmetic.
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
                if (lt == DataType::Float32 && rt.is_integer())
                    || (lt.is_integer() && rt == DataType::Float32) =>
            {
                let o = match op {
                    BinaryOperator::Plus => Operator::Plus,
                    BinaryOperator::Minus => Operator::Minus,
                    BinaryOperator::Multiply => Operator::Multiply,
                    _ => Operator::Divide,
                };
                let f8 = |e: Expr| Expr::Cast(Cast::new(Box::new(e), DataType::Float64));
                binary_expr(f8(left), o, f8(right))
            }
            // JSON operators over text (jsonb is text in canonical form).
            BinaryOperator::Arrow if is_text(&lt) => udf_call(jsonb::GET, vec![left, right]),
            BinaryOperator::LongArrow if is_text(&lt) => {
                udf_call(jsonb::GET_TEXT, vec![left, right])
            }
            BinaryOperator::HashArrow if is_text(&lt) => udf_call(jsonb::PATH, vec![left, right]),
            BinaryOperator::HashLongArrow if is_text(&lt) => {
                udf_call(jsonb::PATH_TEXT, vec![left, right])
            }
            BinaryOperator::AtArrow if is_text(&lt) && is_text(&rt) => {
                udf_call(jsonb::CONTAINS, vec![left, right])
            }
            BinaryOperator::ArrowAt if is_text(&lt) && is_text(&rt) => {
                udf_call(jsonb::CONTAINS, vec![right, left])
            }
            BinaryOperator::Question if is_text(&lt) => udf_call(jsonb::EXISTS, vec![left, right]),
            op => return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right })),
        };
        Ok(PlannerResult::Planned(planned))
    }

    /// `extract(field FROM x)` is a numeric (PostgreSQL 14 and later);
    /// `date_part` stays double precision.
    fn plan_extract(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(udf_call(funcs::EXTRACT, args)))
    }
}
