//! Event time over a real server: state stays flat while windows pass, and
//! `EMIT ON WINDOW CLOSE` views only ever receive inserts.

use anyhow::{bail, Result};
use freshet_sql_tests::{query_rows, TestServer};

/// `SHOW STATE`'s entry count for `view`.
async fn state_keys(client: &tokio_postgres::Client, view: &str) -> Result<i64> {
    for row in query_rows(client, "SHOW STATE").await? {
        if row[0] == view {
            return Ok(row[1].parse()?);
        }
    }
    bail!("no state row for {view}")
}

/// One `SHOW WATERMARKS` column for view `view`.
async fn watermark_stat(client: &tokio_postgres::Client, view: &str, col: usize) -> Result<String> {
    for row in query_rows(client, "SHOW WATERMARKS").await? {
        if row[0] == "view" && row[1] == view {
            return Ok(row[col].clone());
        }
    }
    bail!("no watermark row for {view}")
}

/// 2,000,000 events (1M per table) over 100,000 seconds of event time,
/// through a tumbling-window count per key and an interval join. Without
/// state cleaning both would hold every window and every row; with it, the
/// state store holds only what the watermark has not passed, the same
/// amount after the 5th chunk as after the 40th.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_stays_bounded_as_windows_pass() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE ev (k INT, ts TIMESTAMP, v INT, WATERMARK FOR ts AS ts - INTERVAL '5 seconds') APPEND ONLY;
             CREATE TABLE ev2 (k INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5 seconds') APPEND ONLY;
             CREATE MATERIALIZED VIEW per_window AS
               SELECT k, window_start, count(*) AS n, sum(v) AS s
               FROM TUMBLE(ev, ts, INTERVAL '10 seconds') GROUP BY k, window_start;
             CREATE MATERIALIZED VIEW matched AS
               SELECT a.k, a.ts, b.ts AS ts2 FROM ev a JOIN ev2 b
               ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '2 seconds';",
        )
        .await?;
    const CHUNK: i64 = 25_000; // rows per table per chunk: 2,500 s of event time
    const CHUNKS: i64 = 40;
    let mut sizes = Vec::new();
    for c in 0..CHUNKS {
        let (lo, hi) = (c * CHUNK + 1, (c + 1) * CHUNK);
        client
            .batch_execute(&format!(
                "INSERT INTO ev SELECT (i % 5000)::int, to_timestamp(i / 10)::timestamp, 1 FROM generate_series({lo}, {hi}) AS t(i);
                 INSERT INTO ev2 SELECT (i % 5000)::int, to_timestamp(i / 10 + 1)::timestamp FROM generate_series({lo}, {hi}) AS t(i);
                 FLUSH;"
            ))
            .await?;
        let w = state_keys(&client, "per_window").await?;
        let j = state_keys(&client, "matched").await?;
        eprintln!("chunk {c}: state keys {w} (window view), {j} (join)");
        sizes.push((w, j));
    }
    eprintln!("state keys (window view, join view) after each chunk: {sizes:?}");
    let (w5, j5) = sizes[4];
    let (wn, jn) = sizes[sizes.len() - 1];
    let (wmax, jmax) = sizes[4..]
        .iter()
        .fold((0, 0), |(a, b), (w, j)| (a.max(*w), b.max(*j)));
    // Bounded: the last chunk holds no more than the fifth (plus a little
    // for where the chunk boundary falls), far below the rows fed.
    if wmax > w5 + 50 || jmax > j5 + 50 {
        bail!("state grows with time: {sizes:?}");
    }
    if wn > 1_000 || jn > 1_000 {
        bail!("state is not cleaned: window view {wn} keys, join {jn} keys");
    }
    // The results are complete: every event counted once, every click
    // matched with the purchases in its 2-second range.
    let total = query_rows(&client, "SELECT sum(n) FROM per_window").await?;
    assert_eq!(total[0][0], (CHUNK * CHUNKS).to_string());
    // Rows of one key are 5,000 apart (500 s), so each click i meets
    // exactly one purchase in its range: purchase i, one second later.
    let matched = query_rows(&client, "SELECT count(*) FROM matched").await?;
    assert_eq!(matched[0][0], (CHUNK * CHUNKS).to_string());
    Ok(())
}

/// Inserts (key, second) events into `ev` and flushes.
async fn insert_events(client: &tokio_postgres::Client, events: &[(i64, i64)]) -> Result<()> {
    let values: Vec<String> = events
        .iter()
        .map(|(k, s)| format!("({k}, to_timestamp({s})::timestamp)"))
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO ev VALUES {}; FLUSH;",
            values.join(", ")
        ))
        .await?;
    Ok(())
}

/// Out-of-order and late events against an `EMIT ON WINDOW CLOSE` view:
/// nothing is ever retracted from it, each window appears once with its
/// final count, late events are counted, and all of it survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_on_window_close_only_appends() -> Result<()> {
    let mut server = TestServer::start().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE ev (k INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '3 seconds') APPEND ONLY;
             CREATE MATERIALIZED VIEW closed AS
               SELECT k, window_start, window_end, count(*) AS n
               FROM TUMBLE(ev, ts, INTERVAL '5 seconds') GROUP BY k, window_start, window_end
               EMIT ON WINDOW CLOSE;
             CREATE MATERIALIZED VIEW live AS
               SELECT k, window_start, count(*) AS n
               FROM TUMBLE(ev, ts, INTERVAL '5 seconds') GROUP BY k, window_start;",
        )
        .await?;
    // A deterministic shuffle of 2,000 events at 0..1000 s, each up to 2 s
    // out of order (within the watermark delay), in batches with FLUSH.
    let mut events: Vec<(i64, i64, i64)> = (0..2000)
        .map(|i| (i + (i * 7919) % 4, i % 3, i / 2))
        .collect();
    events.sort();
    let events: Vec<(i64, i64)> = events.into_iter().map(|(_, k, s)| (k, s)).collect();
    for (b, chunk) in events.chunks(50).enumerate() {
        insert_events(&client, chunk).await?;
        if b == 20 {
            // Restart mid-stream: window state and the closing watermark
            // must come back.
            drop(client);
            server.stop_and_restart().await?;
            let c = server.connect().await?;
            return finish(server, c, &events[(b + 1) * 50..]).await;
        }
    }
    bail!("unreachable")
}

async fn finish(
    server: TestServer,
    client: tokio_postgres::Client,
    rest: &[(i64, i64)],
) -> Result<()> {
    for chunk in rest.chunks(50) {
        insert_events(&client, chunk).await?;
    }
    // Two late events: their windows closed long ago.
    client
        .batch_execute(
            "INSERT INTO ev VALUES (0, to_timestamp(3)::timestamp), (1, to_timestamp(500)::timestamp); FLUSH;",
        )
        .await?;
    if watermark_stat(&client, "closed", 5).await? != "0" {
        bail!("a retraction reached the EMIT ON WINDOW CLOSE view");
    }
    let late: i64 = watermark_stat(&client, "closed", 4).await?.parse()?;
    if late < 2 {
        bail!("late events not counted: {late}");
    }
    // Every closed window once, with its complete count; the live view has
    // the same windows (plus the still-open last ones).
    let closed = query_rows(
        &client,
        "SELECT k, window_start, n FROM closed ORDER BY k, window_start",
    )
    .await?;
    let live = query_rows(
        &client,
        "SELECT l.k, l.window_start, l.n FROM live l JOIN (SELECT max(window_start) AS m FROM closed) c ON l.window_start <= c.m ORDER BY l.k, l.window_start",
    )
    .await?;
    assert_eq!(closed, live);
    let dup = query_rows(
        &client,
        "SELECT count(*) FROM (SELECT k, window_start FROM closed GROUP BY k, window_start HAVING count(*) > 1) d",
    )
    .await?;
    assert_eq!(dup[0][0], "0");
    // 0..1000 s in 5 s windows: windows up to the watermark (997 s) closed.
    assert!(closed.len() >= 3 * 199, "{} closed windows", closed.len());
    for row in &closed {
        assert!(
            row[2] == "3" || row[2] == "4",
            "window {row:?} is incomplete"
        );
    }
    drop(server);
    Ok(())
}

/// `WHERE ts > now() - INTERVAL ...` in a view: rows leave it as the
/// processing time passes their expiry, and one already expired never
/// enters. (Timing: the expiry is 2 seconds; the test waits up to 30.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_filter_expires_rows_as_time_passes() -> Result<()> {
    let server = TestServer::start().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE ev (id INT, ts TIMESTAMPTZ);
             CREATE MATERIALIZED VIEW recent AS SELECT id FROM ev WHERE ts > now() - INTERVAL '2 seconds';
             CREATE MATERIALIZED VIEW recent_count AS SELECT count(*) AS n FROM ev WHERE ts >= now() - INTERVAL '2 seconds';
             INSERT INTO ev VALUES (1, now()), (2, now() - INTERVAL '1 hour'), (3, now() + INTERVAL '1 hour');
             FLUSH;",
        )
        .await?;
    let rows = query_rows(&client, "SELECT id FROM recent ORDER BY id").await?;
    assert_eq!(rows, vec![vec!["1".to_string()], vec!["3".to_string()]]);
    // Row 1 expires after 2 seconds; row 3 in an hour.
    freshet_sql_tests::wait_rows(&client, "SELECT id FROM recent", &["3"], 30).await?;
    freshet_sql_tests::wait_rows(&client, "SELECT n FROM recent_count", &["1"], 30).await?;
    // A plain query still reads now() as the current time.
    let rows = query_rows(
        &client,
        "SELECT count(*) FROM ev WHERE ts > now() - INTERVAL '2 seconds'",
    )
    .await?;
    assert_eq!(rows[0][0], "1");
    Ok(())
}
