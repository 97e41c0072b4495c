//! The built-in generator sources (datagen, nexmark): deterministic rows,
//! bounded streams, and exact resumption after `kill -9`.

use anyhow::Result;
use freshet_sql_tests::{query_rows, sqlstate_of, wait_rows, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_is_deterministic_and_resumes_exactly() -> Result<()> {
    let mut server = TestServer::start_with(&["--checkpoint-interval", "50ms"]).await?;
    let c = server.connect().await?;
    let def = "(id BIGINT, k INT, name VARCHAR, ts TIMESTAMP) WITH (connector = 'datagen', datagen.rows.per.second = '20000', datagen.seed = '3',
        fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '50000',
        fields.k.kind = 'random', fields.k.min = '1', fields.k.max = '4', fields.name.length = '6',
        fields.ts.kind = 'sequence', fields.ts.start = '1767225600000', fields.ts.step = '1000') FORMAT PLAIN ENCODE JSON";
    c.batch_execute(&format!("CREATE SOURCE gen {def}")).await?;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW tot AS SELECT count(*) AS n, sum(id) AS s, min(k) AS lo, max(k) AS hi, min(ts) AS t0, max(length(name)) AS len FROM gen;
         CREATE MATERIALIZED VIEW d AS SELECT count(DISTINCT id) AS d FROM gen;
         CREATE MATERIALIZED VIEW per_k AS SELECT k, count(*) AS n FROM gen GROUP BY k;",
    )
    .await?;
    // Kill it while it generates; the stream must resume at the committed row.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    server.kill_and_restart().await?;
    let c = server.connect().await?;
    wait_rows(
        &c,
        "SELECT * FROM tot",
        &["50000,1250025000,1,4,2026-01-01 00:00:00,6"],
        60,
    )
    .await?;
    wait_rows(&c, "SELECT * FROM d", &["50000"], 30).await?;
    // Same definition, same rows: a second source gives the same groups.
    c.batch_execute(&format!("CREATE SOURCE gen2 {def}"))
        .await?;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW per_k2 AS SELECT k, count(*) AS n FROM gen2 GROUP BY k",
    )
    .await?;
    let want: Vec<String> = query_rows(&c, "SELECT k, n FROM per_k")
        .await?
        .into_iter()
        .map(|r| r.join(","))
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(want.len(), 4);
    wait_rows(&c, "SELECT k, n FROM per_k2", &want, 60).await?;
    assert_eq!(
        sqlstate_of(
            &c,
            "CREATE SOURCE bad (a INT) WITH (connector = 'datagen', fields.b.kind = 'sequence')"
        )
        .await,
        "22023"
    );
    assert_eq!(
        sqlstate_of(
            &c,
            "CREATE SOURCE bad (a INT) WITH (connector = 'datagen', no.such.option = '1')"
        )
        .await,
        "22023"
    );
    assert_eq!(
        sqlstate_of(&c, "CREATE SOURCE bad (a INT) WITH (connector = 'nosuch')").await,
        "0A000"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_bids_resume_exactly_after_kill() -> Result<()> {
    let mut server = TestServer::start_with(&["--checkpoint-interval", "50ms"]).await?;
    let c = server.connect().await?;
    c.batch_execute(
        "CREATE SOURCE bid WITH (connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '30000', nexmark.min.event.gap.in.ns = '20000', nexmark.base.time = '1767225600000', nexmark.use.real.time = 'true');
         CREATE SOURCE person (id BIGINT, name VARCHAR, city VARCHAR) WITH (connector = 'nexmark', nexmark.table.type = 'Person', nexmark.event.num = '5000', nexmark.min.event.gap.in.ns = '1000');
         CREATE MATERIALIZED VIEW b AS SELECT count(*) AS n, max(price) > min(price) AS varied, min(date_time) >= '2026-01-01' AS timed FROM bid;
         CREATE MATERIALIZED VIEW p AS SELECT count(*) AS n, max(id) - min(id) + 1 AS d FROM person;",
    )
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.kill_and_restart().await?;
    let c = server.connect().await?;
    // nexmark.event.num counts events of all three types: 46 in 50 are
    // bids, 1 in 50 a person.
    wait_rows(&c, "SELECT * FROM b", &["27600,t,t"], 90).await?;
    wait_rows(&c, "SELECT * FROM p", &["100,100"], 30).await?;
    assert_eq!(
        sqlstate_of(
            &c,
            "CREATE SOURCE x WITH (connector = 'nexmark', nexmark.use.real.time = 'sometimes')"
        )
        .await,
        "22023"
    );
    // Columns of a nexmark source must be nexmark columns.
    assert_eq!(
        sqlstate_of(
            &c,
            "CREATE SOURCE x (nope INT) WITH (connector = 'nexmark')"
        )
        .await,
        "22023"
    );
    Ok(())
}
