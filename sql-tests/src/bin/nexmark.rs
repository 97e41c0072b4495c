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
use freshet_sql_tests::nexmark::{self, Input, Outcome, QUERIES};

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
                .map(|f| nexmark::count_lines(&dir.join(f)))
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
    println!(
        "freshet-nexmark: {events} events from {what}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| query | events/s | wall s | CPU s | events per CPU-s | source rows | peak RSS MiB | state entries / MiB | store MiB | fingerprint |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for q in QUERIES {
        if a.queries
            .as_ref()
            .is_some_and(|qs| !qs.iter().any(|n| n == q.name))
        {
            continue;
        }
        let line = match nexmark::run_query(q, &input, a.timeout).await {
            Ok(Outcome::Ran(m)) => format!(
                "| {} | {:.0} | {:.1} | {:.1} | {:.0} | {} | {:.0} | {} / {:.1} | {:.0} | {} |",
                q.name,
                events as f64 / m.secs,
                m.secs,
                m.cpu_secs,
                events as f64 / m.cpu_secs.max(0.01),
                m.source_rows,
                m.peak_rss_mib,
                m.state_entries,
                m.state_mib,
                m.store_mib,
                m.fingerprint
            ),
            Ok(Outcome::CannotPlan { code, message }) => format!(
                "| {} | cannot plan: {code} {} |",
                q.name,
                message.replace('|', "/").replace('\n', " ")
            ),
            Ok(Outcome::Timeout { source_rows }) => format!(
                "| {} | did not finish within {} s ({source_rows} source rows read) |",
                q.name,
                a.timeout.as_secs()
            ),
            Err(e) => format!(
                "| {} | failed: {} |",
                q.name,
                format!("{e:#}").replace('\n', " ")
            ),
        };
        println!("{line}");
    }
    Ok(())
}
