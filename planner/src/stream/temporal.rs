//! `now()` in views: filters that retract rows as processing time passes.

use super::*;

impl Builder {
    /// A filter with conditions on `now()` (`proctime()`): the other
    /// conditions filter first, then each `x > now() - INTERVAL ...` becomes
    /// a temporal filter that retracts rows as time passes.
    pub(super) fn temporal_filter(
        &mut self,
        f: &datafusion::logical_expr::Filter,
    ) -> Result<NodeIdx> {
        let schema = f.input.schema().clone();
        let (temporal, rest): (Vec<&Expr>, Vec<&Expr>) =
            datafusion::logical_expr::utils::split_conjunction(&f.predicate)
                .into_iter()
                .partition(|e| uses_proctime(e));
        let mut idx = self.visit(&f.input)?;
        if let Some(pred) = datafusion::logical_expr::utils::conjunction(rest.into_iter().cloned())
        {
            let predicate = self.physical(&pred, &schema)?;
            idx = self.push(
                NodeKind::Filter { predicate },
                vec![idx],
                nullable_schema(&schema),
            );
        }
        for t in temporal {
            let (expiry, inclusive) = temporal_bound(t).ok_or_else(|| {
                unsupported(format!(
                    "now() in the condition {t} (a view may filter on time with `col > now() - INTERVAL '...'`)"
                ))
            })?;
            let expiry = self.physical(&expiry, &schema)?;
            let slot = self.slots;
            self.slots += 1;
            idx = self.push(
                NodeKind::TemporalFilter {
                    expiry,
                    inclusive,
                    state_slot: slot,
                },
                vec![idx],
                nullable_schema(&schema),
            );
        }
        Ok(idx)
    }
}

/// Whether `e` reads the processing time (`now()` in a view).
pub(super) fn uses_proctime(e: &Expr) -> bool {
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, Expr::ScalarFunction(f) if f.func.name() == crate::tvf::PROCTIME) {
            found = true;
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

/// `now()`, optionally plus or minus a constant, through casts: the
/// constant's sign and value (`None`: none).
pub(super) fn now_term(e: &Expr) -> Option<Option<(bool, Expr)>> {
    match e {
        Expr::Cast(c) => now_term(&c.expr),
        Expr::TryCast(c) => now_term(&c.expr),
        Expr::ScalarFunction(f) if f.func.name() == crate::tvf::PROCTIME => Some(None),
        Expr::BinaryExpr(b) if matches!(b.right.as_ref(), Expr::Literal(..)) => {
            let plus = match b.op {
                datafusion::logical_expr::Operator::Plus => true,
                datafusion::logical_expr::Operator::Minus => false,
                _ => return None,
            };
            match now_term(&b.left)? {
                None => Some(Some((plus, b.right.as_ref().clone()))),
                Some(_) => None,
            }
        }
        _ => None,
    }
}

/// `x > now() [+-] c` (or `now() [+-] c < x`, and the `>=` forms): the row
/// expires when the processing time passes `x [-+] c`. Returns that
/// expression and whether the comparison is inclusive.
pub(super) fn temporal_bound(e: &Expr) -> Option<(Expr, bool)> {
    use datafusion::logical_expr::Operator as Op;
    let Expr::BinaryExpr(b) = e else {
        return None;
    };
    let (x, now, inclusive) = match b.op {
        Op::Gt => (b.left.as_ref(), b.right.as_ref(), false),
        Op::GtEq => (b.left.as_ref(), b.right.as_ref(), true),
        Op::Lt => (b.right.as_ref(), b.left.as_ref(), false),
        Op::LtEq => (b.right.as_ref(), b.left.as_ref(), true),
        _ => return None,
    };
    if uses_proctime(x) {
        return None;
    }
    let expiry = match now_term(now)? {
        None => x.clone(),
        // x > now() + c  <=>  x - c > now()
        Some((true, c)) => x.clone() - c,
        Some((false, c)) => x.clone() + c,
    };
    Some((expiry, inclusive))
}
