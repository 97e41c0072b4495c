//! Nexmark, for `freshet-nexmark` and its tests: the q0–q22 views in
//! Freshet's dialect, the sources they read (the unpaced generator, or CSV
//! files), CSV files of the generated events that other engines can load,
//! and a result fingerprint any PostgreSQL-speaking engine computes alike.

use std::io::Write;
use std::path::Path;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::{dir_bytes, query_rows, TestServer};

/// The three Nexmark streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Person,
    Auction,
    Bid,
}

use Table::{Auction, Bid, Person};

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Person => "person",
            Auction => "auction",
            Bid => "bid",
        }
    }

    /// Column list, as the generator produces it and the CSV files hold it.
    pub fn columns(self) -> &'static str {
        match self {
            Person => "id BIGINT, name VARCHAR, email_address VARCHAR, credit_card VARCHAR, city VARCHAR, state VARCHAR, date_time TIMESTAMP, extra VARCHAR",
            Auction => "id BIGINT, item_name VARCHAR, description VARCHAR, initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, extra VARCHAR",
            Bid => "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, date_time TIMESTAMP, extra VARCHAR",
        }
    }

    fn generator_type(self) -> &'static str {
        match self {
            Person => "Person",
            Auction => "Auction",
            Bid => "Bid",
        }
    }
}

/// One Nexmark query as a materialized view.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    /// The streams it reads.
    pub tables: &'static [Table],
    /// Statements run before the view (q13's side table).
    pub setup: &'static str,
    /// The view's query.
    pub sql: &'static str,
}

/// The view a query is created as.
pub fn view_name(q: &Query) -> String {
    format!("nexmark_{}", q.name)
}

/// The Nexmark queries, as in the Nexmark benchmark's SQL, written in
/// Freshet's dialect: window table functions (`TUMBLE`, `HOP`, `SESSION`),
/// `EMIT ON WINDOW CLOSE` where a query wants each window's final result,
/// and standard SQL where the originals use UDFs (q14's `count_char`) or
/// processing time (q12, q13). `docs/benchmarks.md` lists the differences.
pub const QUERIES: &[Query] = &[
    Query {
        name: "q0",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, date_time FROM bid",
    },
    Query {
        name: "q1",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, 0.908 * price AS price, date_time FROM bid",
    },
    Query {
        name: "q2",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, price FROM bid WHERE auction = 1007 OR auction = 1020 OR auction = 2001 OR auction = 2019 OR auction = 2087",
    },
    Query {
        name: "q3",
        tables: &[Person, Auction],
        setup: "",
        sql: "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')",
    },
    Query {
        name: "q4",
        tables: &[Auction, Bid],
        setup: "",
        sql: "SELECT q.category, avg(q.final) AS avg FROM (SELECT max(b.price) AS final, a.category FROM auction a JOIN bid b ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires GROUP BY a.id, a.category) q GROUP BY q.category",
    },
    Query {
        name: "q5",
        tables: &[Bid],
        setup: "",
        sql: "SELECT ab.auction, ab.num FROM (SELECT auction, count(*) AS num, window_start AS starttime FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY window_start, auction) ab JOIN (SELECT max(cb.num) AS maxn, cb.starttime_c FROM (SELECT count(*) AS num, window_start AS starttime_c FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY auction, window_start) cb GROUP BY cb.starttime_c) mb ON ab.starttime = mb.starttime_c AND ab.num >= mb.maxn EMIT ON WINDOW CLOSE",
    },
    Query {
        name: "q6",
        tables: &[Auction, Bid],
        setup: "",
        sql: "SELECT q.seller, avg(q.final) OVER (PARTITION BY q.seller ORDER BY q.date_time, q.id ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) AS avg FROM (SELECT a.id, a.seller, max(b.price) AS final, max(b.date_time) AS date_time FROM auction a JOIN bid b ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires GROUP BY a.id, a.seller) q",
    },
    Query {
        name: "q7",
        tables: &[Bid],
        setup: "",
        sql: "SELECT b.auction, b.price, b.bidder, b.date_time FROM bid b JOIN (SELECT max(price) AS maxprice, window_end AS date_time FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_end) b1 ON b.price = b1.maxprice WHERE b.date_time BETWEEN b1.date_time - INTERVAL '10 seconds' AND b1.date_time EMIT ON WINDOW CLOSE",
    },
    Query {
        name: "q8",
        tables: &[Person, Auction],
        setup: "",
        sql: "SELECT p.id, p.name, p.starttime FROM (SELECT id, name, window_start AS starttime, window_end AS endtime FROM TUMBLE(person, date_time, INTERVAL '10 seconds') GROUP BY id, name, window_start, window_end) p JOIN (SELECT seller, window_start AS starttime, window_end AS endtime FROM TUMBLE(auction, date_time, INTERVAL '10 seconds') GROUP BY seller, window_start, window_end) a ON p.id = a.seller AND p.starttime = a.starttime AND p.endtime = a.endtime EMIT ON WINDOW CLOSE",
    },
    Query {
        name: "q9",
        tables: &[Auction, Bid],
        setup: "",
        sql: "SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller, category, auction, bidder, price, bid_date_time FROM (SELECT a.id, a.item_name, a.description, a.initial_bid, a.reserve, a.date_time, a.expires, a.seller, a.category, b.auction, b.bidder, b.price, b.date_time AS bid_date_time, row_number() OVER (PARTITION BY a.id ORDER BY b.price DESC, b.date_time ASC) AS rownum FROM auction a JOIN bid b ON a.id = b.auction WHERE b.date_time BETWEEN a.date_time AND a.expires) t WHERE rownum <= 1",
    },
    Query {
        name: "q10",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, date_time, to_char(date_time, 'YYYY-MM-DD') AS date, to_char(date_time, 'HH24:MI') AS time FROM bid",
    },
    Query {
        name: "q11",
        tables: &[Bid],
        setup: "",
        sql: "SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime FROM SESSION(bid, date_time, INTERVAL '10 seconds', bidder) GROUP BY bidder, window_start, window_end EMIT ON WINDOW CLOSE",
    },
    Query {
        name: "q12",
        tables: &[Bid],
        setup: "",
        sql: "SELECT bidder, count(*) AS bid_count, window_start, window_end FROM TUMBLE((SELECT bidder, proctime() AS p_time FROM bid), p_time, INTERVAL '10 seconds') GROUP BY bidder, window_start, window_end",
    },
    Query {
        name: "q13",
        tables: &[Bid],
        setup: "CREATE TABLE side_input (key BIGINT PRIMARY KEY, value VARCHAR); INSERT INTO side_input SELECT value, 'value' || value FROM generate_series(0, 9999); FLUSH",
        sql: "SELECT b.auction, b.bidder, b.price, b.date_time, s.value FROM bid b JOIN side_input s ON b.auction % 10000 = s.key",
    },
    Query {
        name: "q14",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, 0.908 * price AS price, CASE WHEN extract(hour FROM date_time) >= 8 AND extract(hour FROM date_time) <= 18 THEN 'dayTime' WHEN extract(hour FROM date_time) <= 6 OR extract(hour FROM date_time) >= 20 THEN 'nightTime' ELSE 'otherTime' END AS bidtimetype, date_time, extra, length(extra) - length(replace(extra, 'c', '')) AS c_counts FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000",
    },
    Query {
        name: "q15",
        tables: &[Bid],
        setup: "",
        sql: "SELECT to_char(date_time, 'YYYY-MM-DD') AS day, count(*) AS total_bids, count(*) FILTER (WHERE price < 10000) AS rank1_bids, count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids, count(*) FILTER (WHERE price >= 1000000) AS rank3_bids, count(DISTINCT bidder) AS total_bidders, count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders, count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders, count(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders, count(DISTINCT auction) AS total_auctions, count(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions, count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions, count(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions FROM bid GROUP BY to_char(date_time, 'YYYY-MM-DD')",
    },
    Query {
        name: "q16",
        tables: &[Bid],
        setup: "",
        sql: "SELECT channel, to_char(date_time, 'YYYY-MM-DD') AS day, max(to_char(date_time, 'HH24:MI')) AS minute, count(*) AS total_bids, count(*) FILTER (WHERE price < 10000) AS rank1_bids, count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids, count(*) FILTER (WHERE price >= 1000000) AS rank3_bids, count(DISTINCT bidder) AS total_bidders, count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders, count(DISTINCT bidder) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bidders, count(DISTINCT bidder) FILTER (WHERE price >= 1000000) AS rank3_bidders, count(DISTINCT auction) AS total_auctions, count(DISTINCT auction) FILTER (WHERE price < 10000) AS rank1_auctions, count(DISTINCT auction) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_auctions, count(DISTINCT auction) FILTER (WHERE price >= 1000000) AS rank3_auctions FROM bid GROUP BY channel, to_char(date_time, 'YYYY-MM-DD')",
    },
    Query {
        name: "q17",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, to_char(date_time, 'YYYY-MM-DD') AS day, count(*) AS total_bids, count(*) FILTER (WHERE price < 10000) AS rank1_bids, count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids, count(*) FILTER (WHERE price >= 1000000) AS rank3_bids, min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price, sum(price) AS sum_price FROM bid GROUP BY auction, to_char(date_time, 'YYYY-MM-DD')",
    },
    Query {
        name: "q18",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, channel, url, date_time, extra FROM (SELECT *, row_number() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC, price DESC) AS rank_number FROM bid) t WHERE rank_number <= 1",
    },
    Query {
        name: "q19",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, channel, url, date_time, extra, rank_number FROM (SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC, date_time, bidder) AS rank_number FROM bid) t WHERE rank_number <= 10",
    },
    Query {
        name: "q20",
        tables: &[Auction, Bid],
        setup: "",
        sql: "SELECT b.auction, b.bidder, b.price, b.channel, b.url, b.date_time, b.extra, a.item_name, a.description, a.initial_bid, a.reserve, a.date_time AS auction_date_time, a.expires, a.seller, a.category, a.extra AS auction_extra FROM bid b JOIN auction a ON b.auction = a.id WHERE a.category = 10",
    },
    Query {
        name: "q21",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, channel, CASE WHEN lower(channel) = 'apple' THEN '0' WHEN lower(channel) = 'google' THEN '1' WHEN lower(channel) = 'facebook' THEN '2' WHEN lower(channel) = 'baidu' THEN '3' ELSE (regexp_match(url, '(&|^)channel_id=([^&]*)'))[2] END AS channel_id FROM bid WHERE (regexp_match(url, '(&|^)channel_id=([^&]*)'))[2] IS NOT NULL OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu')",
    },
    Query {
        name: "q22",
        tables: &[Bid],
        setup: "",
        sql: "SELECT auction, bidder, price, channel, split_part(url, '/', 4) AS dir1, split_part(url, '/', 5) AS dir2, split_part(url, '/', 6) AS dir3 FROM bid",
    },
];

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The unpaced `nexmark` generator: the first `events` Nexmark events
    /// (all three types), `gap_ns` of event time apart.
    Generator { events: u64, gap_ns: u64 },
    /// `person.csv`, `auction.csv` and `bid.csv` (or files matching
    /// `person*.csv` ...) in a directory, as [`write_csv`] writes them.
    Files(std::path::PathBuf),
}

/// Event-time lateness the sources allow in their watermarks.
const WATERMARK_DELAY: &str = "INTERVAL '4 seconds'";

/// `CREATE SOURCE` for one stream.
pub fn source_ddl(t: Table, input: &Input) -> String {
    let cols = t.columns();
    let wm = format!("WATERMARK FOR date_time AS date_time - {WATERMARK_DELAY}");
    match input {
        Input::Generator { events, gap_ns } => format!(
            "CREATE SOURCE {} ({cols}, {wm}) WITH (connector = 'nexmark', nexmark.table.type = '{}', nexmark.event.num = '{events}', nexmark.min.event.gap.in.ns = '{gap_ns}', nexmark.use.real.time = 'false', nexmark.max.chunk.size = '4096')",
            t.name(),
            t.generator_type()
        ),
        Input::Files(dir) => format!(
            "CREATE SOURCE {} ({cols}, {wm}) WITH (connector = 'filesystem', path = '{}/{}*.csv') FORMAT PLAIN ENCODE CSV",
            t.name(),
            dir.display().to_string().replace('\'', "''"),
            t.name()
        ),
    }
}

/// Writes the first `events` Nexmark events, as the generator makes them
/// with the same gap and the unpaced base time, into `person.csv`,
/// `auction.csv` and `bid.csv` under `dir` (no header; timestamps as
/// `YYYY-MM-DD HH:MM:SS.mmm`). Returns the rows written per file.
pub fn write_csv(dir: &Path, events: u64, gap_ns: u64) -> Result<[u64; 3]> {
    use nexmark::event::Event;
    std::fs::create_dir_all(dir)?;
    let open = |n: &str| -> Result<std::io::BufWriter<std::fs::File>> {
        let f = std::fs::File::create(dir.join(n)).with_context(|| format!("creating {n}"))?;
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    };
    let (mut pf, mut af, mut bf) = (open("person.csv")?, open("auction.csv")?, open("bid.csv")?);
    let rate = (1_000_000_000 / gap_ns.max(1)).max(1) as usize;
    let cfg = nexmark::config::NexmarkConfig {
        base_time: UNPACED_BASE_TIME_MS,
        first_rate: rate,
        next_rate: rate,
        ..Default::default()
    };
    let mut counts = [0u64; 3];
    for ev in nexmark::EventGenerator::new(cfg).take(events as usize) {
        match ev {
            Event::Person(p) => {
                counts[0] += 1;
                writeln!(
                    pf,
                    "{},{},{},{},{},{},{},{}",
                    p.id,
                    csv(&p.name),
                    csv(&p.email_address),
                    csv(&p.credit_card),
                    csv(&p.city),
                    csv(&p.state),
                    ts(p.date_time),
                    csv(&p.extra)
                )?;
            }
            Event::Auction(a) => {
                counts[1] += 1;
                writeln!(
                    af,
                    "{},{},{},{},{},{},{},{},{},{}",
                    a.id,
                    csv(&a.item_name),
                    csv(&a.description),
                    a.initial_bid,
                    a.reserve,
                    ts(a.date_time),
                    ts(a.expires),
                    a.seller,
                    a.category,
                    csv(&a.extra)
                )?;
            }
            Event::Bid(b) => {
                counts[2] += 1;
                writeln!(
                    bf,
                    "{},{},{},{},{},{},{}",
                    b.auction,
                    b.bidder,
                    b.price,
                    csv(&b.channel),
                    csv(&b.url),
                    ts(b.date_time),
                    csv(&b.extra)
                )?;
            }
        }
    }
    for mut f in [pf, af, bf] {
        f.flush()?;
    }
    Ok(counts)
}

/// The generator's base time for unpaced streams (2026-01-01 00:00:00 UTC),
/// as in `freshet_runtime::source::nexmark::UNPACED_BASE_TIME_MS`.
pub const UNPACED_BASE_TIME_MS: u64 = 1_767_225_600_000;

fn ts(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

fn csv(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// A result fingerprint of `relation`: its row count, and per column the
/// sum of its values (numbers), of their lengths (text), of their epoch
/// seconds (timestamps) or their count (anything else), each to ten
/// significant digits. The SQL is the same on Freshet and PostgreSQL, so two
/// engines, or two builds, can be checked to agree.
pub async fn fingerprint(client: &Client, relation: &str) -> Result<String> {
    let stmt = client
        .prepare(&format!("SELECT * FROM {relation}"))
        .await
        .with_context(|| format!("describing {relation}"))?;
    let mut exprs = vec!["count(*)".to_string()];
    for c in stmt.columns() {
        let name = format!("\"{}\"", c.name().replace('"', "\"\""));
        let t = c.type_();
        exprs.push(
            if [
                Type::INT2,
                Type::INT4,
                Type::INT8,
                Type::NUMERIC,
                Type::FLOAT4,
                Type::FLOAT8,
            ]
            .contains(t)
            {
                format!("sum({name})")
            } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) {
                format!("sum(length({name}))")
            } else if [Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::DATE].contains(t) {
                format!("sum(extract(epoch FROM {name}))")
            } else if *t == Type::BOOL {
                format!("sum(CASE WHEN {name} THEN 1 ELSE 0 END)")
            } else {
                format!("count({name})")
            },
        );
    }
    let sql = format!("SELECT {} FROM {relation}", exprs.join(", "));
    let msgs = client
        .simple_query(&sql)
        .await
        .with_context(|| format!("fingerprint query: {sql}"))?;
    let row = msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .context("fingerprint query returned no row")?;
    let mut parts = Vec::new();
    for i in 0..row.len() {
        let v = row.get(i);
        parts.push(match (i, v) {
            (_, None) => "null".to_string(),
            (0, Some(v)) => v.to_string(),
            (_, Some(v)) => match v.parse::<f64>() {
                Ok(f) => format!("{f:.9e}"),
                Err(_) => v.to_string(),
            },
        });
    }
    Ok(format!(
        "rows={} sums=[{}]",
        parts[0],
        parts[1..].join(", ")
    ))
}

/// The server's user + system CPU time, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name in parentheses; utime and stime are
    // fields 14 and 15 of the whole line, in clock ticks (100 per second).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Lines in a file (events in a CSV file of [`write_csv`]).
pub fn count_lines(p: &std::path::Path) -> u64 {
    std::fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

const MIB: f64 = 1024.0 * 1024.0;

/// What one query's run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Wall time from `CREATE MATERIALIZED VIEW` to the committed `FLUSH`.
    pub secs: f64,
    /// The server's CPU time over the same span.
    pub cpu_secs: f64,
    /// Rows the view's readers handed the engine.
    pub source_rows: i64,
    pub peak_rss_mib: f64,
    pub state_entries: i64,
    pub state_mib: f64,
    pub store_mib: f64,
    pub fingerprint: String,
}

/// How one query's run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran(Measured),
    CannotPlan { code: String, message: String },
    Timeout { source_rows: i64 },
}

/// Runs one query on a fresh server: its setup, its sources, its view;
/// waits until every reader of the view has handed over its last row, then
/// `FLUSH`es and measures.
pub async fn run_query(q: &Query, input: &Input, timeout: Duration) -> Result<Outcome> {
    let server = TestServer::start().await?;
    let pid = server.pid().context("server pid")?;
    let c = server.connect().await?;
    if !q.setup.is_empty() {
        c.batch_execute(q.setup).await.context("setup")?;
    }
    for t in q.tables {
        c.batch_execute(&source_ddl(*t, input))
            .await
            .with_context(|| format!("creating source {}", t.name()))?;
    }
    let view = view_name(q);
    let (t0, cpu0) = (Instant::now(), cpu_secs(pid));
    if let Err(e) = c
        .batch_execute(&format!("CREATE MATERIALIZED VIEW {view} AS {}", q.sql))
        .await
    {
        let (code, msg) = match e.as_db_error() {
            Some(d) => (d.code().code().to_string(), d.message().to_string()),
            None => ("-".into(), e.to_string()),
        };
        return Ok(Outcome::CannotPlan { code, message: msg });
    }
    let Some(source_rows) = wait_finished(&c, &view, timeout).await? else {
        let rows = query_rows(&c, "SHOW SOURCE PROGRESS").await?;
        let source_rows = rows
            .iter()
            .filter(|r| r[1] == view)
            .map(|r| r[2].parse::<i64>().unwrap_or(0))
            .sum();
        return Ok(Outcome::Timeout { source_rows });
    };
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs(pid) - cpu0);
    let rss = crate::peak_rss_kib(pid).map_or(0.0, |kb| kb as f64 / 1024.0);
    let state = query_rows(&c, "SHOW STATE").await?;
    let (keys, bytes) = state
        .iter()
        .filter(|r| r[0] == view)
        .fold((0i64, 0i64), |(k, b), r| {
            (
                k + r[1].parse::<i64>().unwrap_or(0),
                b + r[2].parse::<i64>().unwrap_or(0),
            )
        });
    let store_mib = dir_bytes(server.data_path()) as f64 / MIB;
    let fingerprint = fingerprint(&c, &view).await?;
    Ok(Outcome::Ran(Measured {
        secs,
        cpu_secs: cpu,
        source_rows,
        peak_rss_mib: rss,
        state_entries: keys,
        state_mib: bytes as f64 / MIB,
        store_mib,
        fingerprint,
    }))
}

/// Waits until every reader feeding `view` has handed over its last row
/// (`SHOW SOURCE PROGRESS`), then `FLUSH`es, so the view holds every row.
/// Returns the rows the readers read, or `None` after `timeout`.
pub async fn wait_finished(c: &Client, view: &str, timeout: Duration) -> Result<Option<i64>> {
    let t0 = Instant::now();
    loop {
        let progress = query_rows(c, "SHOW SOURCE PROGRESS").await?;
        let mine: Vec<&Vec<String>> = progress.iter().filter(|r| r[1] == view).collect();
        if !mine.is_empty() && mine.iter().all(|r| r[4] == "t") {
            c.batch_execute("FLUSH").await?;
            return Ok(Some(
                mine.iter().map(|r| r[2].parse::<i64>().unwrap_or(0)).sum(),
            ));
        }
        if t0.elapsed() > timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
