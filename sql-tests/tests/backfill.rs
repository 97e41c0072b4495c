//! A view over a big table is built while everything else goes on: DML
//! into other tables commits, a view over a live source keeps moving, and
//! the big table's own changes during the backfill end up in the view
//! exactly once.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

const ROWS: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_backfill_leaves_the_rest_running() -> Result<()> {
    let server = TestServer::start_with(&["--checkpoint-interval", "100ms"]).await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, g INT, v BIGINT);
         INSERT INTO big SELECT i, i % 10, i * 2 FROM generate_series(1, {ROWS}) AS t(i);
         CREATE TABLE other (x INT);
         CREATE SOURCE gen (n BIGINT) WITH (connector = 'datagen', datagen.rows.per.second = '2000', fields.n.kind = 'sequence', fields.n.start = '1');
         CREATE MATERIALIZED VIEW live AS SELECT count(*) AS n FROM gen;
         FLUSH;"
    ))
    .await?;
    let view = "SELECT a.g, count(*) AS n, sum(b.v) AS s FROM big a JOIN big b ON a.id = b.id GROUP BY a.g";
    let creator = server.connect().await?;
    let sql = format!("CREATE MATERIALIZED VIEW heavy AS {view}");
    let t0 = Instant::now();
    let create = tokio::spawn(async move { creator.batch_execute(&sql).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count = |rows: Vec<Vec<String>>| -> i64 {
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let live0 = count(query_rows(&c, "SELECT n FROM live").await?);
    // Epochs commit while the view backfills: the live view moves.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let live_mid = count(query_rows(&c, "SELECT n FROM live").await?);
    let moving = !create.is_finished();
    // Changes to the table being read, at both ends of its key range.
    let i0 = Instant::now();
    c.batch_execute("INSERT INTO other VALUES (1); FLUSH")
        .await?;
    let insert_ms = i0.elapsed().as_millis();
    c.batch_execute(&format!(
        "UPDATE big SET v = v + 1 WHERE id <= 1000 OR id > {};
         DELETE FROM big WHERE id % 100000 = 7;
         INSERT INTO big VALUES ({}, 3, 5), (0, 4, 6);
         FLUSH",
        ROWS - 1000,
        ROWS + 1
    ))
    .await?;
    let other = query_rows(&c, "SELECT count(*) FROM other").await?;
    let during = !create.is_finished();
    println!(
        "during the backfill: live view {live0} -> {live_mid} (still creating: {moving}); INSERT + FLUSH into another table took {insert_ms} ms (still creating after the changes: {during})"
    );
    match tokio::time::timeout(Duration::from_secs(600), create).await {
        Ok(r) => r??,
        Err(_) => bail!("CREATE MATERIALIZED VIEW did not finish"),
    }
    println!("the backfill took {:.1} s", t0.elapsed().as_secs_f64());
    assert!(
        moving,
        "the backfill ended before the checks: make it bigger"
    );
    assert!(
        live_mid > live0,
        "the live view did not move while the view backfilled: {live0} -> {live_mid}"
    );
    assert_eq!(other, vec![vec!["1".to_string()]]);
    c.batch_execute("FLUSH").await?;
    let got = query_rows(&c, "SELECT g, n, s FROM heavy ORDER BY g").await?;
    let want = query_rows(&c, &format!("{view} ORDER BY 1")).await?;
    assert_eq!(got, want);
    // And it keeps up afterwards.
    c.batch_execute("DELETE FROM big WHERE g = 9; FLUSH")
        .await?;
    let got = query_rows(&c, "SELECT g, n, s FROM heavy ORDER BY g").await?;
    let want = query_rows(&c, &format!("{view} ORDER BY 1")).await?;
    assert_eq!(got, want);
    Ok(())
}
