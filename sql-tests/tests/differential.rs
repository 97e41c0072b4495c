//! Randomized differential test: random inserts, updates and deletes on a few
//! tables; after every `FLUSH`, each materialized view must equal its query run
//! as a batch `SELECT` (DataFusion over the tables) on the same epoch.
//!
//! Seeded and reproducible: `FRESHET_SEED` picks the seed (printed on
//! failure), `FRESHET_DIFF_OPS` the number of operations (default 6000).

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (view name, view query, the same query over base tables only)
const VIEWS: &[(&str, &str, &str)] = &[
    ("v_filter", "SELECT id, v * 2 + k AS x, upper(s) AS us FROM t1 WHERE v > 10 AND s <> 'c'", ""),
    ("v_group", "SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS sv, min(v) AS mn, max(v) AS mx, avg(v) AS av FROM t1 GROUP BY k", ""),
    ("v_having", "SELECT k, count(*) AS c, sum(v) AS s FROM t1 GROUP BY k HAVING count(*) > 2 AND sum(v) > 30", ""),
    ("v_global", "SELECT count(*) AS n, sum(v) AS sv, min(s) AS ms, max(s) AS xs, min(v) AS mv FROM t1", ""),
    (
        "v_over_view",
        "SELECT k, mx - mn AS spread, n FROM v_group WHERE n > 1",
        "SELECT k, mx - mn AS spread, n FROM (SELECT k, count(*) AS n, min(v) AS mn, max(v) AS mx FROM t1 GROUP BY k) WHERE n > 1",
    ),
    ("v_expr_group", "SELECT a % 5 AS g, count(b) AS cb, sum(b) AS sb, min(c) AS mc, max(c) AS xc FROM t2 GROUP BY a % 5", ""),
    ("v_distinct", "SELECT DISTINCT a, c FROM t2", ""),
    (
        "v_view_global",
        "SELECT count(*) AS groups, sum(sv) AS total, max(mx) AS top FROM v_group",
        "SELECT count(*) AS groups, sum(sv) AS total, max(mx) AS top FROM (SELECT k, sum(v) AS sv, max(v) AS mx FROM t1 GROUP BY k)",
    ),
    ("v_filter_agg", "SELECT s, count(*) FILTER (WHERE v > 50) AS big, coalesce(sum(v), 0) AS sv FROM t1 GROUP BY s", ""),
    ("v_case", "SELECT a, b, CASE WHEN b > 50 THEN 'hi' WHEN b IS NULL THEN 'none' ELSE 'lo' END AS lvl FROM t2 WHERE c LIKE 'x%' OR b < 10", ""),
    ("v_multi_key", "SELECT k, s, min(id) AS first_id, max(v) AS mx FROM t1 WHERE id % 3 <> 0 GROUP BY k, s", ""),
    (
        "v_nested",
        "SELECT g, cb FROM v_expr_group WHERE cb >= 2",
        "SELECT a % 5 AS g, count(b) AS cb FROM t2 GROUP BY a % 5 HAVING count(b) >= 2",
    ),
    ("v_join", "SELECT t1.id, t1.k, t2.b, t2.c FROM t1 JOIN t2 ON t1.k = t2.a", ""),
    (
        "v_join_filter",
        "SELECT t1.id, t2.c, t1.v + t2.b AS x FROM t1 JOIN t2 ON t1.s = t2.c AND t1.v > t2.b WHERE t1.k < 2",
        "",
    ),
    (
        "v_join_agg",
        "SELECT t2.c, count(*) AS n, sum(t1.v) AS sv, max(t2.b) AS mb FROM t1 JOIN t2 ON t1.k = t2.a GROUP BY t2.c",
        "",
    ),
    (
        "v_self_join",
        "SELECT a.id AS x, b.id AS y FROM t1 a JOIN t1 b ON a.k = b.k AND a.v = b.v WHERE a.id < b.id",
        "",
    ),
    ("v_null_keys", "SELECT t1.id, t2.c FROM t1 JOIN t2 ON t1.v = t2.b", ""),
    (
        "v_join_view",
        "SELECT g.k, g.n, t2.c FROM v_group g JOIN t2 ON g.k = t2.a",
        "SELECT g.k, g.n, t2.c FROM (SELECT k, count(*) AS n FROM t1 GROUP BY k) g JOIN t2 ON g.k = t2.a",
    ),
    ("v_left_join", "SELECT t1.id, t1.k, t2.b FROM t1 LEFT JOIN t2 ON t1.k = t2.a WHERE t1.id % 4 = 0", ""),
    ("v_right_join", "SELECT t1.id, t2.a, t2.c FROM t1 RIGHT JOIN t2 ON t1.v = t2.b", ""),
    ("v_full_join", "SELECT t1.id, t1.s, t2.a, t2.c FROM t1 FULL JOIN t2 ON t1.k = t2.a AND t1.s = t2.c", ""),
    (
        "v_outer_over_agg",
        "SELECT g.k, g.n, t2.c, t2.b FROM v_group g FULL JOIN t2 ON g.k = t2.a",
        "SELECT g.k, g.n, t2.c, t2.b FROM (SELECT k, count(*) AS n FROM t1 GROUP BY k) g FULL JOIN t2 ON g.k = t2.a",
    ),
    (
        "v_left_join_agg",
        "SELECT t2.a, count(t1.id) AS n, sum(t1.v) AS sv FROM t2 LEFT JOIN t1 ON t2.a = t1.k GROUP BY t2.a",
        "",
    ),
    ("v_left_join_cond", "SELECT t1.id, t2.a, t2.b FROM t1 LEFT JOIN t2 ON t1.k = t2.a AND t1.v > t2.b", ""),
    (
        "v_full_join_cond",
        "SELECT t1.id, t2.a, t2.c FROM t1 FULL JOIN t2 ON t1.k = t2.a AND t1.s <> t2.c AND t2.b < 50",
        "",
    ),
    ("v_exists_cond", "SELECT a, c FROM t2 WHERE EXISTS (SELECT 1 FROM t1 WHERE t1.k = t2.a AND t1.v > t2.b)", ""),
    ("v_not_exists_cond", "SELECT id, k FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.a = t1.k AND t2.b >= t1.v)", ""),
    ("v_exists", "SELECT a, c FROM t2 WHERE EXISTS (SELECT 1 FROM t1 WHERE t1.k = t2.a AND t1.s = t2.c)", ""),
    ("v_not_exists", "SELECT id, k FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.a = t1.k)", ""),
    ("v_in", "SELECT id, v FROM t1 WHERE v IN (SELECT b FROM t2 WHERE c LIKE 'x%')", ""),
    ("v_not_in", "SELECT id, v FROM t1 WHERE v NOT IN (SELECT b FROM t2 WHERE a < 6 AND b IS NOT NULL)", ""),
    ("v_not_in_nulls", "SELECT id, k FROM t1 WHERE k NOT IN (SELECT b FROM t2 WHERE a < 3)", ""),
    ("v_union_all", "SELECT k AS x, s FROM t1 WHERE v > 50 UNION ALL SELECT a, c FROM t2 WHERE b < 20", ""),
    ("v_union", "SELECT k AS x, s FROM t1 UNION SELECT a, c FROM t2", ""),
    ("v_intersect", "SELECT k AS x, s FROM t1 INTERSECT SELECT a, c FROM t2", ""),
    ("v_except", "SELECT a AS x, c FROM t2 EXCEPT SELECT k, s FROM t1 WHERE v > 0", ""),
    ("v_top", "SELECT id, v FROM t1 ORDER BY v DESC NULLS LAST, id LIMIT 5", ""),
    ("v_top_offset", "SELECT id, k, v FROM t1 ORDER BY k, id DESC LIMIT 7 OFFSET 3", ""),
    (
        "v_row_number",
        "SELECT * FROM (SELECT k, id, v, row_number() OVER (PARTITION BY k ORDER BY v DESC, id) AS rn FROM t1) t WHERE rn <= 3",
        "",
    ),
    (
        "v_dedup",
        "SELECT a, c, b FROM (SELECT a, c, b, row_number() OVER (PARTITION BY a ORDER BY c, b) AS rn FROM t2) t WHERE rn = 1",
        "",
    ),
    (
        "v_top_join",
        "SELECT t1.id, t2.c FROM t1 JOIN t2 ON t1.k = t2.a ORDER BY t1.id DESC, t2.c, t2.b LIMIT 5",
        "",
    ),
    (
        "v_distinct_aggs",
        "SELECT k, count(*) AS n, count(DISTINCT v) AS dv, sum(DISTINCT v) AS sdv, avg(DISTINCT v) AS adv, count(DISTINCT s) AS ds FROM t1 GROUP BY k",
        "",
    ),
    (
        "v_scalar_sub",
        "SELECT a, c, (SELECT count(*) FROM t1 WHERE t1.k = t2.a) AS n FROM t2 WHERE a < 10",
        "",
    ),
    (
        "v_win_rank",
        "SELECT id, k, v, rank() OVER (PARTITION BY k ORDER BY v DESC NULLS LAST) AS r, dense_rank() OVER (PARTITION BY k ORDER BY v DESC NULLS LAST) AS dr FROM t1",
        "",
    ),
    (
        "v_win_lag",
        "SELECT id, k, lag(v) OVER (PARTITION BY k ORDER BY id) AS pv, lead(v, 2) OVER (PARTITION BY k ORDER BY id) AS nv, lag(s, 1, 'none') OVER (PARTITION BY k ORDER BY id) AS ps FROM t1",
        "",
    ),
    (
        "v_win_rows",
        "SELECT id, sum(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS s4, count(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS c2, min(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN CURRENT ROW AND 3 FOLLOWING) AS m3 FROM t1",
        "",
    ),
    (
        "v_win_running",
        "SELECT id, k, sum(v) OVER (PARTITION BY k ORDER BY id) AS run, row_number() OVER (PARTITION BY k ORDER BY id) AS rn, first_value(v) OVER (PARTITION BY k ORDER BY id) AS fv, last_value(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv FROM t1",
        "",
    ),
    (
        "v_win_range",
        "SELECT a, b, c, sum(b) OVER (PARTITION BY c ORDER BY b RANGE BETWEEN 10 PRECEDING AND CURRENT ROW) AS rs, count(*) OVER (PARTITION BY c) AS cnt FROM t2",
        "",
    ),
    (
        "v_win_global",
        "SELECT id, v, ntile(4) OVER (ORDER BY id) AS q, max(v) OVER () AS top FROM t1 WHERE k = 1",
        "",
    ),
    (
        "v_win_join",
        "SELECT t2.a, t1.id, rank() OVER (PARTITION BY t2.a ORDER BY t1.v) AS r FROM t1 JOIN t2 ON t1.k = t2.a",
        "",
    ),
    ("v_distinct_on", "SELECT DISTINCT ON (k) k, id, v FROM t1 ORDER BY k, v DESC NULLS LAST, id", ""),
    ("v_scalar_where", "SELECT id, v FROM t1 WHERE v > (SELECT avg(b) FROM t2)", ""),
    (
        "v_bool_bit_aggs",
        "SELECT k, bool_and(v > 10) AS ba, bool_or(v > 80) AS bo, every(s <> 'y') AS ev, bit_and(v) AS band, bit_or(v) AS bor, bit_xor(v) AS bx FROM t1 GROUP BY k",
        "",
    ),
    (
        "v_string_agg",
        "SELECT k, string_agg(s, ',' ORDER BY id) AS ids, count(*) AS n FROM t1 GROUP BY k",
        "",
    ),
    (
        "v_string_agg_desc",
        "SELECT k, string_agg(s || ':' || CAST(v AS TEXT), '|' ORDER BY v DESC NULLS FIRST, id) AS vs FROM t1 GROUP BY k",
        "",
    ),
    (
        "v_string_agg_global",
        "SELECT string_agg(c, ';' ORDER BY a, b NULLS LAST, c) AS all_c, count(*) AS n, avg(b) AS ab FROM t2",
        "",
    ),
    (
        "v_win_dist",
        "SELECT id, k, percent_rank() OVER (PARTITION BY k ORDER BY v) AS pr, cume_dist() OVER (PARTITION BY k ORDER BY v) AS cd, nth_value(v, 2) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS second FROM t1",
        "",
    ),
    (
        "v_values_join",
        "SELECT t1.id, c.label FROM t1 JOIN (VALUES (1, 'one'), (2, 'two'), (3, 'three')) AS c(n, label) ON t1.k = c.n",
        "",
    ),
    (
        "v_limit_no_order",
        "SELECT id, v FROM t1 WHERE k = 2 LIMIT 4",
        // The view keeps the first rows in the order of their encoding.
        "SELECT id, v FROM t1 WHERE k = 2 ORDER BY id, v NULLS FIRST LIMIT 4",
    ),
    (
        "v_unnest",
        "SELECT id, unnest(ARRAY[v, v + 1]) AS u, generate_series(1, k % 3) AS g FROM t1 WHERE id % 5 = 0",
        "",
    ),
    (
        "v_rollup",
        "SELECT k, s, count(*) AS n, sum(v) AS sv, grouping(k, s) AS g FROM t1 GROUP BY ROLLUP (k, s)",
        "",
    ),
    (
        "v_cube",
        "SELECT a % 3 AS m, c, max(b) AS mb FROM t2 GROUP BY CUBE (a % 3, c)",
        "",
    ),
    (
        "v_three_way",
        "SELECT t1.id, x.c, y.c AS c2 FROM t1 JOIN t2 x ON t1.k = x.a JOIN t2 y ON x.b = y.a WHERE t1.id < 100",
        "",
    ),
];

fn rand_text(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &["a", "b", "c", "xa", "xb", "y", "xz"];
    WORDS[rng.random_range(0..WORDS.len())].to_string()
}

fn opt_int(rng: &mut StdRng, lo: i64, hi: i64) -> String {
    if rng.random_bool(0.1) {
        "NULL".into()
    } else {
        rng.random_range(lo..hi).to_string()
    }
}

fn random_op(rng: &mut StdRng) -> String {
    match rng.random_range(0..100) {
        0..=29 => {
            let n = rng.random_range(1..4);
            let rows: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "({}, {}, {}, '{}')",
                        rng.random_range(0..400),
                        rng.random_range(0..8),
                        opt_int(rng, -20, 100),
                        rand_text(rng)
                    )
                })
                .collect();
            // Duplicate keys make the statement fail as a whole; that is part of the test.
            format!("INSERT INTO t1 VALUES {}", rows.join(", "))
        }
        30..=41 => format!(
            "UPDATE t1 SET v = v + {} WHERE id = {}",
            rng.random_range(-30..30),
            rng.random_range(0..400)
        ),
        42..=47 => format!(
            "UPDATE t1 SET k = {} WHERE k = {} AND id % 2 = 0",
            rng.random_range(0..8),
            rng.random_range(0..8)
        ),
        48..=51 => format!(
            "UPDATE t1 SET s = '{}', v = NULL WHERE id BETWEEN {} AND {}",
            rand_text(rng),
            rng.random_range(0..400),
            rng.random_range(0..400)
        ),
        52..=61 => format!("DELETE FROM t1 WHERE id = {}", rng.random_range(0..400)),
        62..=64 => format!("DELETE FROM t1 WHERE v < {}", rng.random_range(-20..10)),
        65..=84 => {
            let n = rng.random_range(1..5);
            let rows: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "({}, {}, '{}')",
                        rng.random_range(0..40),
                        opt_int(rng, 0, 100),
                        rand_text(rng)
                    )
                })
                .collect();
            format!("INSERT INTO t2 VALUES {}", rows.join(", "))
        }
        85..=92 => format!("DELETE FROM t2 WHERE a = {}", rng.random_range(0..40)),
        _ => format!(
            "UPDATE t2 SET b = b + 1, c = '{}' WHERE a = {}",
            rand_text(rng),
            rng.random_range(0..40)
        ),
    }
}

async fn check_views(client: &tokio_postgres::Client, step: usize) -> Result<()> {
    for (name, query, batch) in VIEWS {
        let batch = if batch.is_empty() { *query } else { *batch };
        let mut got = query_rows(client, &format!("SELECT * FROM {name}"))
            .await
            .map_err(|e| anyhow::anyhow!("reading view {name}: {e:?}"))?;
        let mut want = query_rows(client, batch)
            .await
            .map_err(|e| anyhow::anyhow!("{batch}: {e:?}"))?;
        got.sort();
        want.sort();
        if got != want {
            bail!("view {name} differs from its batch query after {step} operations:\n  view:  {got:?}\n  batch: {want:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_batch_recompute() -> Result<()> {
    let seed: u64 = std::env::var("FRESHET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261124);
    let ops: usize = std::env::var("FRESHET_DIFF_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6000);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start_with(&["--state-cache-size", "4KiB"]).await?;
    let client = server.connect().await?;
    client
        .batch_execute("CREATE TABLE t1 (id INT PRIMARY KEY, k INT, v INT, s TEXT)")
        .await?;
    client
        .batch_execute("CREATE TABLE t2 (a INT, b INT, c TEXT)")
        .await?;
    // Some rows before the views exist, to exercise backfill.
    for _ in 0..50 {
        let _ = client.batch_execute(&random_op(&mut rng)).await;
    }
    client.batch_execute("FLUSH").await?;
    for (name, query, _) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await?;
    }
    check_views(&client, 0)
        .await
        .map_err(|e| anyhow::anyhow!("seed {seed}: {e}"))?;
    let mut failed = 0usize;
    for i in 1..=ops {
        let sql = random_op(&mut rng);
        if let Err(e) = client.batch_execute(&sql).await {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            if code != "23505" {
                bail!("seed {seed}: unexpected error for {sql}: {e:?}");
            }
            failed += 1;
        }
        if i % 300 == 0 || i == ops {
            client.batch_execute("FLUSH").await?;
            check_views(&client, i)
                .await
                .map_err(|e| anyhow::anyhow!("seed {seed}: {e}"))?;
        }
    }
    eprintln!("differential: seed {seed}, {ops} operations ({failed} refused as duplicate keys), {} views equal to batch recompute", VIEWS.len());
    Ok(())
}
