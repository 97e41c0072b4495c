//! Several clients changing tables at once while others query: every
//! acknowledged change lands exactly once and views stay equal to their query.

use anyhow::Result;
use freshet_sql_tests::{query_rows, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers() -> Result<()> {
    let server = TestServer::start_with(&["--checkpoint-interval", "20ms"]).await?;
    let setup = server.connect().await?;
    setup
        .batch_execute(
            "CREATE TABLE c (id INT PRIMARY KEY, w INT, v INT);
             CREATE MATERIALIZED VIEW per_writer AS SELECT w, count(*) AS n, sum(v) AS s, max(v) AS m FROM c GROUP BY w;
             CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n FROM per_writer;",
        )
        .await?;
    let mut tasks = Vec::new();
    for w in 0..4i32 {
        let client = server.connect().await?;
        tasks.push(tokio::spawn(async move {
            for i in 0..150i32 {
                let id = w * 1000 + i;
                client
                    .batch_execute(&format!("INSERT INTO c VALUES ({id}, {w}, {i})"))
                    .await?;
                if i % 10 == 9 {
                    client
                        .batch_execute(&format!("DELETE FROM c WHERE id = {}", id - 5))
                        .await?;
                    client
                        .batch_execute(&format!("UPDATE c SET v = v + 100 WHERE id = {}", id - 3))
                        .await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    // Readers see consistent snapshots meanwhile: a view never disagrees with the view over it.
    let reader = server.connect().await?;
    for _ in 0..30 {
        let rows = query_rows(
            &reader,
            "SELECT (SELECT count(*) FROM per_writer), (SELECT n FROM total)",
        )
        .await?;
        assert_eq!(
            rows[0][0], rows[0][1],
            "views from one query come from one epoch"
        );
    }
    for t in tasks {
        t.await??;
    }
    setup.batch_execute("FLUSH").await?;
    let mut got = query_rows(&setup, "SELECT * FROM per_writer").await?;
    let mut want = query_rows(
        &setup,
        "SELECT w, count(*), sum(v), max(v) FROM c GROUP BY w",
    )
    .await?;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let n = query_rows(&setup, "SELECT count(*) FROM c").await?;
    assert_eq!(n[0][0], (4 * (150 - 15)).to_string());
    Ok(())
}
