//! Kafka sources against a real Apache Kafka broker started here (one
//! shared by the tests that do not stop it, each on topics of its own),
//! with records produced by librdkafka: formats, partitions, bad input,
//! restarts of the server and of the broker, and exactly-once counting.

use std::time::Duration;

use anyhow::{bail, Result};
use freshet_sql_tests::kafka::Broker;
use freshet_sql_tests::{query_rows, sqlstate_of, wait_rows, TestServer};
use rand::Rng;

fn kafka_with(b: &Broker, topic: &str) -> String {
    format!(
        "connector = 'kafka', topic = '{topic}', properties.bootstrap.server = '{}', scan.startup.mode = 'earliest'",
        b.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_source_with_filter_and_group_by_views() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("orders", 1).await?;
    let p = broker.producer()?;
    for i in 0..100 {
        p.send_str(
            "orders",
            None,
            &format!(
                r#"{{"id": {i}, "customer": "c{}", "amount": {}, "ts": "2026-01-01T00:00:{:02}Z"}}"#,
                i % 3,
                i,
                i % 60
            ),
        )?;
    }
    p.flush()?;
    let mut server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE orders (id BIGINT, customer VARCHAR, amount INT, ts TIMESTAMP) WITH ({}) FORMAT PLAIN ENCODE JSON",
        kafka_with(broker, "orders")
    ))
    .await?;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW big AS SELECT id, amount FROM orders WHERE amount >= 95;
         CREATE MATERIALIZED VIEW per_customer AS SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer;",
    )
    .await?;
    wait_rows(
        &c,
        "SELECT * FROM big",
        &["95,95", "96,96", "97,97", "98,98", "99,99"],
        30,
    )
    .await?;
    wait_rows(
        &c,
        "SELECT * FROM per_customer",
        &["c0,34,1683", "c1,33,1617", "c2,33,1650"],
        30,
    )
    .await?;
    assert_eq!(
        query_rows(&c, "SHOW SOURCES").await?,
        vec![vec!["orders".to_string()]]
    );
    assert_eq!(sqlstate_of(&c, "SELECT * FROM orders").await, "0A000");
    assert_eq!(
        sqlstate_of(&c, "INSERT INTO orders VALUES (1, 'x', 1, now())").await,
        "42809"
    );
    // Live: new events show up; a clean restart neither loses nor repeats.
    p.send_str(
        "orders",
        None,
        r#"{"id": 100, "customer": "c0", "amount": 1000}"#,
    )?;
    p.flush()?;
    wait_rows(
        &c,
        "SELECT n, total FROM per_customer WHERE customer = 'c0'",
        &["35,2683"],
        30,
    )
    .await?;
    server.stop_and_restart().await?;
    let c = server.connect().await?;
    p.send_str(
        "orders",
        None,
        r#"{"id": 101, "customer": "c0", "amount": 1}"#,
    )?;
    p.flush()?;
    wait_rows(
        &c,
        "SELECT n, total FROM per_customer WHERE customer = 'c0'",
        &["36,2684"],
        30,
    )
    .await?;
    wait_rows(&c, "SELECT count(*) FROM big", &["6"], 30).await?;
    // Dropping the source needs CASCADE while views read it.
    assert_eq!(sqlstate_of(&c, "DROP SOURCE orders").await, "2BP01");
    c.batch_execute("DROP SOURCE orders CASCADE").await?;
    assert!(query_rows(&c, "SHOW MATERIALIZED VIEWS").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_source() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("csv", 1).await?;
    let p = broker.producer()?;
    for line in [
        "1;apple;1.5",
        "2;pear;2.25",
        "3;\"fig; dried\";4",
        "oops;x;y",
        "4;kiwi;",
    ] {
        p.send_str("csv", None, line)?;
    }
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE fruit (id INT, name VARCHAR, price DOUBLE PRECISION) WITH ({}) FORMAT PLAIN ENCODE CSV (without_header = 'true', delimiter = ';');
         CREATE MATERIALIZED VIEW f AS SELECT id, name, price FROM fruit;",
        kafka_with(broker, "csv")
    ))
    .await?;
    wait_rows(
        &c,
        "SELECT id, name, coalesce(price, -1) FROM f",
        &["1,apple,1.5", "2,pear,2.25", "3,fig; dried,4", "4,kiwi,-1"],
        30,
    )
    .await?;
    let errs = query_rows(&c, "SHOW SOURCE ERRORS").await?;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0][5], "3");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_table_with_updates_and_tombstones() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("users", 2).await?;
    let p = broker.producer()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE TABLE users (id INT, name VARCHAR, score INT, PRIMARY KEY (id)) WITH ({}) FORMAT UPSERT ENCODE JSON;
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(score) AS s FROM users;",
        kafka_with(broker, "users")
    ))
    .await?;
    let send = |k: &str, v: Option<&str>| {
        p.send("users", None, Some(k.as_bytes()), v.map(|v| v.as_bytes()))
    };
    send("1", Some(r#"{"id": 1, "name": "ann", "score": 10}"#))?;
    send("2", Some(r#"{"id": 2, "name": "bob", "score": 20}"#))?;
    send(
        r#"{"id": 3}"#,
        Some(r#"{"id": 3, "name": "cy", "score": 30}"#),
    )?;
    send("1", Some(r#"{"id": 1, "name": "ann", "score": 11}"#))?;
    send("2", None)?;
    send(
        r#"{"id": 3}"#,
        Some(r#"{"id": 3, "name": "cyd", "score": 33}"#),
    )?;
    send("4", None)?; // deleting a key that never existed is a no-op
    p.flush()?;
    wait_rows(
        &c,
        "SELECT id, name, score FROM users",
        &["1,ann,11", "3,cyd,33"],
        30,
    )
    .await?;
    wait_rows(&c, "SELECT n, s FROM totals", &["2,44"], 30).await?;
    // A point read by key, and an update after a restart.
    server_kill_restart_check(server, &p).await
}

async fn server_kill_restart_check(
    mut server: TestServer,
    p: &freshet_sql_tests::kafka::TestProducer,
) -> Result<()> {
    let c = server.connect().await?;
    c.batch_execute("FLUSH").await?;
    server.kill_and_restart().await?;
    let c2 = server.connect().await?;
    p.send("users", None, Some(b"3"), None)?;
    p.send(
        "users",
        None,
        Some(b"5"),
        Some(br#"{"id": 5, "name": "eve", "score": 5}"#),
    )?;
    p.flush()?;
    wait_rows(
        &c2,
        "SELECT id, name, score FROM users",
        &["1,ann,11", "5,eve,5"],
        30,
    )
    .await?;
    wait_rows(&c2, "SELECT n, s FROM totals", &["2,16"], 30).await?;
    // Dropping a connector table stops its reader; the server carries on.
    c2.batch_execute("DROP TABLE users CASCADE").await?;
    p.send(
        "users",
        None,
        Some(b"6"),
        Some(br#"{"id": 6, "name": "fay", "score": 6}"#),
    )?;
    p.flush()?;
    c2.batch_execute("FLUSH").await?;
    assert!(query_rows(&c2, "SHOW TABLES").await?.is_empty());
    drop(c);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_json_updates_and_deletes() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("cdc", 1).await?;
    let p = broker.producer()?;
    let events = [
        r#"{"before": null, "after": {"id": 1, "item": "a", "qty": 5}, "op": "r"}"#,
        r#"{"before": null, "after": {"id": 2, "item": "b", "qty": 7}, "op": "c"}"#,
        r#"{"schema": {"type": "struct"}, "payload": {"before": {"id": 1, "item": "a", "qty": 5}, "after": {"id": 1, "item": "a", "qty": 6}, "op": "u"}}"#,
        r#"{"before": {"id": 2, "item": "b", "qty": 7}, "after": null, "op": "d"}"#,
        r#"{"before": null, "after": {"id": 3, "item": "a", "qty": 1}, "op": "c"}"#,
        r#"{"before": {"id": 3, "item": "a", "qty": 1}, "after": {"id": 30, "item": "a", "qty": 2}, "op": "u"}"#,
    ];
    for e in events {
        p.send_str("cdc", None, e)?;
    }
    p.send("cdc", None, Some(b"2"), None)?; // Debezium's tombstone after a delete
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE TABLE stock (id INT PRIMARY KEY, item VARCHAR, qty INT) WITH ({}) FORMAT DEBEZIUM ENCODE JSON;
         CREATE MATERIALIZED VIEW per_item AS SELECT item, count(*) AS n, sum(qty) AS q FROM stock GROUP BY item;",
        kafka_with(broker, "cdc")
    ))
    .await?;
    wait_rows(&c, "SELECT * FROM stock", &["1,a,6", "30,a,2"], 30).await?;
    wait_rows(&c, "SELECT * FROM per_item", &["a,2,8"], 30).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_partitions_and_a_partition_added_while_running() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("events", 3).await?;
    let p = broker.producer()?;
    for i in 0..300 {
        p.send_str(
            "events",
            Some(i % 3),
            &format!(r#"{{"k": {}, "v": {i}}}"#, i % 3),
        )?;
    }
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE events (k INT, v BIGINT) WITH ({}) FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW per_k AS SELECT k, count(*) AS n, sum(v) AS s FROM events GROUP BY k;",
        kafka_with(broker, "events")
    ))
    .await?;
    wait_rows(
        &c,
        "SELECT * FROM per_k",
        &["0,100,14850", "1,100,14950", "2,100,15050"],
        30,
    )
    .await?;
    broker.add_partitions("events", 4).await?;
    let p = broker.producer()?;
    for i in 0..10 {
        p.send_str("events", Some(3), &format!(r#"{{"k": 3, "v": {i}}}"#))?;
    }
    p.flush()?;
    wait_rows(
        &c,
        "SELECT * FROM per_k",
        &["0,100,14850", "1,100,14950", "2,100,15050", "3,10,45"],
        40,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_skipped_counted_and_visible() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("dirty", 1).await?;
    let p = broker.producer()?;
    let big = format!(r#"{{"id": 999, "note": "{}"}}"#, "x".repeat(10 << 20));
    let garbage: Vec<u8> = (0..256u32).map(|i| (i * 37 % 256) as u8).collect();
    p.send_str("dirty", None, r#"{"id": 1, "n": 10, "note": "ok"}"#)?;
    p.send_str("dirty", None, r#"{"id": 2, "n": 20"#)?; // malformed
    p.send_str("dirty", None, r#"{"id": 3, "n": 30}"#)?;
    p.send_str("dirty", None, r#"{"id": "four", "n": 40}"#)?; // wrong type
    p.send_str("dirty", None, r#"{"id": 5}"#)?; // missing fields: NULL
    p.send("dirty", None, None, Some(&garbage))?; // binary garbage
    p.send("dirty", None, None, Some(b""))?; // empty message
    p.send("dirty", None, None, None)?; // null value
    p.send_str("dirty", None, &big)?; // 10 MB, valid
    p.send_str("dirty", None, r#"[1, 2, 3]"#)?; // not an object
    p.send_str(
        "dirty",
        None,
        r#"{"id": 6, "n": 60, "extra": {"deep": [1]}}"#,
    )?; // unknown field
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE dirty (id INT, n INT, note VARCHAR) WITH ({}, properties.fetch.max.bytes = '52428800', properties.max.partition.fetch.bytes = '52428800') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW clean AS SELECT id, n, length(note) AS len FROM dirty;",
        kafka_with(broker, "dirty")
    ))
    .await?;
    wait_rows(
        &c,
        "SELECT id, coalesce(n, -1), coalesce(len, -1) FROM clean",
        &["1,10,2", "3,30,-1", "5,-1,-1", "999,-1,10485760", "6,60,-1"],
        60,
    )
    .await?;
    let errs = query_rows(&c, "SHOW SOURCE ERRORS").await?;
    assert_eq!(errs.len(), 6, "{errs:?}");
    assert!(
        errs.iter()
            .all(|r| r[0] == "dirty" && r[1] == "clean" && r[2] == "6"),
        "{errs:?}"
    );
    let mut offsets: Vec<&str> = errs.iter().map(|r| r[5].as_str()).collect();
    offsets.sort();
    assert_eq!(offsets, vec!["1", "3", "5", "6", "7", "9"], "{errs:?}");
    // The server is still up and serving.
    assert_eq!(
        query_rows(&c, "SELECT 1").await?,
        vec![vec!["1".to_string()]]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_fails_clearly_without_broker_or_topic() -> Result<()> {
    let broker = Broker::shared()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    let missing = sqlstate_of(
        &c,
        &format!(
            "CREATE SOURCE s (a INT) WITH ({}) FORMAT PLAIN ENCODE JSON",
            kafka_with(broker, "no_such_topic")
        ),
    )
    .await;
    assert_eq!(missing, "42704");
    let unreachable = sqlstate_of(
        &c,
        "CREATE SOURCE s (a INT) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '127.0.0.1:1', connect.timeout.ms = '1500') FORMAT PLAIN ENCODE JSON",
    )
    .await;
    assert_eq!(unreachable, "08001");
    let bad = sqlstate_of(
        &c,
        "CREATE SOURCE s (a INT) WITH (connector = 'kafka', topic = 't') FORMAT PLAIN ENCODE JSON",
    )
    .await;
    assert_eq!(bad, "22023");
    let upsert_source = sqlstate_of(
        &c,
        &format!(
            "CREATE SOURCE s (a INT) WITH ({}) FORMAT UPSERT ENCODE JSON",
            kafka_with(broker, "t")
        ),
    )
    .await;
    assert_eq!(upsert_source, "0A000");
    assert!(query_rows(&c, "SHOW SOURCES").await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() -> Result<()> {
    let mut broker = Broker::start()?;
    broker.create_topic("t", 2).await?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE SOURCE s (id BIGINT) WITH ({}) FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW tot AS SELECT count(*) AS n, sum(id) AS s FROM s;
         CREATE MATERIALIZED VIEW d AS SELECT count(DISTINCT id) AS d FROM s;",
        kafka_with(&broker, "t")
    ))
    .await?;
    {
        let p = broker.producer()?;
        for i in 0..3000i64 {
            p.send_str("t", Some((i % 2) as i32), &format!(r#"{{"id": {i}}}"#))?;
        }
        p.flush()?;
    }
    wait_rows(&c, "SELECT * FROM tot", &["3000,4498500"], 30).await?;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart()?;
    {
        let p = broker.producer()?;
        for i in 3000..6000i64 {
            p.send_str("t", Some((i % 2) as i32), &format!(r#"{{"id": {i}}}"#))?;
        }
        p.flush()?;
    }
    wait_rows(&c, "SELECT * FROM tot", &["6000,17997000"], 60).await?;
    wait_rows(&c, "SELECT * FROM d", &["6000"], 30).await?;
    Ok(())
}

/// 200,000 events produced while the server is killed with SIGKILL again
/// and again: the views must count each event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_repeated_kill_dash_nine() -> Result<()> {
    const N: i64 = 200_000;
    const GROUPS: i64 = 7;
    let broker = Broker::shared()?;
    broker.create_topic("eo", 3).await?;
    let mut server = TestServer::start_with(&["--checkpoint-interval", "100ms"]).await?;
    {
        let c = server.connect().await?;
        c.batch_execute(&format!(
            "CREATE SOURCE eo (id BIGINT, g INT, v BIGINT) WITH ({}) FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW tot AS SELECT count(*) AS n, sum(v) AS s FROM eo;
             CREATE MATERIALIZED VIEW per_g AS SELECT g, count(*) AS n, sum(v) AS s FROM eo GROUP BY g;
             CREATE MATERIALIZED VIEW ids AS SELECT id, count(*) AS c FROM eo GROUP BY id;",
            kafka_with(broker, "eo")
        ))
        .await?;
    }
    let addr = broker.addr();
    let producer = std::thread::spawn(move || -> Result<()> {
        let p = freshet_sql_tests::kafka::Broker::producer_for(&addr)?;
        for chunk in 0..40 {
            for i in chunk * (N / 40)..(chunk + 1) * (N / 40) {
                let line = format!(r#"{{"id": {i}, "g": {}, "v": {}}}"#, i % GROUPS, i * 3 + 1);
                p.send_str("eo", Some((i % 3) as i32), &line)?;
            }
            p.flush()?;
            std::thread::sleep(Duration::from_millis(150));
        }
        Ok(())
    });
    let mut rng = rand::rng();
    let mut kills = 0;
    while kills < 6 || !producer.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        server.kill_and_restart().await?;
        kills += 1;
        if kills > 30 {
            break;
        }
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let c = server.connect().await?;
    let total: i64 = (0..N).map(|i| i * 3 + 1).sum();
    if let Err(e) = wait_rows(&c, "SELECT n, s FROM tot", &[&format!("{N},{total}")], 120).await {
        let per_p = query_rows(
            &c,
            "SELECT id % 3 AS p, count(*), sum(c), max(id), min(id) FROM ids GROUP BY 1 ORDER BY 1",
        )
        .await?;
        let log = server.log();
        let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        bail!("{e}\nper partition (p, distinct ids, rows, max id, min id): {per_p:?}\nserver log (last lines, newest first):\n{tail}");
    }
    let want: Vec<String> = (0..GROUPS)
        .map(|g| {
            let ids = (0..N).filter(|i| i % GROUPS == g);
            let n = ids.clone().count();
            let s: i64 = ids.map(|i| i * 3 + 1).sum();
            format!("{g},{n},{s}")
        })
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_rows(&c, "SELECT g, n, s FROM per_g", &want, 30).await?;
    eprintln!("exactly-once: {N} events, {kills} SIGKILL restarts, views exact");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_modes_latest_and_timestamp() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("modes", 1).await?;
    let p = broker.producer()?;
    for i in 0..5 {
        p.send_str("modes", None, &format!(r#"{{"id": {i}}}"#))?;
    }
    p.flush()?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 5..10 {
        p.send_str("modes", None, &format!(r#"{{"id": {i}}}"#))?;
    }
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    let base = format!(
        "connector = 'kafka', topic = 'modes', properties.bootstrap.server = '{}'",
        broker.addr()
    );
    c.batch_execute(&format!(
        "CREATE SOURCE l (id INT) WITH ({base}, scan.startup.mode = 'latest') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW lv AS SELECT count(*) AS n, min(id) AS lo FROM l;
         CREATE SOURCE ts (id INT) WITH ({base}, scan.startup.mode = 'timestamp', scan.startup.timestamp.millis = '{t}') FORMAT PLAIN ENCODE JSON;
         CREATE MATERIALIZED VIEW tv AS SELECT count(*) AS n, min(id) AS lo FROM ts;"
    ))
    .await?;
    for i in 10..12 {
        p.send_str("modes", None, &format!(r#"{{"id": {i}}}"#))?;
    }
    p.flush()?;
    wait_rows(&c, "SELECT * FROM lv", &["2,10"], 30).await?;
    wait_rows(&c, "SELECT * FROM tv", &["7,5"], 30).await?;
    Ok(())
}

/// Event time from Kafka: a topic of 3 partitions where partition 2 never
/// receives a record. Its watermark would hold the source's back forever;
/// after `watermark.idle_timeout` it stops counting and the windows close.
/// A second source on the same topic with a long timeout shows the
/// difference: its windows stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_does_not_hold_windows_back() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("clicks", 3).await?;
    let p = broker.producer()?;
    for s in 0..60 {
        p.send_str(
            "clicks",
            Some(s % 2),
            &format!(r#"{{"k": 1, "ts": "2024-01-01T00:00:{s:02}"}}"#),
        )?;
    }
    p.flush()?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    // "eager" turns partitions idle after 1 ms, but only those read to
    // their end: however its fetches interleave, none of its events is late.
    for (name, timeout) in [("quick", "2s"), ("eager", "1ms"), ("patient", "1h")] {
        c.batch_execute(&format!(
            "CREATE SOURCE {name} (k INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 second')
               WITH ({}, watermark.idle_timeout = '{timeout}') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW {name}_windows AS
               SELECT window_start, count(*) AS n FROM TUMBLE({name}, ts, INTERVAL '10 seconds')
               GROUP BY window_start EMIT ON WINDOW CLOSE;",
            kafka_with(broker, "clicks")
        ))
        .await?;
    }
    // Partition 0 has the even seconds (up to 58), partition 1 the odd ones
    // (up to 59): the watermark is the smaller minus the delay, 00:00:57,
    // and the windows up to [00:00:40, 00:00:50) close.
    wait_rows(
        &c,
        "SELECT window_start, n FROM quick_windows",
        &[
            "2024-01-01 00:00:00,10",
            "2024-01-01 00:00:10,10",
            "2024-01-01 00:00:20,10",
            "2024-01-01 00:00:30,10",
            "2024-01-01 00:00:40,10",
        ],
        40,
    )
    .await?;
    wait_rows(
        &c,
        "SELECT window_start, n FROM eager_windows",
        &[
            "2024-01-01 00:00:00,10",
            "2024-01-01 00:00:10,10",
            "2024-01-01 00:00:20,10",
            "2024-01-01 00:00:30,10",
            "2024-01-01 00:00:40,10",
        ],
        40,
    )
    .await?;
    // The window [00:00:40, 00:00:50) closes once the watermark passes
    // 00:00:50, maybe before the source has read every event: wait for 57.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let wm = query_rows(&c, "SHOW WATERMARKS").await?;
        let quick = wm
            .iter()
            .find(|r| r[0] == "source" && r[1] == "quick")
            .map(|r| r[3].clone());
        if quick.as_deref() == Some("2024-01-01 00:00:57") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{wm:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The patient source has read all 60 events too (its live view counts
    // them), but partition 2 still holds its watermark back: no window has
    // closed.
    c.batch_execute("CREATE MATERIALIZED VIEW patient_live AS SELECT count(*) AS n FROM patient")
        .await?;
    wait_rows(&c, "SELECT n FROM patient_live", &["60"], 30).await?;
    let patient = query_rows(&c, "SELECT count(*) FROM patient_windows").await?;
    assert_eq!(patient[0][0], "0");
    Ok(())
}
