//! Sinks into a real Apache Kafka broker started here: the record formats,
//! errors, exactly-once delivery across repeated SIGKILLs of the server,
//! and a broker outage the sink waits out.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{bail, Result};
use freshet_sql_tests::kafka::{json_int, read_committed, Broker, ReadRecord};
use freshet_sql_tests::postgres::PgServer;
use freshet_sql_tests::{query_rows, sqlstate_of, wait_rows, TestServer};
use rand::Rng;

fn sink_with(b: &Broker, topic: &str) -> String {
    format!(
        "connector = 'kafka', topic = '{topic}', properties.bootstrap.server = '{}'",
        b.addr()
    )
}

/// The last value per key (None: a tombstone), as text.
fn last_per_key(recs: &[ReadRecord]) -> BTreeMap<String, Option<String>> {
    let mut m = BTreeMap::new();
    for r in recs {
        m.insert(r.key.clone().unwrap_or_default(), r.value.clone());
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_and_debezium_records_and_clear_errors() -> Result<()> {
    let broker = Broker::shared()?;
    broker.create_topic("fmt_up", 1).await?;
    broker.create_topic("fmt_dbz", 1).await?;
    broker.create_topic("fmt_plain", 1).await?;
    broker.create_topic("fmt_al", 1).await?;
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR, n BIGINT);
         INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20);
         CREATE MATERIALIZED VIEW by_name AS SELECT name, count(*) AS c, max(n) AS top FROM t GROUP BY name;
         CREATE SINK up FROM by_name WITH ({}) FORMAT UPSERT ENCODE JSON;
         CREATE SINK dbz FROM t WITH ({}) FORMAT DEBEZIUM ENCODE JSON;
         CREATE SINK al FROM t WITH ({}, sink.delivery.guarantee = 'at-least-once') FORMAT UPSERT ENCODE JSON;
         FLUSH;",
        sink_with(broker, "fmt_up"),
        sink_with(broker, "fmt_dbz"),
        sink_with(broker, "fmt_al"),
    ))
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}\n{}", server.log()))?;
    c.batch_execute("UPDATE t SET n = 11 WHERE id = 1; FLUSH; DELETE FROM t WHERE id = 2; FLUSH;")
        .await?;
    let addr = broker.addr();
    let up = read_committed(
        &addr,
        "fmt_up",
        4,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )?;
    let last = last_per_key(&up);
    assert_eq!(
        last,
        BTreeMap::from([
            (
                r#"{"name":"a"}"#.to_string(),
                Some(r#"{"name":"a","c":1,"top":11}"#.to_string())
            ),
            (r#"{"name":"b"}"#.to_string(), None),
        ]),
        "{up:?}"
    );
    // The snapshot, then one record per change: no tombstone for an update.
    assert_eq!(up.len(), 4, "{up:?}");
    let dbz = read_committed(
        &addr,
        "fmt_dbz",
        4,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )?;
    let ops: Vec<(String, String)> = dbz
        .iter()
        .map(|r| {
            let v = r.value.clone().unwrap_or_default();
            let op = v
                .split("\"op\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string();
            (r.key.clone().unwrap_or_default(), op)
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            (r#"{"id":1}"#.into(), "c".into()),
            (r#"{"id":2}"#.into(), "c".into()),
            (r#"{"id":1}"#.into(), "u".into()),
            (r#"{"id":2}"#.into(), "d".into()),
        ],
        "{dbz:?}"
    );
    let upd = dbz[2].value.clone().unwrap_or_default();
    assert!(
        upd.starts_with(
            r#"{"before":{"id":1,"name":"a","n":10},"after":{"id":1,"name":"a","n":11},"op":"u""#
        ),
        "{upd}"
    );

    // Mistakes are refused with the right SQLSTATE and leave no sink behind.
    let with = sink_with(broker, "fmt_plain");
    for (sql, state) in [
        (format!("CREATE SINK x FROM by_name WITH ({with}) FORMAT PLAIN ENCODE JSON"), "0A000"),
        (format!("CREATE SINK x AS SELECT name FROM t WITH ({with}) FORMAT UPSERT ENCODE JSON"), "22023"),
        (format!("CREATE SINK x FROM t WITH ({with}, primary_key = 'nope') FORMAT UPSERT ENCODE JSON"), "42704"),
        (format!("CREATE SINK x FROM t WITH ({with}, colour = 'red') FORMAT UPSERT ENCODE JSON"), "22023"),
        (format!("CREATE SINK x FROM t WITH ({with}) FORMAT UPSERT ENCODE AVRO"), "0A000"),
        (format!("CREATE SINK x FROM nothing WITH ({with}) FORMAT UPSERT ENCODE JSON"), "42P01"),
        (format!("CREATE SINK up FROM t WITH ({with}) FORMAT UPSERT ENCODE JSON"), "42P07"),
        (format!("CREATE SINK x FROM t WITH ({}) FORMAT UPSERT ENCODE JSON", sink_with(broker, "no_such_topic")), "42704"),
        ("CREATE SINK x FROM t WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '127.0.0.1:1', connect.timeout.ms = '1500') FORMAT UPSERT ENCODE JSON".to_string(), "08001"),
        ("CREATE SINK x FROM t WITH (connector = 'nowhere') FORMAT UPSERT ENCODE JSON".to_string(), "0A000"),
        ("CREATE SINK x FROM t".to_string(), "42601"),
        ("DROP MATERIALIZED VIEW by_name".to_string(), "2BP01"),
        ("DROP SINK by_name".to_string(), "42809"),
        ("DROP SINK nothing".to_string(), "42704"),
    ] {
        assert_eq!(sqlstate_of(&c, &sql).await, state, "{sql}");
    }
    // At least once: the same records, without transactions.
    let al = read_committed(
        &addr,
        "fmt_al",
        4,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )?;
    assert_eq!(
        last_per_key(&al),
        BTreeMap::from([
            (
                r#"{"id":1}"#.to_string(),
                Some(r#"{"id":1,"name":"a","n":11}"#.to_string())
            ),
            (r#"{"id":2}"#.to_string(), None),
        ]),
        "{al:?}"
    );
    let sinks = query_rows(&c, "SHOW SINKS").await?;
    assert_eq!(sinks.len(), 3, "{sinks:?}");
    assert_eq!(sinks[0][4], "at-least-once");
    assert_eq!(sinks[2][0], "up");
    assert_eq!(
        &sinks[2][1..5],
        ["kafka", &format!("{addr}/fmt_up"), "UPSERT", "exactly-once"]
    );
    assert_eq!(sinks[2][5], "4", "{sinks:?}");

    // Sinks survive a restart and go on where they were.
    let mut server = server;
    server.kill_and_restart().await?;
    let c = server.connect().await?;
    c.batch_execute("INSERT INTO t VALUES (3, 'a', 30); FLUSH;")
        .await?;
    let up = read_committed(
        &addr,
        "fmt_up",
        5,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )?;
    assert_eq!(up.len(), 5, "{up:?}");
    assert_eq!(
        up[4].value.as_deref(),
        Some(r#"{"name":"a","c":2,"top":30}"#)
    );
    c.batch_execute("DROP SINK al; DROP SINK up; DROP SINK IF EXISTS up; DROP MATERIALIZED VIEW by_name; DROP TABLE t CASCADE;")
        .await?;
    assert!(query_rows(&c, "SHOW SINKS").await?.is_empty());
    Ok(())
}

/// Acceptance: 200,000 events through a GROUP BY view (UPSERT) and a
/// filter view (PLAIN) while the server is SIGKILLed again and again: a
/// `read_committed` consumer reads every expected PLAIN record exactly once
/// and the last value per key equals the view. Both views also go into
/// tables of a real PostgreSQL, which end equal to the views row for row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_into_kafka_across_repeated_kill_dash_nine() -> Result<()> {
    const N: i64 = 200_000;
    const GROUPS: i64 = 50;
    let broker = Broker::shared()?;
    broker.create_topic("sink_in", 3).await?;
    broker.create_topic("sink_groups", 3).await?;
    broker.create_topic("sink_big", 3).await?;
    let pg = PgServer::start().await?;
    let pgc = pg.connect().await?;
    pgc.batch_execute(
        "CREATE TABLE per_g (g int PRIMARY KEY, n bigint, top bigint);
         CREATE TABLE big (id bigint PRIMARY KEY, g int, v bigint);",
    )
    .await?;
    let pg_with = |table: &str| {
        format!(
            "connector = 'postgres', host = '127.0.0.1', port = '{}', user = 'postgres', database = 'postgres', table = '{table}'",
            pg.port
        )
    };
    let mut server = TestServer::start_with(&["--checkpoint-interval", "200ms"]).await?;
    {
        let c = server.connect().await?;

        c.batch_execute(&format!(
            "CREATE SOURCE sink_in (id BIGINT, g INT, v BIGINT) WITH (connector = 'kafka', topic = 'sink_in', properties.bootstrap.server = '{addr}', scan.startup.mode = 'earliest') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW per_g AS SELECT g, count(*) AS n, max(v) AS top FROM sink_in GROUP BY g;
             CREATE MATERIALIZED VIEW big AS SELECT id, g, v FROM sink_in WHERE v % 1000 >= 500;
             CREATE SINK per_g_out FROM per_g WITH ({}, primary_key = 'g') FORMAT UPSERT ENCODE JSON;
             CREATE SINK big_out FROM big WITH ({}) FORMAT PLAIN ENCODE JSON;
             CREATE SINK per_g_pg FROM per_g WITH ({});
             CREATE SINK big_pg FROM big WITH ({}, primary_key = 'id');",
            sink_with(broker, "sink_groups"),
            sink_with(broker, "sink_big"),
            pg_with("per_g"),
            pg_with("big"),
            addr = broker.addr(),
        ))
        .await?;
    }
    let addr = broker.addr();
    let producer = std::thread::spawn(move || -> Result<()> {
        let p = Broker::producer_for(&addr)?;
        for chunk in 0..40 {
            for i in chunk * (N / 40)..(chunk + 1) * (N / 40) {
                let line = format!(r#"{{"id": {i}, "g": {}, "v": {}}}"#, i % GROUPS, i * 7);
                p.send_str("sink_in", Some((i % 3) as i32), &line)?;
            }
            p.flush()?;
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    });
    let mut rng = rand::rng();
    let mut kills = 0;
    while kills < 20 || !producer.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..900))).await;
        server.kill_and_restart().await?;
        kills += 1;
        if kills > 40 {
            break;
        }
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("producer panicked"))??;
    let c = server.connect().await?;
    let big_ids: Vec<i64> = (0..N).filter(|i| (i * 7) % 1000 >= 500).collect();
    wait_rows(
        &c,
        "SELECT count(*) FROM big",
        &[&big_ids.len().to_string()],
        180,
    )
    .await?;
    let want_groups: Vec<String> = (0..GROUPS)
        .map(|g| {
            let ids = (0..N).filter(|i| i % GROUPS == g);
            let n = ids.clone().count();
            let top = ids.map(|i| i * 7).max().unwrap_or(0);
            format!("{g},{n},{top}")
        })
        .collect();
    let want: Vec<&str> = want_groups.iter().map(String::as_str).collect();
    wait_rows(&c, "SELECT g, n, top FROM per_g", &want, 60).await?;
    c.batch_execute("FLUSH").await?;

    let addr = broker.addr();
    let big = read_committed(
        &addr,
        "sink_big",
        big_ids.len(),
        Duration::from_secs(5),
        Duration::from_secs(300),
    )?;
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for r in &big {
        let id = r
            .value
            .as_deref()
            .and_then(|v| json_int(v, "id"))
            .ok_or_else(|| anyhow::anyhow!("bad record {r:?}"))?;
        *seen.entry(id).or_default() += 1;
    }
    let dups: Vec<(&i64, &usize)> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<&i64> = big_ids
        .iter()
        .filter(|i| !seen.contains_key(i))
        .take(5)
        .collect();
    if big.len() != big_ids.len() || !dups.is_empty() || !missing.is_empty() {
        let sinks = query_rows(&c, "SHOW SINKS").await?;
        bail!(
            "PLAIN sink: {} records for {} rows; duplicates (id, times) {dups:?}; missing {missing:?}; sinks {sinks:?}",
            big.len(),
            big_ids.len()
        );
    }
    let groups = read_committed(
        &addr,
        "sink_groups",
        GROUPS as usize,
        Duration::from_secs(5),
        Duration::from_secs(120),
    )?;
    let last = last_per_key(&groups);
    let got: Vec<String> = last
        .values()
        .map(|v| {
            let v = v.clone().unwrap_or_default();
            format!(
                "{},{},{}",
                json_int(&v, "g").unwrap_or(-1),
                json_int(&v, "n").unwrap_or(-1),
                json_int(&v, "top").unwrap_or(-1)
            )
        })
        .collect();
    let mut got = got;
    got.sort_by_key(|s| s.split(',').next().and_then(|g| g.parse::<i64>().ok()));
    assert_eq!(got, want_groups, "UPSERT sink's last value per key");
    // PostgreSQL: equal to the views, row for row.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let pg_groups: Vec<String> = pgc
            .query("SELECT g, n, top FROM per_g ORDER BY g", &[])
            .await?
            .iter()
            .map(|r| {
                format!(
                    "{},{},{}",
                    r.get::<_, i32>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect();
        let pg_big: (i64, i64) = {
            let r = pgc
                .query_one(
                    "SELECT count(*), coalesce(sum(id), 0)::bigint FROM big",
                    &[],
                )
                .await?;
            (r.get(0), r.get(1))
        };
        let want_big = (big_ids.len() as i64, big_ids.iter().sum::<i64>());
        if pg_groups == want_groups && pg_big == want_big {
            break;
        }
        if std::time::Instant::now() > deadline {
            let sinks = query_rows(&c, "SHOW SINKS").await?;
            bail!("PostgreSQL tables differ from the views: groups {pg_groups:?}, big {pg_big:?} (want {want_big:?}); sinks {sinks:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "sink exactly-once: {N} events, {kills} SIGKILL restarts, {} PLAIN records exactly once, {} UPSERT records for {GROUPS} keys",
        big.len(),
        groups.len()
    );
    Ok(())
}

/// Acceptance: with the broker stopped for 30 s the sink waits, then
/// catches up; nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_waits_out_a_broker_outage() -> Result<()> {
    let mut broker = Broker::start()?;
    broker.create_topic("outage", 2).await?;
    let server = TestServer::start_with(&["--checkpoint-interval", "200ms"]).await?;
    let c = server.connect().await?;
    c.batch_execute(&format!(
        "CREATE TABLE ev (id BIGINT, note VARCHAR) APPEND ONLY;
         CREATE SINK out FROM ev WITH ({}) FORMAT PLAIN ENCODE JSON;",
        sink_with(&broker, "outage")
    ))
    .await?;
    let insert = |from: i64, to: i64| {
        format!(
            "INSERT INTO ev SELECT x, 'n' || x FROM generate_series({from}, {}) AS g(x)",
            to - 1
        )
    };
    c.batch_execute(&insert(0, 1000)).await?;
    let addr = broker.addr();
    let first = read_committed(
        &addr,
        "outage",
        1000,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )?;
    assert_eq!(first.len(), 1000);
    broker.stop();
    for k in 0..10 {
        c.batch_execute(&insert(1000 + k * 100, 1100 + k * 100))
            .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let during = query_rows(&c, "SHOW SINKS").await?;
    broker.restart()?;
    c.batch_execute(&insert(2000, 2500)).await?;
    let all = read_committed(
        &addr,
        "outage",
        2500,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )?;
    let mut ids: Vec<i64> = all
        .iter()
        .filter_map(|r| r.value.as_deref().and_then(|v| json_int(v, "id")))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..2500).collect::<Vec<_>>(),
        "sinks during the outage: {during:?}"
    );
    // During the outage the sink fell behind the epochs it logged.
    let n = |i: usize| during[0][i].parse::<i64>().unwrap_or(0);
    assert!(
        n(7) < n(8),
        "delivered_epoch behind logged_epoch: {during:?}"
    );
    Ok(())
}
