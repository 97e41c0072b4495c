//! The PostgreSQL-oracle runner: runs `.slt` files against Freshet and a real
//! PostgreSQL and compares the two, so no expected output is typed by hand.
//!
//! A file is ordinary sqllogictest syntax without result sections:
//! - `statement ok` / `statement error`: run on both; both must succeed, or
//!   both fail with the same SQLSTATE.
//! - `query [T..] [rowsort|nosort|valuesort] [view]`: run on both; column
//!   types (OIDs), column count and text values must match, rows sorted
//!   unless `nosort`. With the `view` label the query also becomes a
//!   materialized view in Freshet (a plain view in PostgreSQL), compared now
//!   and again after every later `INSERT`/`UPDATE`/`DELETE` of the file.
//! - `query error`: both must fail with the same SQLSTATE.
//! - `onlyif freshet` / `skipif postgres` and the reverse pick a side.
//!
//! For PostgreSQL, `CREATE MATERIALIZED VIEW` becomes `CREATE VIEW`, and
//! `FLUSH` is skipped.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use sqllogictest::{Condition, DefaultColumnType, QueryExpect, Record, SortMode, StatementExpect};
use tokio_postgres::{Client, SimpleQueryMessage};

/// What one side answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Rows {
        types: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Done,
    Error {
        sqlstate: String,
        message: String,
    },
}

impl Answer {
    pub fn is_error(&self) -> bool {
        matches!(self, Answer::Error { .. })
    }
}

/// Counts of what a file compared, and its differences.
#[derive(Debug, Default)]
pub struct Report {
    pub statements: usize,
    pub queries: usize,
    pub view_checks: usize,
    pub failures: Vec<String>,
}

impl Report {
    pub fn add(&mut self, other: Report) {
        self.statements += other.statements;
        self.queries += other.queries;
        self.view_checks += other.view_checks;
        self.failures.extend(other.failures);
    }
}

/// Runs one file: `fresh` is a connection to a new Freshet server, `pg` to an
/// empty PostgreSQL database.
pub async fn run_file(path: &Path, fresh: &Client, pg: &Client) -> Result<Report> {
    let records = sqllogictest::parse_file::<DefaultColumnType>(path)
        .with_context(|| format!("parsing {}", path.display()))?;
    for s in [
        "SET TimeZone = 'UTC'",
        "SET DateStyle = 'ISO, MDY'",
        "SET IntervalStyle = 'postgres'",
    ] {
        pg.simple_query(s).await?;
    }
    // DML returns once views and reads see it, as PostgreSQL's does.
    fresh.simple_query("SET implicit_flush = true").await?;
    let mut report = Report::default();
    let mut views: Vec<(String, SortMode)> = Vec::new();
    for record in records {
        match record {
            Record::Statement {
                loc,
                conditions,
                sql,
                expected,
                ..
            } => {
                let (on_fresh, on_pg) = sides(&conditions);
                let pg_sql = for_postgres(&sql);
                let a = if on_fresh {
                    Some(answer(fresh, &sql, false).await)
                } else {
                    None
                };
                let b = match (&pg_sql, on_pg) {
                    (Some(s), true) => Some(answer(pg, s, false).await),
                    _ => None,
                };
                report.statements += 1;
                let want_error = matches!(expected, StatementExpect::Error(_));
                let at = format!("{loc}: {}", one_line(&sql));
                check_statement(&at, a.as_ref(), b.as_ref(), want_error, &mut report);
                let changed = a.as_ref().is_some_and(|a| !a.is_error()) && is_dml(&sql);
                if changed && !views.is_empty() {
                    if let Err(e) = fresh.simple_query("FLUSH").await {
                        report.failures.push(format!("{at}\n  FLUSH failed: {e}"));
                        continue;
                    }
                    for (name, sort) in &views {
                        report.view_checks += 1;
                        let q = format!("SELECT * FROM {name}");
                        let what = format!("{at}\n  view {name} after this statement");
                        compare(&what, fresh, pg, &q, sort, &mut report).await;
                    }
                }
            }
            Record::Query {
                loc,
                conditions,
                sql,
                expected,
                ..
            } => {
                let (on_fresh, on_pg) = sides(&conditions);
                if !(on_fresh && on_pg) {
                    continue;
                }
                report.queries += 1;
                let at = format!("{loc}: {}", one_line(&sql));
                match expected {
                    QueryExpect::Error(_) => {
                        let a = answer(fresh, &sql, false).await;
                        let b = answer(pg, &sql, false).await;
                        check_statement(&at, Some(&a), Some(&b), true, &mut report);
                    }
                    QueryExpect::Results {
                        sort_mode, label, ..
                    } => {
                        let sort = sort_mode.unwrap_or(SortMode::RowSort);
                        compare(&at, fresh, pg, &sql, &sort, &mut report).await;
                        if label.as_deref() == Some("view") {
                            let name = format!("oracle_v{}", loc.line());
                            let create = format!("CREATE MATERIALIZED VIEW {name} AS {sql}");
                            let a = answer(fresh, &create, false).await;
                            let b =
                                answer(pg, &format!("CREATE VIEW {name} AS {sql}"), false).await;
                            if let Answer::Error { message, sqlstate } = &a {
                                report.failures.push(format!(
                                    "{at}\n  as a view, Freshet refused it: {sqlstate} {message}"
                                ));
                                continue;
                            }
                            if let Answer::Error { message, .. } = &b {
                                report.failures.push(format!(
                                    "{at}\n  as a view, PostgreSQL refused it: {message}"
                                ));
                                continue;
                            }
                            let _ = fresh.simple_query("FLUSH").await;
                            report.view_checks += 1;
                            let q = format!("SELECT * FROM {name}");
                            compare(
                                &format!("{at}\n  as view {name}"),
                                fresh,
                                pg,
                                &q,
                                &sort,
                                &mut report,
                            )
                            .await;
                            views.push((name, sort));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(report)
}

/// Which sides a record runs on.
fn sides(conditions: &[Condition]) -> (bool, bool) {
    let mut fresh = true;
    let mut pg = true;
    for c in conditions {
        match c {
            Condition::OnlyIf { label } => {
                fresh &= label == "freshet";
                pg &= label == "postgres";
            }
            Condition::SkipIf { label } => {
                fresh &= label != "freshet";
                pg &= label != "postgres";
            }
        }
    }
    (fresh, pg)
}

/// The statement as PostgreSQL runs it, or `None` when it has no
/// PostgreSQL counterpart.
fn for_postgres(sql: &str) -> Option<String> {
    let trimmed = sql.trim_start();
    let upper = trimmed.to_ascii_uppercase();
    if upper.starts_with("FLUSH") {
        return None;
    }
    if upper.starts_with("CREATE MATERIALIZED VIEW") {
        return Some(format!(
            "CREATE VIEW{}",
            &trimmed["CREATE MATERIALIZED VIEW".len()..]
        ));
    }
    if upper.starts_with("DROP MATERIALIZED VIEW") {
        return Some(format!(
            "DROP VIEW{}",
            &trimmed["DROP MATERIALIZED VIEW".len()..]
        ));
    }
    Some(sql.to_string())
}

fn is_dml(sql: &str) -> bool {
    let upper = sql.trim_start().to_ascii_uppercase();
    ["INSERT", "UPDATE", "DELETE", "COPY", "TRUNCATE"]
        .iter()
        .any(|k| upper.starts_with(k))
}

fn one_line(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

fn check_statement(
    at: &str,
    a: Option<&Answer>,
    b: Option<&Answer>,
    want_error: bool,
    report: &mut Report,
) {
    for (side, ans) in [("Freshet", a), ("PostgreSQL", b)] {
        match ans {
            Some(Answer::Error { sqlstate, message }) if !want_error => report
                .failures
                .push(format!("{at}\n  {side} failed: {sqlstate} {message}")),
            Some(x) if want_error && !x.is_error() => report
                .failures
                .push(format!("{at}\n  {side} succeeded; an error was expected")),
            _ => {}
        }
    }
    if let (
        Some(Answer::Error {
            sqlstate: s1,
            message: m1,
        }),
        Some(Answer::Error {
            sqlstate: s2,
            message: m2,
        }),
    ) = (a, b)
    {
        if s1 != s2 {
            report.failures.push(format!(
                "{at}\n  SQLSTATE differs: Freshet {s1} ({m1}), PostgreSQL {s2} ({m2})"
            ));
        }
    }
}

/// Runs `sql` on both sides and records any difference.
async fn compare(
    at: &str,
    fresh: &Client,
    pg: &Client,
    sql: &str,
    sort: &SortMode,
    report: &mut Report,
) {
    let a = answer(fresh, sql, true).await;
    let b = answer(pg, sql, true).await;
    let (a, b) = (sorted(a, sort), sorted(b, sort));
    if a != b {
        report.failures.push(format!("{at}\n{}", diff(&a, &b)));
    }
}

fn sorted(a: Answer, sort: &SortMode) -> Answer {
    match (a, sort) {
        (Answer::Rows { types, mut rows }, SortMode::RowSort | SortMode::ValueSort) => {
            rows.sort();
            Answer::Rows { types, rows }
        }
        (a, _) => a,
    }
}

fn diff(a: &Answer, b: &Answer) -> String {
    let mut out = String::new();
    match (a, b) {
        (
            Answer::Rows {
                types: t1,
                rows: r1,
            },
            Answer::Rows {
                types: t2,
                rows: r2,
            },
        ) => {
            if t1 != t2 {
                let _ = writeln!(out, "  types: Freshet {t1:?}, PostgreSQL {t2:?}");
            }
            if r1 != r2 {
                let _ = writeln!(
                    out,
                    "  rows: Freshet {} rows, PostgreSQL {} rows",
                    r1.len(),
                    r2.len()
                );
                let mut shown = 0;
                for i in 0..r1.len().max(r2.len()) {
                    let (x, y) = (r1.get(i), r2.get(i));
                    if x != y && shown < 5 {
                        let _ = writeln!(
                            out,
                            "    row {i}: Freshet {x:?}\n           PostgreSQL {y:?}"
                        );
                        shown += 1;
                    }
                }
            }
        }
        _ => {
            let _ = writeln!(out, "  Freshet: {a:?}\n  PostgreSQL: {b:?}");
        }
    }
    out
}

/// Runs `sql`, with its column types when `typed` (from a prepared
/// statement's description) and its rows as text.
pub async fn answer(client: &Client, sql: &str, typed: bool) -> Answer {
    let mut types = Vec::new();
    if typed {
        match client.prepare(sql).await {
            Ok(st) => {
                types = st
                    .columns()
                    .iter()
                    .map(|c| c.type_().name().to_string())
                    .collect()
            }
            Err(e) => return error_answer(&e),
        }
    }
    match client.simple_query(sql).await {
        Ok(msgs) => {
            let mut rows = Vec::new();
            let mut saw_rows = false;
            for m in msgs {
                match m {
                    SimpleQueryMessage::Row(r) => {
                        rows.push(
                            (0..r.len())
                                .map(|i| {
                                    r.get(i)
                                        .map(str::to_string)
                                        .unwrap_or_else(|| "NULL".into())
                                })
                                .collect(),
                        );
                    }
                    SimpleQueryMessage::RowDescription(_) => saw_rows = true,
                    _ => {}
                }
            }
            if saw_rows || typed {
                Answer::Rows { types, rows }
            } else {
                Answer::Done
            }
        }
        Err(e) => error_answer(&e),
    }
}

fn error_answer(e: &tokio_postgres::Error) -> Answer {
    match e.as_db_error() {
        Some(db) => Answer::Error {
            sqlstate: db.code().code().to_string(),
            message: db.message().to_string(),
        },
        None => Answer::Error {
            sqlstate: "connection".into(),
            message: e.to_string(),
        },
    }
}
