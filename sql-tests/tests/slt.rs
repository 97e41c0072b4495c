//! Runs every `.slt` file under `sql-tests/slt/` against a fresh `freshet`
//! server (real binary, real pgwire). `SLT=name` runs only files whose name
//! contains `name`.

use std::path::PathBuf;

use freshet_sql_tests::{DbError, FreshetDb, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    // The runtime value first: a build cache shared by two checkouts may run
    // a test binary compiled in the other one.
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = PathBuf::from(manifest).join("slt");
    let filter = std::env::var("SLT").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("slt dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| {
            filter
                .as_ref()
                .is_none_or(|f| p.to_string_lossy().contains(f.as_str()))
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .slt files found in {}",
        dir.display()
    );
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
