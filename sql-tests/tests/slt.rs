//! Runs every `.slt` file under `sql-tests/slt/` against a fresh `freshet`
//! server (real binary, real pgwire). `SLT=name` runs only files whose name
//! contains `name`.

use freshet_sql_tests::{DbError, FreshetDb, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let files = freshet_sql_tests::slt_files("slt", "SLT");
    assert!(!files.is_empty(), "no .slt files found in sql-tests/slt");
    let mut failures = Vec::new();
    for file in &files {
        let started = std::time::Instant::now();
        let mut runner = sqllogictest::Runner::new(|| async {
            let server = TestServer::start().await.map_err(DbError::from)?;
            FreshetDb::new(server).await.map_err(DbError::from)
        });
        match runner.run_file_async(file).await {
            Ok(()) => eprintln!(
                "ok   {} ({:.1}s)",
                file.display(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("FAIL {}\n{}", file.display(), e.display(false));
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failed .slt files: {failures:?}");
}
