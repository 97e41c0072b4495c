//! Random typed SQL expressions over the columns of the differential
//! table `r` (see [`TABLE_DDL`]), for the expression differential against
//! PostgreSQL. Every expression is well typed in PostgreSQL; values stay
//! small enough that integer arithmetic cannot overflow.

use rand::rngs::StdRng;
use rand::Rng;

/// The table every expression reads.
pub const TABLE_DDL: &str =
    "CREATE TABLE r (id int PRIMARY KEY, i int, b bigint, n numeric(12,2), \
     f float8, s text, d date, ts timestamp, iv interval, bo boolean)";

/// The SQL types expressions have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ty {
    Int,
    BigInt,
    Numeric,
    Float,
    Text,
    Bool,
    Date,
    Timestamp,
    Interval,
}

const ALL: [Ty; 9] = [
    Ty::Int,
    Ty::BigInt,
    Ty::Numeric,
    Ty::Float,
    Ty::Text,
    Ty::Bool,
    Ty::Date,
    Ty::Timestamp,
    Ty::Interval,
];

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// One row of `r` as an `INSERT` values list, NULL about one time in eight.
pub fn random_row(rng: &mut StdRng, id: i64) -> String {
    let words = [
        "", "a", "abc", "Hello", "x y", "zeta", "ABC", "  pad ", "100", "é",
    ];
    let i = rng.random_range(-1000..=1000);
    let b = rng.random_range(-100_000i64..=100_000);
    let n = rng.random_range(-100_000i64..=100_000) as f64 / 100.0;
    let f = rng.random_range(-10_000i64..=10_000) as f64 / 8.0;
    let s = *pick(rng, &words);
    let (dy, dm, dd) = (
        rng.random_range(0..30),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    );
    let (ty, tm, td) = (
        rng.random_range(0..30),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    );
    let (h, mi, se) = (
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
    );
    let iv = random_interval_literal(rng);
    let bo = *pick(rng, &["true", "false"]);
    let mut v = vec![
        i.to_string(),
        b.to_string(),
        format!("{n:.2}"),
        format!("{f}"),
        format!("'{s}'"),
        format!("'20{dy:02}-{dm:02}-{dd:02}'"),
        format!("'20{ty:02}-{tm:02}-{td:02} {h:02}:{mi:02}:{se:02}'"),
        iv,
        bo.to_string(),
    ];
    for x in v.iter_mut() {
        if rng.random_range(0..8) == 0 {
            *x = "NULL".into();
        }
    }
    format!("({id}, {})", v.join(", "))
}

fn random_interval_literal(rng: &mut StdRng) -> String {
    let forms = [
        format!("'{} days'", rng.random_range(-40..=40)),
        format!("'{} hours'", rng.random_range(-100..=100)),
        format!(
            "'{} days {} hours {} minutes'",
            rng.random_range(0..10),
            rng.random_range(-30..30),
            rng.random_range(0..60)
        ),
        format!(
            "'{} mons {} days'",
            rng.random_range(-3..=3),
            rng.random_range(0..40)
        ),
        format!("'{} seconds'", rng.random_range(0..100_000)),
    ];
    pick(rng, &forms).clone()
}

/// A random expression of type `t`, at most `depth` operators deep.
pub fn expr(rng: &mut StdRng, t: Ty, depth: u32) -> String {
    if depth == 0 || rng.random_range(0..4) == 0 {
        return leaf(rng, t);
    }
    let d = depth - 1;
    // Shared forms: CASE, COALESCE, NULLIF over any type.
    match rng.random_range(0..12) {
        0 => {
            return format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                expr(rng, Ty::Bool, d),
                expr(rng, t, d),
                expr(rng, t, d)
            )
        }
        1 if t != Ty::Bool => return format!("coalesce({}, {})", expr(rng, t, d), expr(rng, t, d)),
        2 if !matches!(t, Ty::Bool | Ty::Interval) => {
            return format!("nullif({}, {})", expr(rng, t, d), expr(rng, t, d))
        }
        _ => {}
    }
    match t {
        Ty::Int => match rng.random_range(0..9) {
            0 => format!("({} + {})", expr(rng, t, d), leaf(rng, t)),
            1 => format!("({} - {})", expr(rng, t, d), leaf(rng, t)),
            2 => format!("({} * {})", leaf(rng, t), small_int(rng)),
            3 => format!("({} / {})", expr(rng, t, d), nonzero(rng)),
            4 => format!("({} % {})", expr(rng, t, d), nonzero(rng)),
            5 => format!("abs({})", expr(rng, t, d)),
            6 => format!("length({})", expr(rng, Ty::Text, d)),
            7 => format!("({} - {})", expr(rng, Ty::Date, d), expr(rng, Ty::Date, d)),
            _ => format!("(- {})", expr(rng, t, d)),
        },
        Ty::BigInt => match rng.random_range(0..5) {
            0 => format!("({} + {})", expr(rng, t, d), expr(rng, t, d)),
            1 => format!("({} - {})", expr(rng, t, d), expr(rng, Ty::Int, d)),
            2 => format!("({} * {})", leaf(rng, t), small_int(rng)),
            3 => format!("({} / {})", expr(rng, t, d), nonzero(rng)),
            _ => format!("CAST({} AS bigint)", expr(rng, Ty::Int, d)),
        },
        Ty::Numeric => match rng.random_range(0..6) {
            0 => format!("({} + {})", expr(rng, t, d), expr(rng, t, d)),
            1 => format!("({} - {})", expr(rng, t, d), leaf(rng, t)),
            2 => format!("({} * {})", leaf(rng, t), pick(rng, &["2", "-3", "10"])),
            3 => format!("abs({})", expr(rng, t, d)),
            4 => format!("({} + {})", expr(rng, t, d), expr(rng, Ty::Int, d)),
            _ => format!("(- {})", expr(rng, t, d)),
        },
        Ty::Float => match rng.random_range(0..7) {
            0 => format!("({} + {})", expr(rng, t, d), expr(rng, t, d)),
            1 => format!("({} - {})", expr(rng, t, d), expr(rng, t, d)),
            2 => format!("({} * {})", expr(rng, t, d), leaf(rng, t)),
            3 => format!(
                "({} / {})",
                expr(rng, t, d),
                pick(rng, &["2.0::float8", "4::float8", "-0.5::float8"])
            ),
            4 => format!("abs({})", expr(rng, t, d)),
            5 => format!("CAST({} AS float8)", expr(rng, Ty::Int, d)),
            _ => format!("floor({})", expr(rng, t, d)),
        },
        Ty::Text => match rng.random_range(0..9) {
            0 => format!("({} || {})", expr(rng, t, d), expr(rng, t, d)),
            1 => format!("upper({})", expr(rng, t, d)),
            2 => format!("lower({})", expr(rng, t, d)),
            3 => format!(
                "substr({}, {}, {})",
                expr(rng, t, d),
                rng.random_range(1..4),
                rng.random_range(0..4)
            ),
            4 => format!("trim({})", expr(rng, t, d)),
            5 => format!("replace({}, 'a', 'xy')", expr(rng, t, d)),
            6 => format!("CAST({} AS text)", expr(rng, Ty::Int, d)),
            7 => format!("concat({}, {})", expr(rng, t, d), expr(rng, Ty::Int, d)),
            _ => format!("reverse({})", expr(rng, t, d)),
        },
        Ty::Bool => match rng.random_range(0..8) {
            0 | 1 => {
                let ct = *pick(
                    rng,
                    &[
                        Ty::Int,
                        Ty::BigInt,
                        Ty::Numeric,
                        Ty::Float,
                        Ty::Text,
                        Ty::Date,
                        Ty::Timestamp,
                        Ty::Interval,
                    ],
                );
                let op = pick(rng, &["=", "<>", "<", "<=", ">", ">="]);
                format!("({} {op} {})", expr(rng, ct, d), expr(rng, ct, d))
            }
            2 => format!("({} AND {})", expr(rng, t, d), expr(rng, t, d)),
            3 => format!("({} OR {})", expr(rng, t, d), expr(rng, t, d)),
            4 => format!("(NOT {})", expr(rng, t, d)),
            5 => {
                let ct = *pick(rng, &ALL);
                format!("({} IS {}NULL)", expr(rng, ct, d), pick(rng, &["", "NOT "]))
            }
            6 => format!(
                "({} BETWEEN {} AND {})",
                expr(rng, Ty::Int, d),
                small_int(rng),
                rng.random_range(0..500)
            ),
            _ => format!(
                "({} LIKE '{}')",
                expr(rng, Ty::Text, d),
                pick(rng, &["a%", "%c", "_", "%", "H%o"])
            ),
        },
        Ty::Date => match rng.random_range(0..3) {
            0 => format!("({} + {})", expr(rng, t, d), small_int(rng)),
            1 => format!("({} - {})", expr(rng, t, d), small_int(rng)),
            _ => leaf(rng, t),
        },
        Ty::Timestamp => match rng.random_range(0..3) {
            0 => format!("({} + {})", expr(rng, t, d), expr(rng, Ty::Interval, d)),
            1 => format!("({} - {})", expr(rng, t, d), expr(rng, Ty::Interval, d)),
            _ => format!(
                "date_trunc('{}', {})",
                pick(rng, &["day", "hour", "month", "year"]),
                expr(rng, t, d)
            ),
        },
        Ty::Interval => match rng.random_range(0..4) {
            0 => format!("({} + {})", expr(rng, t, d), expr(rng, t, d)),
            1 => format!(
                "({} - {})",
                expr(rng, Ty::Timestamp, d),
                expr(rng, Ty::Timestamp, d)
            ),
            2 => format!("({} * {})", expr(rng, t, d), rng.random_range(-3..4)),
            _ => format!("(- {})", expr(rng, t, d)),
        },
    }
}

fn small_int(rng: &mut StdRng) -> String {
    rng.random_range(-20..=20).to_string()
}

fn nonzero(rng: &mut StdRng) -> String {
    let v = rng.random_range(1..=13);
    if rng.random_bool(0.3) {
        format!("(-{v})")
    } else {
        v.to_string()
    }
}

fn leaf(rng: &mut StdRng, t: Ty) -> String {
    let column = rng.random_range(0..3) != 0;
    match t {
        Ty::Int if column => "i".into(),
        Ty::Int => small_int(rng),
        Ty::BigInt if column => "b".into(),
        Ty::BigInt => format!("{}::bigint", rng.random_range(-5000..5000)),
        Ty::Numeric if column => "n".into(),
        // One scale throughout: PostgreSQL keeps a scale per value, which
        // CASE and COALESCE over mixed scales expose (see docs/sql.md).
        Ty::Numeric => pick(rng, &["1.25", "0.50", "-3.75", "100.00", "0.01"]).to_string(),
        Ty::Float if column => "f".into(),
        Ty::Float => pick(
            rng,
            &["1.5::float8", "-0.25::float8", "3::float8", "1e3::float8"],
        )
        .to_string(),
        Ty::Text if column => "s".into(),
        Ty::Text => format!("'{}'", pick(rng, &["", "a", "bc", "Hello", "A b"])),
        Ty::Bool if column => "bo".into(),
        Ty::Bool => pick(rng, &["true", "false", "NULL::boolean"]).to_string(),
        Ty::Date if column => "d".into(),
        Ty::Date => format!(
            "DATE '2020-{:02}-{:02}'",
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
        Ty::Timestamp if column => "ts".into(),
        Ty::Timestamp => format!(
            "TIMESTAMP '2021-{:02}-{:02} {:02}:{:02}'",
            rng.random_range(1..=12),
            rng.random_range(1..=28),
            rng.random_range(0..24),
            rng.random_range(0..60)
        ),
        Ty::Interval if column => "iv".into(),
        Ty::Interval => format!("INTERVAL {}", random_interval_literal(rng)),
    }
}

/// A random expression of a random type.
pub fn any_expr(rng: &mut StdRng, depth: u32) -> (Ty, String) {
    let t = *pick(rng, &ALL);
    (t, expr(rng, t, depth))
}
