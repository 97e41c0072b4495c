//! Exact numeric helpers shared by the aggregate operator and the planner's
//! PostgreSQL functions.

/// `sum / n` at `shift` more decimal places, rounded half away from zero as
/// PostgreSQL rounds numerics; `None` on overflow.
pub fn exact_avg(sum: i128, n: i64, shift: u32) -> Option<i128> {
    let num = sum.checked_mul(10i128.checked_pow(shift)?)?;
    let den = i128::from(n);
    if den == 0 {
        return None;
    }
    let (q, r) = (num / den, num % den);
    Some(if 2 * r.abs() >= den.abs() {
        q + num.signum() * den.signum()
    } else {
        q
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_like_postgres() {
        // avg(6221, 6222) = 6221.5000000000000000
        assert_eq!(exact_avg(12443, 2, 16), Some(62215 * 10i128.pow(15)));
        // 2/3 rounds half away from zero at the last place
        assert_eq!(exact_avg(2, 3, 2), Some(67));
        assert_eq!(exact_avg(-2, 3, 2), Some(-67));
        assert_eq!(exact_avg(1, 0, 2), None);
    }
}
