//! Randomized expression differential against PostgreSQL: random typed
//! expressions (arithmetic, comparisons, casts, dates, timestamps and
//! intervals, strings, CASE, NULLs) over random rows, evaluated by a Freshet
//! `SELECT`, inside Freshet materialized views kept up to date through
//! inserts, updates and deletes, and by PostgreSQL. Every difference in
//! value, type or error fails the test, with the seed and the expression.
//!
//! `FRESHET_SEED` picks the seed (default 1), `FRESHET_EXPRS` the number of
//! expressions (default 5000).

use freshet_sql_tests::exprgen::{any_expr, random_row, TABLE_DDL};
use freshet_sql_tests::oracle::{answer, Answer};
use freshet_sql_tests::postgres::PgServer;
use freshet_sql_tests::TestServer;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio_postgres::Client;

const BATCH: usize = 25;
const VIEW_BATCH: usize = 100;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn select(exprs: &[String], from: &str) -> String {
    let cols: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS c{i}"))
        .collect();
    format!("SELECT id, {} FROM {from} ORDER BY id", cols.join(", "))
}

async fn both(fresh: &Client, pg: &Client, sql: &str) -> (Answer, Answer) {
    (answer(fresh, sql, true).await, answer(pg, sql, true).await)
}

async fn run_sql(fresh: &Client, pg: &Client, sql: &str) {
    fresh
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("freshet: {sql}: {e}"));
    pg.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("postgres: {sql}: {e}"));
}

fn no_negative_zero(a: Answer) -> Answer {
    match a {
        Answer::Rows { types, rows } => Answer::Rows {
            rows: rows
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(|v| if v == "-0" { "0".into() } else { v })
                        .collect()
                })
                .collect(),
            types,
        },
        a => a,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_match_postgres() {
    let seed = env_num("FRESHET_SEED", 1);
    let total = env_num("FRESHET_EXPRS", 5000) as usize;
    let mut rng = StdRng::seed_from_u64(seed);
    let pg_server = PgServer::start().await.expect("start PostgreSQL");
    let pg = pg_server.new_database("exprdiff").await.expect("database");
    for s in [
        "SET TimeZone = 'UTC'",
        "SET DateStyle = 'ISO, MDY'",
        "SET IntervalStyle = 'postgres'",
    ] {
        pg.simple_query(s).await.expect("session settings");
    }
    let server = TestServer::start().await.expect("start freshet");
    let fresh = server.connect().await.expect("connect");
    run_sql(&fresh, &pg, TABLE_DDL).await;
    let rows: Vec<String> = (1..=12).map(|id| random_row(&mut rng, id)).collect();
    run_sql(
        &fresh,
        &pg,
        &format!("INSERT INTO r VALUES {}", rows.join(", ")),
    )
    .await;
    fresh.simple_query("FLUSH").await.expect("flush");

    let exprs: Vec<String> = (0..total).map(|_| any_expr(&mut rng, 3).1).collect();
    let mut failures: Vec<String> = Vec::new();
    let mut good: Vec<String> = Vec::new();
    for chunk in exprs.chunks(BATCH) {
        let (a, b) = both(&fresh, &pg, &select(chunk, "r")).await;
        if a == b && !b.is_error() {
            good.extend(chunk.iter().cloned());
            continue;
        }
        for e in chunk {
            let q = select(std::slice::from_ref(e), "r");
            let (a, b) = both(&fresh, &pg, &q).await;
            match (&a, &b) {
                (Answer::Error { sqlstate: s1, .. }, Answer::Error { sqlstate: s2, .. })
                    if s1 == s2 => {}
                _ if a == b => good.push(e.clone()),
                _ => failures.push(format!(
                    "seed {seed}: SELECT {e}\n  Freshet:    {a:?}\n  PostgreSQL: {b:?}"
                )),
            }
        }
    }
    eprintln!(
        "SELECT: {} expressions, {} differences (seed {seed})",
        exprs.len(),
        failures.len()
    );

    // The same expressions inside materialized views, created over half the
    // rows and maintained through inserts, updates and deletes.
    let mut views = Vec::new();
    for (k, chunk) in good.chunks(VIEW_BATCH).enumerate() {
        let name = format!("xv{k}");
        let sql = select(chunk, "r");
        let body = sql.trim_end_matches(" ORDER BY id");
        match fresh
            .simple_query(&format!("CREATE MATERIALIZED VIEW {name} AS {body}"))
            .await
        {
            Ok(_) => {
                pg.simple_query(&format!("CREATE VIEW {name} AS {body}"))
                    .await
                    .expect("postgres view");
                views.push((name, chunk.to_vec()));
            }
            Err(e) => {
                for x in chunk {
                    let one = select(std::slice::from_ref(x), "r");
                    let one = one.trim_end_matches(" ORDER BY id");
                    if let Err(e) = fresh
                        .simple_query(&format!("CREATE MATERIALIZED VIEW xv_probe AS {one}"))
                        .await
                    {
                        failures.push(format!("seed {seed}: view refused: {x}\n  {e}"));
                    } else {
                        let _ = fresh.simple_query("DROP MATERIALIZED VIEW xv_probe").await;
                    }
                }
                let _ = e;
            }
        }
    }
    let more: Vec<String> = (13..=24).map(|id| random_row(&mut rng, id)).collect();
    run_sql(
        &fresh,
        &pg,
        &format!("INSERT INTO r VALUES {}", more.join(", ")),
    )
    .await;
    run_sql(
        &fresh,
        &pg,
        "UPDATE r SET i = i + 7, s = s || 'q', ts = ts + INTERVAL '1 day' WHERE id % 3 = 0",
    )
    .await;
    run_sql(&fresh, &pg, "DELETE FROM r WHERE id % 5 = 1").await;
    fresh.simple_query("FLUSH").await.expect("flush");
    for (name, chunk) in &views {
        let q = format!("SELECT * FROM {name} ORDER BY id");
        let (a, b) = both(&fresh, &pg, &q).await;
        // Views are stored keyed by the whole row, and keys make -0 and 0
        // one value (they are equal), so a view shows -0 as 0: a documented
        // difference (docs/sql.md) until views are stored by their key.
        let (a, b) = (no_negative_zero(a), no_negative_zero(b));
        if a == b {
            continue;
        }
        // Find the expressions that differ.
        let (
            Answer::Rows {
                rows: r1,
                types: t1,
            },
            Answer::Rows {
                rows: r2,
                types: t2,
            },
        ) = (&a, &b)
        else {
            failures.push(format!(
                "seed {seed}: view {name}\n  Freshet:    {a:?}\n  PostgreSQL: {b:?}"
            ));
            continue;
        };
        for (i, e) in chunk.iter().enumerate() {
            let col = |rows: &Vec<Vec<String>>| -> Vec<String> {
                rows.iter()
                    .map(|r| r.get(i + 1).cloned().unwrap_or_default())
                    .collect()
            };
            if col(r1) != col(r2) || t1.get(i + 1) != t2.get(i + 1) {
                failures.push(format!(
                    "seed {seed}: in a view: {e}\n  Freshet:    {:?} {:?}\n  PostgreSQL: {:?} {:?}",
                    t1.get(i + 1),
                    col(r1),
                    t2.get(i + 1),
                    col(r2)
                ));
            }
        }
        if r1.len() != r2.len() {
            failures.push(format!(
                "seed {seed}: view {name}: {} rows, PostgreSQL {}",
                r1.len(),
                r2.len()
            ));
        }
    }
    eprintln!(
        "views: {} expressions in {} views; {} differences in all (seed {seed})",
        views.iter().map(|v| v.1.len()).sum::<usize>(),
        views.len(),
        failures.len()
    );
    for f in failures.iter().take(60) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} differences from PostgreSQL (seed {seed})",
        failures.len()
    );
}
