//! `freshet-nexmark`: the Nexmark queries q0–q22 on a real `freshet` server.
//! Prints figures; never fails on a number.
//!
//! ```text
//! freshet-nexmark [--events N] [--queries q0,q5] [--gap-ns NS] [--files DIR]
//!                 [--timeout SECS] [--write-files DIR]
//! ```
//!
//! For each query it starts a fresh server (`$FRESHET_BIN`, or the `freshet`
//! next to this binary), creates the sources the query reads (the unpaced
//! `nexmark` generator bounded at N events, or CSV files of `--files DIR`)
//! and the query's materialized view, waits until every reader of the view
//! has handed over its last row, then `FLUSH`es. It prints events/s (N over
//! the wall time from `CREATE MATERIALIZED VIEW` to the committed `FLUSH`),
//! the server's CPU-seconds over that time (`/proc/PID/stat`), events per
//! CPU-second, peak RSS, the view's operator state (`SHOW STATE`), the store
//! on disk and a result fingerprint (row count and column sums). A query
//! that cannot be planned prints its SQLSTATE and message.
//!
//! `--write-files DIR` writes N events as `person.csv`, `auction.csv` and
//! `bid.csv` (the generator's exact rows) and exits, for `--files` and for
//! other engines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use freshet_sql_tests::nexmark::{self, Input, Query, QUERIES};
use freshet_sql_tests::{query_rows, TestServer};

struct Args {
    events: u64,
    gap_ns: u64,
    queries: Option<Vec<String>>,
    files: Option<PathBuf>,
    write_files: Option<PathBuf>,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        events: 1_000_000,
        gap_ns: 1_000_000,
        queries: None,
        files: None,
        write_files: None,
        timeout: Duration::from_secs(900),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => a.events = val()?.replace('_', "").parse()?,
            "--gap-ns" => a.gap_ns = val()?.parse()?,
            "--queries" => {
                a.queries = Some(val()?.split(',').map(|q| q.trim().to_lowercase()).collect())
            }
            "--files" => a.files = Some(PathBuf::from(val()?)),
            "--write-files" => a.write_files = Some(PathBuf::from(val()?)),
            "--timeout" => a.timeout = Duration::from_secs(val()?.parse()?),
            "-h" | "--help" => {
                println!("usage: freshet-nexmark [--events N] [--queries q0,q5] [--gap-ns NS] [--files DIR] [--timeout SECS] [--write-files DIR]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    Ok(a)
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

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn count_lines(p: &std::path::Path) -> u64 {
    std::fs::read(p)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs one query; returns its table row, or why it could not run.
async fn run(q: &Query, input: &Input, events: u64, timeout: Duration) -> Result<String> {
    let server = TestServer::start().await?;
    let pid = server.pid().context("server pid")?;
    let c = server.connect().await?;
    if !q.setup.is_empty() {
        c.batch_execute(q.setup).await.context("setup")?;
    }
    for t in q.tables {
        c.batch_execute(&nexmark::source_ddl(*t, input))
            .await
            .with_context(|| format!("creating source {}", t.name()))?;
    }
    let view = nexmark::view_name(q);
    let (t0, cpu0) = (Instant::now(), cpu_secs(pid));
    if let Err(e) = c
        .batch_execute(&format!("CREATE MATERIALIZED VIEW {view} AS {}", q.sql))
        .await
    {
        let (code, msg) = match e.as_db_error() {
            Some(d) => (d.code().code().to_string(), d.message().to_string()),
            None => ("-".into(), e.to_string()),
        };
        return Ok(format!("| {} | cannot plan: {code} {} |", q.name, msg.replace('|', "/").replace('\n', " ")));
    }
    let source_rows = loop {
        let progress = query_rows(&c, "SHOW SOURCE PROGRESS").await?;
        let mine: Vec<&Vec<String>> = progress.iter().filter(|r| r[1] == view).collect();
        let source_rows: i64 = mine.iter().map(|r| r[2].parse::<i64>().unwrap_or(0)).sum();
        if !mine.is_empty() && mine.iter().all(|r| r[4] == "t") {
            break source_rows;
        }
        if t0.elapsed() > timeout {
            return Ok(format!(
                "| {} | did not finish within {} s ({source_rows} source rows read) |",
                q.name,
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    c.batch_execute("FLUSH").await?;
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs(pid) - cpu0);
    let rss = peak_rss_mib(pid);
    let state = query_rows(&c, "SHOW STATE").await?;
    let (keys, bytes) = state
        .iter()
        .filter(|r| r[0] == view)
        .fold((0i64, 0i64), |(k, b), r| {
            (k + r[1].parse::<i64>().unwrap_or(0), b + r[2].parse::<i64>().unwrap_or(0))
        });
    let store = dir_bytes(server.data_path()) as f64 / MIB;
    let fp = nexmark::fingerprint(&c, &view).await?;
    Ok(format!(
        "| {} | {:.0} | {secs:.1} | {cpu:.1} | {:.0} | {source_rows} | {rss:.0} | {keys} / {:.1} | {store:.0} | {fp} |",
        q.name,
        events as f64 / secs,
        events as f64 / cpu.max(0.01),
        bytes as f64 / MIB,
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = parse_args()?;
    if let Some(dir) = &a.write_files {
        let t = Instant::now();
        let [p, au, b] = nexmark::write_csv(dir, a.events, a.gap_ns)?;
        println!(
            "wrote {} events ({p} person, {au} auction, {b} bid rows) to {} in {:.1} s",
            a.events,
            dir.display(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let (input, events) = match &a.files {
        Some(dir) => {
            let n: u64 = ["person.csv", "auction.csv", "bid.csv"]
                .iter()
                .map(|f| count_lines(&dir.join(f)))
                .sum();
            (Input::Files(dir.clone()), n)
        }
        None => (
            Input::Generator {
                events: a.events,
                gap_ns: a.gap_ns,
            },
            a.events,
        ),
    };
    let what = match &a.files {
        Some(d) => format!("CSV files in {}", d.display()),
        None => format!("the unpaced nexmark generator, {} ns apart", a.gap_ns),
    };
    println!("freshet-nexmark: {events} events from {what}; {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!();
    println!("| query | events/s | wall s | CPU s | events per CPU-s | source rows | peak RSS MiB | state entries / MiB | store MiB | fingerprint |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for q in QUERIES {
        if a.queries.as_ref().is_some_and(|qs| !qs.iter().any(|n| n == q.name)) {
            continue;
        }
        match run(q, &input, events, a.timeout).await {
            Ok(line) => println!("{line}"),
            Err(e) => println!("| {} | failed: {} |", q.name, format!("{e:#}").replace('\n', " ")),
        }
    }
    Ok(())
}
