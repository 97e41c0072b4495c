//! One reader per source: views of one source agree in every snapshot
//! (also across SIGKILLs), a self-join reads its source once, and a view
//! created later catches up with no gap and no duplicate.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use freshet_sql_tests::kafka::Broker;
use freshet_sql_tests::{query_rows, wait_rows, TestServer};

/// Two views of one Kafka source, read together by one `SELECT` again and
/// again while the source is read and the server is killed: the count of
/// one always equals the sum of the other's groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_of_one_source_agree_in_every_snapshot() -> Result<()> {
    const N: i64 = 120_000;
    let broker = Broker::shared()?;
    broker.create_topic("agree", 3).await?;
    let mut server = TestServer::start_with(&["--checkpoint-interval", "20ms"]).await?;
    {
        let c = server.connect().await?;
        c.batch_execute(&format!(
            "CREATE SOURCE agree (id BIGINT, g INT) WITH (connector = 'kafka', topic = 'agree', properties.bootstrap.server = '{}', scan.startup.mode = 'earliest', source.max.chunk.rows = '500') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n FROM agree;
             CREATE MATERIALIZED VIEW by_group AS SELECT g, count(*) AS n FROM agree GROUP BY g;",
            broker.addr()
        ))
        .await?;
    }
    let addr = broker.addr();
    let producer = std::thread::spawn(move || -> Result<()> {
        let p = Broker::producer_for(&addr)?;
        for chunk in 0..60 {
            for i in chunk * (N / 60)..(chunk + 1) * (N / 60) {
                let line = format!(r#"{{"id": {i}, "g": {}}}"#, i % 11);
                p.send_str("agree", Some((i % 3) as i32), &line)?;
            }
            p.flush()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    });
    let sql = "SELECT (SELECT n FROM total), (SELECT sum(n) FROM by_group)";
    let (mut checked, mut kills, mut moving) = (0, 0, 0);
    let mut last = String::new();
    let t0 = Instant::now();
    while checked < 300 || kills < 5 || !producer.is_finished() {
        if t0.elapsed() > Duration::from_secs(240) {
            bail!("gave up after {checked} snapshots and {kills} kills");
        }
        let c = server.connect().await?;
        for _ in 0..40 {
            let rows = query_rows(&c, sql).await?;
            let row = rows.first().cloned().unwrap_or_default();
            let (a, b) = (row.first().cloned(), row.get(1).cloned());
            // Before the first group the sum is NULL.
            let zero = |v: &Option<String>| match v.as_deref() {
                None | Some("NULL") => "0".to_string(),
                Some(v) => v.to_string(),
            };
            if zero(&a) != zero(&b) {
                bail!("snapshot {checked}: total {a:?} but groups sum to {b:?}");
            }
            let now = a.unwrap_or_default();
            if now != last {
                moving += 1;
                last = now;
            }
            checked += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if kills < 8 {
            server.kill_and_restart().await?;
            kills += 1;
        }
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let c = server.connect().await?;
    wait_rows(&c, "SELECT n FROM total", &[&N.to_string()], 120).await?;
    wait_rows(&c, "SELECT sum(n) FROM by_group", &[&N.to_string()], 30).await?;
    eprintln!(
        "agreement: {checked} snapshots ({moving} distinct totals), {kills} SIGKILLs, all agree"
    );
    assert!(
        moving >= 10,
        "the views hardly moved while checked: {moving}"
    );
    Ok(())
}

/// A view created while its source is being read joins the source's one
/// reader and reads what came before by itself: killed while it catches
/// up, it still ends with every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_view_catches_up_exactly_once() -> Result<()> {
    const N: i64 = 60_000;
    let broker = Broker::shared()?;
    broker.create_topic("late", 3).await?;
    let addr = broker.addr();
    let producer = std::thread::spawn(move || -> Result<()> {
        let p = Broker::producer_for(&addr)?;
        for chunk in 0..30 {
            for i in chunk * (N / 30)..(chunk + 1) * (N / 30) {
                let line = format!(r#"{{"id": {i}, "v": {}}}"#, i * 2 + 1);
                p.send_str("late", Some((i % 3) as i32), &line)?;
            }
            p.flush()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    });
    let mut server = TestServer::start_with(&["--checkpoint-interval", "50ms"]).await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE late (id BIGINT, v BIGINT) WITH (connector = 'kafka', topic = 'late', properties.bootstrap.server = '{}', scan.startup.mode = 'earliest', source.max.chunk.rows = '300') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW first AS SELECT count(*) AS n, sum(v) AS s, count(DISTINCT id) AS d FROM late;",
        broker.addr()
    ))
    .await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW second AS SELECT count(*) AS n, sum(v) AS s, count(DISTINCT id) AS d FROM late",
    )
    .await?;
    let progress = query_rows(&c, "SHOW SOURCE PROGRESS").await?;
    println!("progress after the second view: {progress:?}");
    for wait in [300u64, 900] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill_and_restart().await?;
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let c = server.connect().await?;
    let s: i64 = (0..N).map(|i| i * 2 + 1).sum();
    let want = format!("{N},{s},{N}");
    wait_rows(&c, "SELECT n, s, d FROM first", &[&want], 120).await?;
    wait_rows(&c, "SELECT n, s, d FROM second", &[&want], 120).await?;
    Ok(())
}

/// Generators: a view created later sees the same rows as the first (the
/// shared reader's base time), and a self-join of a source reads it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_views_share_one_reader() -> Result<()> {
    const N: i64 = 40_000;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE bids WITH (connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '{N}', nexmark.split.num = '1', nexmark.min.event.gap.in.ns = '100000');
         CREATE MATERIALIZED VIEW a AS SELECT count(*) AS n, sum(price) AS p, max(date_time) AS t FROM bids;"
    ))
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW b AS SELECT count(*) AS n, sum(price) AS p, max(date_time) AS t FROM bids;
         CREATE MATERIALIZED VIEW self_join AS SELECT count(*) AS n FROM bids x JOIN bids y ON x.auction = y.auction AND x.bidder = y.bidder AND x.date_time = y.date_time AND x.price = y.price",
    )
    .await?;
    let t0 = Instant::now();
    let progress = loop {
        let progress = query_rows(&c, "SHOW SOURCE PROGRESS").await?;
        if progress.iter().all(|r| r[4] == "t") && progress.len() >= 3 {
            break progress;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("readers did not finish: {progress:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("progress: {progress:?}");
    c.batch_execute("FLUSH").await?;
    let a = query_rows(&c, "SELECT n, p, t FROM a").await?;
    let b = query_rows(&c, "SELECT n, p, t FROM b").await?;
    assert_eq!(a, b);
    // The bids of N events (the rest are people and auctions).
    let bids = a
        .first()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or_default();
    assert!(
        bids.parse::<i64>().is_ok_and(|b| b > N / 2 && b < N),
        "{a:?}"
    );
    // One reader read them once for all three views; the two later views
    // each caught up on what came before they joined.
    for view in ["a", "b", "self_join"] {
        let rows: Vec<&Vec<String>> = progress.iter().filter(|r| r[1] == view).collect();
        assert!(rows.iter().any(|r| r[2] == bids), "{view}: {progress:?}");
        assert!(rows.len() <= 2, "{view}: {progress:?}");
    }
    // Every bid meets itself (and its equal twins, if any).
    let n = query_rows(&c, "SELECT n FROM self_join").await?;
    assert!(
        n.first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|v| bids.parse::<i64>().is_ok_and(|b| v >= b)),
        "{n:?}"
    );
    Ok(())
}
