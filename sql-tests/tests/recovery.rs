//! Crash recovery: `kill -9` at arbitrary points, with and without `FLUSH`.
//!
//! After a `FLUSH`, everything must survive. Without one, the server may lose
//! the epoch in flight, but whatever it recovers must be one committed epoch:
//! every view equal to its query over the recovered tables.

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

const VIEWS: &[(&str, &str)] = &[
    (
        "g",
        "SELECT k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi FROM t GROUP BY k",
    ),
    ("f", "SELECT id, v * 10 AS v10 FROM t WHERE v % 2 = 0"),
    ("tot", "SELECT count(*) AS n, sum(v) AS s FROM t"),
];

async fn consistent(client: &tokio_postgres::Client) -> Result<()> {
    for (name, q) in VIEWS {
        let mut got = query_rows(client, &format!("SELECT * FROM {name}")).await?;
        let mut want = query_rows(client, q).await?;
        got.sort();
        want.sort();
        if got != want {
            bail!("view {name} is not consistent with its tables after recovery:\n view:  {got:?}\n batch: {want:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_keeps_committed_state_consistent() -> Result<()> {
    let mut server = TestServer::start_with(&["--checkpoint-interval", "50ms"]).await?;
    let client = server.connect().await?;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, k INT, v INT)")
        .await?;
    for (name, q) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {q}"))
            .await?;
    }
    let mut next = 0;
    for round in 0..5 {
        let client = server.connect().await?;
        // Flushed rows: must all survive.
        for _ in 0..20 {
            client
                .batch_execute(&format!(
                    "INSERT INTO t VALUES ({next}, {}, {})",
                    next % 7,
                    next * 3 % 11
                ))
                .await?;
            next += 1;
        }
        client
            .batch_execute("UPDATE t SET v = v + 1 WHERE id % 5 = 0")
            .await?;
        client
            .batch_execute(&format!("DELETE FROM t WHERE id = {}", next - 3))
            .await?;
        client.batch_execute("FLUSH").await?;
        let flushed = query_rows(&client, "SELECT count(*) FROM t").await?;
        // Unflushed rows, racing with the 50 ms checkpoints: may or may not survive.
        for _ in 0..30 {
            client
                .batch_execute(&format!(
                    "INSERT INTO t VALUES ({next}, {}, {})",
                    next % 7,
                    next % 5
                ))
                .await?;
            next += 1;
        }
        server.kill_and_restart().await?;
        let client = server.connect().await?;
        let after: i64 = query_rows(&client, "SELECT count(*) FROM t").await?[0][0].parse()?;
        let before: i64 = flushed[0][0].parse()?;
        if after < before {
            bail!("round {round}: {before} rows were flushed but only {after} recovered");
        }
        consistent(&client).await?;
    }
    // A clean stop commits everything.
    let client = server.connect().await?;
    client
        .batch_execute("INSERT INTO t VALUES (100000, 1, 1)")
        .await?;
    server.stop_and_restart().await?;
    let client = server.connect().await?;
    let n = query_rows(&client, "SELECT count(*) FROM t WHERE id = 100000").await?;
    assert_eq!(n[0][0], "1", "SIGTERM must commit pending changes");
    consistent(&client).await?;
    Ok(())
}
