//! Failure isolation: a view whose operator fails at run time is marked
//! failed (with every view that reads it) and stays failed across a
//! restart; every other view and all DML go on.

use anyhow::Result;
use freshet_sql_tests::{query_rows, sqlstate_of, TestServer};

/// (name, status, error contains) of every materialized view.
async fn views(c: &tokio_postgres::Client) -> Result<Vec<(String, String, String)>> {
    let mut rows: Vec<(String, String, String)> = query_rows(c, "SHOW MATERIALIZED VIEWS")
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    rows.sort();
    Ok(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_view_fails_alone_and_stays_failed() -> Result<()> {
    // `bad` fails at its first change (injected: views turn expression
    // errors into NULLs, so no SQL makes one fail on purpose).
    let mut server = TestServer::start_with(&["--fail-view", "bad"]).await?;
    let c = server.connect().await?;
    c.batch_execute(
        "CREATE TABLE t (x INT);
         CREATE TABLE other (y INT);
         CREATE MATERIALIZED VIEW good AS SELECT count(*) AS n FROM t;
         CREATE MATERIALIZED VIEW bad AS SELECT 10 / x AS q FROM t;
         CREATE MATERIALIZED VIEW worse AS SELECT count(*) AS n FROM bad;
         CREATE MATERIALIZED VIEW apart AS SELECT sum(y) AS s FROM other;
         FLUSH;",
    )
    .await?;
    // `bad` fails on these rows: the INSERT and the FLUSH succeed.
    c.batch_execute("INSERT INTO t VALUES (1), (2); FLUSH;")
        .await?;
    c.batch_execute("INSERT INTO t VALUES (0), (3); FLUSH;")
        .await?;
    c.batch_execute("INSERT INTO other VALUES (7); INSERT INTO t VALUES (4); FLUSH;")
        .await?;
    assert_eq!(query_rows(&c, "SELECT n FROM good").await?, vec![vec!["5"]]);
    assert_eq!(
        query_rows(&c, "SELECT s FROM apart").await?,
        vec![vec!["7"]]
    );
    let v = views(&c).await?;
    assert_eq!(v[0].0, "apart");
    assert_eq!((v[1].0.as_str(), v[1].1.as_str()), ("bad", "failed"));
    assert!(v[1].2.contains("injected failure"), "{v:?}");
    assert_eq!((v[2].0.as_str(), v[2].1.as_str()), ("good", "running"));
    assert_eq!((v[3].0.as_str(), v[3].1.as_str()), ("worse", "failed"));
    assert!(v[3].2.contains("\"bad\""), "{v:?}");
    // Its last committed contents stay readable; nothing new reads it.
    assert_eq!(
        query_rows(&c, "SELECT count(*) FROM bad").await?,
        vec![vec!["0"]]
    );
    assert_eq!(
        sqlstate_of(&c, "DECLARE c CURSOR FOR SUBSCRIBE bad").await,
        "55000",
        "subscribing to a failed view"
    );
    assert_eq!(
        sqlstate_of(&c, "CREATE MATERIALIZED VIEW again AS SELECT q FROM bad").await,
        "55000"
    );

    server.kill_and_restart().await?;
    let c = server.connect().await?;
    let after = views(&c).await?;
    assert_eq!(after, v, "failures survive a restart");
    c.batch_execute("INSERT INTO t VALUES (6); INSERT INTO other VALUES (1); FLUSH;")
        .await?;
    assert_eq!(query_rows(&c, "SELECT n FROM good").await?, vec![vec!["6"]]);
    assert_eq!(
        query_rows(&c, "SELECT s FROM apart").await?,
        vec![vec!["8"]]
    );

    // DROP recovers: a new view of the same query runs.
    c.batch_execute(
        "DROP MATERIALIZED VIEW worse; DROP MATERIALIZED VIEW bad;
         DELETE FROM t WHERE x = 0;
         CREATE MATERIALIZED VIEW bad2 AS SELECT 10 / x AS q FROM t; FLUSH;",
    )
    .await?;
    let v = views(&c).await?;
    assert_eq!(
        v.iter()
            .map(|r| (r.0.as_str(), r.1.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("apart", "running"),
            ("bad2", "running"),
            ("good", "running")
        ]
    );
    assert_eq!(
        query_rows(&c, "SELECT count(*) FROM bad2").await?,
        vec![vec!["5"]]
    );
    Ok(())
}
