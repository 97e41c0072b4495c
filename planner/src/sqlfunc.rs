//! Scalar SQL functions (`CREATE FUNCTION f(a int) RETURNS int LANGUAGE SQL
//! AS $$ SELECT a + 1 $$`): a UDF whose body is a DataFusion expression over
//! its parameters, inlined where it is called (the optimizer's
//! simplification replaces the call by the body with the arguments), so a
//! view that calls one is planned as if the body were written out. A call
//! that is not inlined evaluates the body on the argument arrays.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{exec_err, DFSchema, Result};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// A function as declared: parameter names (`$n` names the n-th) and
/// types, return type, and the body expression's SQL.
#[derive(Debug, Clone)]
pub struct SqlFunctionDef {
    pub name: String,
    pub params: Vec<(String, DataType)>,
    pub returns: DataType,
    pub body: String,
    pub volatile: bool,
}

/// The internal column name of parameter `i` (0-based).
pub fn param_column(i: usize) -> String {
    format!("__freshet_arg_{}", i + 1)
}

/// Compiles `def` against `ctx` (which knows the functions defined before
/// it): the body must be an expression over the parameters only, of a type
/// that casts to the return type.
pub fn compile(ctx: &SessionContext, def: &SqlFunctionDef) -> Result<ScalarUDF> {
    let fields: Vec<Field> = def
        .params
        .iter()
        .enumerate()
        .map(|(i, (_, t))| Field::new(param_column(i), t.clone(), true))
        .collect();
    let schema = DFSchema::try_from(Schema::new(fields))?;
    let state = ctx.state();
    let raw = state.create_logical_expr(&def.body, &schema)?;
    // Typed and rewritten as any query's expressions are (int4 literals,
    // coercion, PostgreSQL's operators), over a relation of the parameters.
    let plan = datafusion::logical_expr::LogicalPlanBuilder::from(
        datafusion::logical_expr::LogicalPlan::EmptyRelation(
            datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(schema.clone()),
            },
        ),
    )
    .project(vec![raw.alias("body")])?
    .build()?;
    let plan = crate::pg::type_literals(plan)?;
    let plan = state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})?;
    let body = match &plan {
        datafusion::logical_expr::LogicalPlan::Projection(p) => p.expr[0].clone().unalias(),
        _ => return datafusion::common::plan_err!("function body did not plan as an expression"),
    };
    let body_type = body.get_type(&schema)?;
    if body_type != def.returns
        && !datafusion::arrow::compute::can_cast_types(&body_type, &def.returns)
    {
        return datafusion::common::plan_err!(
            "return type mismatch in function declared to return {}: the body is {body_type}",
            def.returns
        );
    }
    let body = if body_type == def.returns {
        body
    } else {
        Expr::Cast(Cast::new(Box::new(body), def.returns.clone()))
    };
    let volatility = if def.volatile {
        Volatility::Volatile
    } else {
        Volatility::Immutable
    };
    let signature = if def.params.is_empty() {
        Signature::exact(vec![], volatility)
    } else {
        Signature::user_defined(volatility)
    };
    Ok(ScalarUDF::new_from_impl(SqlFunction {
        name: def.name.clone(),
        signature,
        returns: def.returns.clone(),
        body,
        schema,
    }))
}

#[derive(Debug)]
struct SqlFunction {
    name: String,
    signature: Signature,
    returns: DataType,
    body: Expr,
    schema: DFSchema,
}

impl PartialEq for SqlFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.body == other.body
    }
}
impl Eq for SqlFunction {}
impl std::hash::Hash for SqlFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl SqlFunction {
    /// The body with parameter `i` replaced by `args[i]`.
    fn inline(&self, args: &[Expr]) -> Result<Expr> {
        Ok(self
            .body
            .clone()
            .transform(|e| match &e {
                Expr::Column(c) if c.relation.is_none() => {
                    let idx = c
                        .name
                        .strip_prefix("__freshet_arg_")
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1));
                    match idx.and_then(|i| args.get(i).map(|a| (i, a))) {
                        Some((i, a)) => {
                            let want = self.schema.field(i).data_type().clone();
                            Ok(Transformed::yes(Expr::Cast(Cast::new(
                                Box::new(a.clone()),
                                want,
                            ))))
                        }
                        None => Ok(Transformed::no(e)),
                    }
                }
                _ => Ok(Transformed::no(e)),
            })?
            .data)
    }
}

impl ScalarUDFImpl for SqlFunction {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    /// Arguments cast to the parameter types, where a cast exists.
    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let params = self.schema.fields();
        if args.len() != params.len() {
            return datafusion::common::plan_err!(
                "function {}({}) does not exist: it takes {} arguments",
                self.name,
                args.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                params.len()
            );
        }
        args.iter()
            .zip(params)
            .map(|(a, p)| {
                if a == p.data_type()
                    || *a == DataType::Null
                    || datafusion::arrow::compute::can_cast_types(a, p.data_type())
                {
                    Ok(p.data_type().clone())
                } else {
                    datafusion::common::plan_err!(
                        "function {}: argument of type {a} does not match {}",
                        self.name,
                        p.data_type()
                    )
                }
            })
            .collect()
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(self.inline(&args)?))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        if arrays.len() != self.schema.fields().len() {
            return exec_err!(
                "{} takes {} arguments",
                self.name,
                self.schema.fields().len()
            );
        }
        let arrays = arrays
            .into_iter()
            .zip(self.schema.fields())
            .map(|(a, f)| Ok(datafusion::arrow::compute::cast(&a, f.data_type())?))
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new_with_options(
            Arc::new(self.schema.as_arrow().clone()),
            arrays,
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let props = ExecutionProps::new();
        let p = datafusion::physical_expr::create_physical_expr(
            &self.body,
            &self.schema,
            &props,
            &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default(
            ),
        )?;
        p.evaluate(&batch)
    }
}
