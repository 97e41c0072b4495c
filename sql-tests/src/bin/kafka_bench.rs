//! `freshet-kafka-bench`: Kafka ingest throughput and end-to-end freshness of
//! a real `freshet` server reading from a real Apache Kafka broker (started here).
//! Prints figures; never fails on a number.
//!
//! ```text
//! cargo run --release -p freshet-sql-tests --bin freshet-kafka-bench -- [EVENTS] [CHECKPOINT]
//! ```
//!
//! 1. Ingest: produces EVENTS JSON events (default 1,000,000) to a
//!    3-partition topic *first*, then creates a source and a `GROUP BY` view
//!    and times until the view has counted every event (events/s).
//! 2. Freshness: produces 2,000 events at ~200/s, each carrying its send
//!    time, while polling `max(id)` of a view every 5 ms; an event's freshness
//!    is the time from its send to the first poll that sees it (p50/p99).
//!    The server runs with `--checkpoint-interval CHECKPOINT` (default 1s).

use std::time::{Duration, Instant};

use anyhow::Result;
use freshet_sql_tests::kafka::Broker;
use freshet_sql_tests::{query_rows, TestServer};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let checkpoint = args.get(2).cloned().unwrap_or_else(|| "1s".into());
    let broker = Broker::start()?;
    println!(
        "broker: Apache Kafka (single node, KRaft) on {}",
        broker.addr()
    );
    broker.create_topic("bench", 3).await?;
    broker.create_topic("fresh", 1).await?;

    let p = broker.producer()?;
    let t = Instant::now();
    for i in 0..events {
        let line = format!(
            r#"{{"id": {i}, "user_id": {}, "amount": {}, "kind": "{}"}}"#,
            i % 1000,
            i % 97,
            if i % 3 == 0 { "buy" } else { "view" }
        );
        p.send_str("bench", Some((i % 3) as i32), &line)?;
    }
    p.flush()?;
    println!(
        "produced {events} events in {:.1} s ({:.0} events/s, not part of the measurement)",
        t.elapsed().as_secs_f64(),
        events as f64 / t.elapsed().as_secs_f64()
    );

    let server = TestServer::start_with(&["--checkpoint-interval", &checkpoint]).await?;
    let c = server.connect().await?;
    let with = format!(
        "connector = 'kafka', topic = 'bench', properties.bootstrap.server = '{}'",
        broker.addr()
    );
    let start = Instant::now();
    c.batch_execute(&format!(
        "CREATE SOURCE ev (id BIGINT, user_id BIGINT, amount BIGINT, kind VARCHAR) WITH ({with}) FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW per_user AS SELECT user_id, count(*) AS n, sum(amount) AS s FROM ev GROUP BY user_id;
         CREATE MATERIALIZED VIEW tot AS SELECT count(*) AS n FROM ev;"
    ))
    .await?;
    loop {
        let r = query_rows(&c, "SELECT n FROM tot").await?;
        if r.first().and_then(|r| r[0].parse::<u64>().ok()) == Some(events) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {events} JSON events from 3 partitions into a GROUP BY view (1,000 groups) and a count view: {secs:.2} s, {:.0} events/s",
        events as f64 / secs
    );

    // Freshness.
    c.batch_execute(&format!(
        "CREATE SOURCE fr (id BIGINT, sent BIGINT) WITH (connector = 'kafka', topic = 'fresh', properties.bootstrap.server = '{}') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW seen AS SELECT max(id) AS m FROM fr;",
        broker.addr()
    ))
    .await?;
    let n = 2000u64;
    let addr = broker.addr();
    let base = Instant::now();
    let producer = std::thread::spawn(move || -> Result<Vec<f64>> {
        let p = Broker::producer_for(&addr)?;
        let mut sent = Vec::with_capacity(n as usize);
        for i in 0..n {
            let at = base.elapsed().as_secs_f64();
            p.send_str("fresh", None, &format!(r#"{{"id": {i}, "sent": 0}}"#))?;
            p.flush()?;
            sent.push(at);
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(sent)
    });
    let mut seen_at: Vec<Option<f64>> = vec![None; n as usize];
    let mut max_seen: i64 = -1;
    while max_seen < n as i64 - 1 {
        let r = query_rows(&c, "SELECT m FROM seen").await?;
        let now = base.elapsed().as_secs_f64();
        if let Some(m) = r.first().and_then(|r| r[0].parse::<i64>().ok()) {
            for id in (max_seen + 1)..=m {
                seen_at[id as usize] = Some(now);
            }
            max_seen = max_seen.max(m);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let mut lat: Vec<f64> = sent
        .iter()
        .zip(&seen_at)
        .filter_map(|(s, v)| v.map(|v| (v - s) * 1000.0))
        .collect();
    let p50 = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);
    println!(
        "freshness (produce -> visible in a view), {n} events at ~200/s, checkpoint {checkpoint}: p50 {p50:.0} ms, p99 {p99:.0} ms"
    );
    Ok(())
}
