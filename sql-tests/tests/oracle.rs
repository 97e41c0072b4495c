//! Runs every `.slt` file under `sql-tests/oracle/` against a fresh Freshet
//! server and a real PostgreSQL, and compares the answers (see
//! `freshet_sql_tests::oracle`). `ORACLE=name` runs only files whose name
//! contains `name`.

use freshet_sql_tests::oracle::{run_file, Report};
use freshet_sql_tests::postgres::PgServer;
use freshet_sql_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_oracle() {
    let files = freshet_sql_tests::slt_files("oracle", "ORACLE");
    assert!(!files.is_empty(), "no .slt files in sql-tests/oracle");
    let pg = PgServer::start().await.expect("start PostgreSQL");
    let mut total = Report::default();
    for (i, file) in files.iter().enumerate() {
        let started = std::time::Instant::now();
        let server = TestServer::start().await.expect("start freshet");
        let fresh = server.connect().await.expect("connect freshet");
        let pgc = pg
            .new_database(&format!("oracle_{i}"))
            .await
            .expect("create database");
        let report = run_file(file, &fresh, &pgc).await.expect("run file");
        eprintln!(
            "{} {} ({} statements, {} queries, {} view checks, {} differences, {:.1}s)",
            if report.failures.is_empty() {
                "ok  "
            } else {
                "FAIL"
            },
            file.display(),
            report.statements,
            report.queries,
            report.view_checks,
            report.failures.len(),
            started.elapsed().as_secs_f64()
        );
        for f in &report.failures {
            eprintln!("{f}");
        }
        total.add(report);
    }
    eprintln!(
        "oracle: {} statements, {} queries, {} view checks compared with PostgreSQL; {} differences",
        total.statements,
        total.queries,
        total.view_checks,
        total.failures.len()
    );
    assert!(
        total.failures.is_empty(),
        "{} differences from PostgreSQL",
        total.failures.len()
    );
}
