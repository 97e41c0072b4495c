//! `freshet-bench`: view maintenance throughput, commit latency and peak
//! memory of a real `freshet` server. Prints figures; never fails on a number.
//!
//! ```text
//! cargo run --release -p freshet-sql-tests --bin freshet-bench -- [ROWS]
//! ```
//!
//! For each scenario it creates a table with views over it, loads ROWS rows
//! (default 1,000,000) with `INSERT ... SELECT FROM generate_series` in chunks,
//! and reports rows per second until the views are committed (`FLUSH`).
//! It then measures the latency of small commits (one-row INSERT + FLUSH)
//! and reads the server's peak resident memory (VmHWM).
//!
//! A second argument runs one scenario: `join`, `topn`, `lag`, `rank`,
//! `agg1m` (1M groups), `point` (point reads of a view by its key, at 1k
//! and at ROWS groups), or the event-time ones `tumble`, `tumble-eowc` and
//! `hop` (windowed views over a table with a watermark; they report state
//! entries too).
//!
//! `two-views` times two heavy views over two Nexmark sources of ROWS
//! events each, one at a time and then both at once (issue 32: views on
//! threads of their own), and prints the ratio.
//!
//! `backfill` creates a view over a self-join of a ROWS-row table while
//! one-row INSERTs into another table commit and a view over a live
//! generator grows; it prints the backfill's time, the INSERTs' latency,
//! how far the live view moved and the server's RSS growth (issue 32).
//!
//! `FRESHET_SERVER_ARGS` adds flags to every server started, e.g.
//! `FRESHET_SERVER_ARGS="--state-cache-size 64MiB"`.

use std::time::Instant;

use anyhow::Result;
use freshet_sql_tests::{dir_bytes, peak_rss_kib, query_rows, TestServer};

const CHUNK: u64 = 100_000;

fn vm_hwm(pid: u32) -> String {
    peak_rss_kib(pid).map_or_else(|| "n/a".into(), |kb| format!("{kb} kB"))
}

/// Flags from `FRESHET_SERVER_ARGS`.
fn server_args() -> Vec<String> {
    std::env::var("FRESHET_SERVER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

async fn start_server() -> Result<TestServer> {
    let args = server_args();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_with(&refs).await
}

/// Point reads of a view stored by its key: `groups` groups loaded, then
/// 500 `SELECT ... WHERE user_id = k` of random keys; prints p50/p90/p99.
async fn point_scenario(groups: u64) -> Result<()> {
    let server = start_server().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE events (id BIGINT, user_id BIGINT, amount BIGINT, kind TEXT);
             CREATE MATERIALIZED VIEW g AS SELECT user_id, count(*) AS n, sum(amount) AS s FROM events GROUP BY user_id;",
        )
        .await?;
    let mut loaded = 0u64;
    while loaded < groups {
        let n = CHUNK.min(groups - loaded);
        client
            .batch_execute(&format!(
                "INSERT INTO events SELECT value AS id, value AS user_id, value % 97, 'buy' FROM generate_series({}, {})",
                loaded + 1,
                loaded + n
            ))
            .await?;
        loaded += n;
    }
    client.batch_execute("FLUSH").await?;
    let stmt = client
        .prepare("SELECT user_id, n, s FROM g WHERE user_id = $1")
        .await?;
    let mut lat = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..550 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % groups) as i64 + 1;
        let t = Instant::now();
        let rows = client.query(&stmt, &[&k]).await?;
        if i >= 50 {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(rows.len() == 1, "key {k}: {} rows", rows.len());
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let t = Instant::now();
    let all = query_rows(&client, "SELECT count(*) FROM g").await?;
    let scan_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "point read, {groups:>8} keys    p50={:.2} ms p90={:.2} ms p99={:.2} ms (500 reads)  full count(*)={:.1} ms ({} rows)",
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10],
        lat[lat.len() * 99 / 100],
        scan_ms,
        all.first().and_then(|r| r.first()).cloned().unwrap_or_default(),
    );
    Ok(())
}

async fn scenario(name: &str, views: &[&str], rows: u64) -> Result<()> {
    let server = start_server().await?;
    let client = server.connect().await?;
    client
        .batch_execute("CREATE TABLE events (id BIGINT, user_id BIGINT, amount BIGINT, kind TEXT)")
        .await?;
    client
        .batch_execute(
            "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT);
             INSERT INTO users SELECT value, 'user' || value FROM generate_series(0, 999);
             FLUSH;",
        )
        .await?;
    for v in views {
        client.batch_execute(v).await?;
    }
    let start = Instant::now();
    let mut loaded = 0u64;
    while loaded < rows {
        let n = CHUNK.min(rows - loaded);
        let sql = format!(
            "INSERT INTO events SELECT value, value % {{groups}}, value % 97, CASE WHEN value % 3 = 0 THEN 'buy' ELSE 'view' END FROM generate_series({}, {})",
            loaded + 1,
            loaded + n
        );
        client
            .batch_execute(&sql.replace("{groups}", &groups_for(name).to_string()))
            .await?;
        loaded += n;
    }
    client.batch_execute("FLUSH").await?;
    let secs = start.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        client
            .batch_execute(&format!(
                "INSERT INTO events VALUES ({}, 1, 1, 'buy'); FLUSH",
                rows + 1 + i
            ))
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    // Peak memory of loading and maintaining, read before the check below:
    // a SELECT over the whole table still decodes it into memory at once.
    let rss = server.pid().map(vm_hwm).unwrap_or_default();
    let check = query_rows(&client, "SELECT count(*) FROM events").await?;
    println!(
        "{name:<28} rows={rows:<9} load+maintain={:>8.0} rows/s  ({secs:.2} s)  commit latency p50={:.1} ms p90={:.1} ms  peak RSS={rss}  store on disk={}  table rows={}",
        rows as f64 / secs,
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10],
        dir_size(server.data_path()),
        check.first().and_then(|r| r.first()).cloned().unwrap_or_default(),
    );
    Ok(())
}

/// Event-time scenario: an `APPEND ONLY` table with a watermark, 100 events
/// per second of event time over 1k users, and one windowed view. Reports
/// events per second and the view's state entries (`SHOW STATE`): the
/// largest seen after any chunk and at the end.
async fn time_scenario(name: &str, view: &str, rows: u64) -> Result<()> {
    let server = start_server().await?;
    let client = server.connect().await?;
    client
        .batch_execute(
            "CREATE TABLE ev (id BIGINT, user_id BIGINT, amount BIGINT, ts TIMESTAMP,
               WATERMARK FOR ts AS ts - INTERVAL '5 seconds') APPEND ONLY",
        )
        .await?;
    client.batch_execute(view).await?;
    let state = |rows: Vec<Vec<String>>| -> (i64, i64) {
        rows.iter().fold((0, 0), |(k, b), r| {
            (
                k + r[1].parse::<i64>().unwrap_or(0),
                b + r[2].parse::<i64>().unwrap_or(0),
            )
        })
    };
    let start = Instant::now();
    let mut loaded = 0u64;
    let mut max_keys = 0i64;
    let mut state_time = 0.0f64;
    while loaded < rows {
        let n = CHUNK.min(rows - loaded);
        client
            .batch_execute(&format!(
                "INSERT INTO ev SELECT value, value % 1000, value % 97, to_timestamp(value / 100)::timestamp FROM generate_series({}, {}); FLUSH",
                loaded + 1,
                loaded + n
            ))
            .await?;
        loaded += n;
        let t = Instant::now();
        max_keys = max_keys.max(state(query_rows(&client, "SHOW STATE").await?).0);
        state_time += t.elapsed().as_secs_f64();
    }
    let secs = start.elapsed().as_secs_f64() - state_time;
    let (keys, bytes) = state(query_rows(&client, "SHOW STATE").await?);
    let out = query_rows(&client, "SELECT count(*) FROM w").await?;
    println!(
        "{name:<34} events={rows:<9} {:>8.0} events/s ({secs:.2} s)  state: {keys} entries / {:.1} KiB at the end, at most {max_keys} after any chunk  view rows={}  peak RSS={}  store on disk={}",
        rows as f64 / secs,
        bytes as f64 / 1024.0,
        out.first().and_then(|r| r.first()).cloned().unwrap_or_default(),
        server.pid().map(vm_hwm).unwrap_or_default(),
        dir_size(server.data_path()),
    );
    Ok(())
}

/// Seconds from creating the sources and views `which` (indexes into the
/// two) on a fresh server until every reader finished and the views are
/// committed.
async fn two_views_run(which: &[usize], rows: u64) -> Result<f64> {
    let server = start_server().await?;
    let client = server.connect().await?;
    let start = Instant::now();
    for i in which {
        client
            .batch_execute(&format!(
                "CREATE SOURCE s{i} WITH (connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '{rows}', nexmark.split.num = '1');
                 CREATE MATERIALIZED VIEW v{i} AS SELECT auction, bidder, price, rank() OVER (PARTITION BY bidder % 1000 ORDER BY price DESC) AS r FROM s{i};"
            ))
            .await?;
    }
    loop {
        let progress = query_rows(&client, "SHOW SOURCE PROGRESS").await?;
        if progress.len() >= which.len()
            && progress
                .iter()
                .all(|r| r.get(4).is_some_and(|f| f == "t" || f == "true"))
        {
            break;
        }
        if start.elapsed().as_secs() > 3600 {
            anyhow::bail!("sources did not finish: {progress:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client.batch_execute("FLUSH").await?;
    Ok(start.elapsed().as_secs_f64())
}

/// Two heavy views over two sources, alone and together.
async fn two_views_scenario(rows: u64) -> Result<()> {
    let a = two_views_run(&[0], rows).await?;
    let b = two_views_run(&[1], rows).await?;
    let both = two_views_run(&[0, 1], rows).await?;
    println!(
        "two views over two sources, {rows} events each: alone {a:.2} s + {b:.2} s = {:.2} s, together {both:.2} s: {:.2}x of one after the other",
        a + b,
        both / (a + b)
    );
    Ok(())
}

/// The server's current resident memory (`VmRSS`), in KiB.
fn rss_kib(pid: u32) -> u64 {
    freshet_sql_tests::status_kib(pid, "VmRSS").unwrap_or(0)
}

/// A view over a self-join of a `rows`-row table, created while other
/// work goes on: what the other work sees during the backfill.
async fn backfill_scenario(rows: u64) -> Result<()> {
    let server = start_server().await?;
    let pid = server.pid().unwrap_or(0);
    let c = server.connect().await?;
    c.batch_execute(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, g INT, v BIGINT);
         CREATE TABLE other (x INT);
         CREATE SOURCE gen (n BIGINT) WITH (connector = 'datagen', datagen.rows.per.second = '10000', fields.n.kind = 'sequence', fields.n.start = '1');
         CREATE MATERIALIZED VIEW live AS SELECT count(*) AS n FROM gen;",
    )
    .await?;
    let mut at = 0;
    while at < rows {
        let n = CHUNK.min(rows - at);
        c.batch_execute(&format!(
            "INSERT INTO big SELECT i, i % 1000, i * 2 FROM generate_series({}, {}) AS t(i)",
            at + 1,
            at + n
        ))
        .await?;
        at += n;
    }
    c.batch_execute("FLUSH").await?;
    let count = |r: Vec<Vec<String>>| -> i64 {
        r.first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rss0 = rss_kib(pid);
    let live0 = count(query_rows(&c, "SELECT n FROM live").await?);
    let creator = server.connect().await?;
    let t0 = Instant::now();
    let create = tokio::spawn(async move {
        creator
            .batch_execute("CREATE MATERIALIZED VIEW heavy AS SELECT a.g, count(*) AS n, sum(b.v) AS s FROM big a JOIN big b ON a.id = b.id GROUP BY a.g")
            .await
    });
    let (mut lat, mut rss_max) = (Vec::new(), rss0);
    let mut live_during = live0;
    while !create.is_finished() {
        let t = Instant::now();
        c.batch_execute("INSERT INTO other VALUES (1); FLUSH")
            .await?;
        if !create.is_finished() {
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            live_during = count(query_rows(&c, "SELECT n FROM live").await?);
        }
        rss_max = rss_max.max(rss_kib(pid));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    create.await??;
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "backfill of a self-join of {rows} rows: {secs:.1} s; {} INSERT+FLUSH into another table meanwhile: p50 {:.0} ms, max {:.0} ms; live view {live0} -> {live_during} rows meanwhile; RSS {} MiB before, at most {} MiB during (+{} MiB)",
        lat.len(),
        pick(0.5),
        pick(1.0),
        rss0 / 1024,
        rss_max / 1024,
        (rss_max.saturating_sub(rss0)) / 1024
    );
    Ok(())
}

const TUMBLE_VIEW: &str = "CREATE MATERIALIZED VIEW w AS SELECT user_id, window_start, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '1 minute') GROUP BY user_id, window_start";
const TUMBLE_EOWC_VIEW: &str = "CREATE MATERIALIZED VIEW w AS SELECT user_id, window_start, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '1 minute') GROUP BY user_id, window_start EMIT ON WINDOW CLOSE";
const HOP_VIEW: &str = "CREATE MATERIALIZED VIEW w AS SELECT window_start, window_end, avg(amount) AS a FROM HOP(ev, ts, INTERVAL '10 seconds', INTERVAL '1 minute') GROUP BY window_start, window_end";

/// Bytes under `dir` (the RocksDB files), as MiB.
fn dir_size(dir: &std::path::Path) -> String {
    format!("{:.0} MiB", dir_bytes(dir) as f64 / (1024.0 * 1024.0))
}

fn groups_for(name: &str) -> u64 {
    if name.contains("1M") {
        1_000_000
    } else {
        1_000
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("freshet-bench: {rows} rows per scenario, chunks of {CHUNK}");
    let only: Option<String> = std::env::args().nth(2);
    match only.as_deref() {
        Some("tumble") => {
            return time_scenario("tumble 1 min count, 1k users", TUMBLE_VIEW, rows).await
        }
        Some("tumble-eowc") => {
            return time_scenario("tumble 1 min count, EMIT ON CLOSE", TUMBLE_EOWC_VIEW, rows).await
        }
        Some("hop") => {
            return time_scenario("hop 1 min / 10 s avg", HOP_VIEW, rows).await;
        }
        Some("two-views") => return two_views_scenario(rows).await,
        Some("backfill") => return backfill_scenario(rows).await,
        Some("point") => {
            point_scenario(1_000).await?;
            return point_scenario(rows).await;
        }
        _ => {}
    }
    if let Some(only) = only.as_deref() {
        let (name, view) = match only {
            "join" => ("join, 1k-row dimension", "CREATE MATERIALIZED VIEW j AS SELECT e.id, e.amount, u.name FROM events e JOIN users u ON e.user_id = u.id"),
            "topn" => ("top-10", "CREATE MATERIALIZED VIEW t AS SELECT id, amount FROM events ORDER BY amount DESC, id LIMIT 10"),
            "lag" => ("OVER lag/lead, 1k partitions", "CREATE MATERIALIZED VIEW w AS SELECT id, amount - lag(amount) OVER (PARTITION BY user_id ORDER BY id) AS delta, sum(amount) OVER (PARTITION BY user_id ORDER BY id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS last5 FROM events"),
            "rank" => ("OVER rank, 1k partitions", "CREATE MATERIALIZED VIEW w AS SELECT id, rank() OVER (PARTITION BY user_id ORDER BY amount DESC) AS r FROM events"),
            "agg1m" => ("group by, 1M groups", "CREATE MATERIALIZED VIEW g AS SELECT user_id, count(*) AS n, sum(amount) AS s, max(amount) AS m FROM events GROUP BY user_id"),
            other => anyhow::bail!(
                "unknown scenario {other} (join, topn, lag, rank, agg1m, point, tumble, tumble-eowc, hop)"
            ),
        };
        return scenario(name, &[view], rows).await;
    }
    scenario("table only (no views)", &[], rows).await?;
    scenario(
        "filter/project",
        &["CREATE MATERIALIZED VIEW f AS SELECT id, amount * 2 AS double_amount FROM events WHERE kind = 'buy'"],
        rows,
    )
    .await?;
    scenario(
        "group by, 1k groups",
        &["CREATE MATERIALIZED VIEW g AS SELECT user_id, count(*) AS n, sum(amount) AS s, max(amount) AS m FROM events GROUP BY user_id"],
        rows,
    )
    .await?;
    scenario(
        "group by, 1M groups",
        &["CREATE MATERIALIZED VIEW g AS SELECT user_id, count(*) AS n, sum(amount) AS s, max(amount) AS m FROM events GROUP BY user_id"],
        rows,
    )
    .await?;
    scenario(
        "join, 1k-row dimension",
        &["CREATE MATERIALIZED VIEW j AS SELECT e.id, e.amount, u.name FROM events e JOIN users u ON e.user_id = u.id"],
        rows,
    )
    .await?;
    scenario(
        "top-10",
        &["CREATE MATERIALIZED VIEW t AS SELECT id, amount FROM events ORDER BY amount DESC, id LIMIT 10"],
        rows,
    )
    .await?;
    Ok(())
}
