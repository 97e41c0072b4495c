//! `SUBSCRIBE` through a cursor over pgwire: the snapshot, then each
//! committed change once, in epoch order, checked against the view.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use freshet_sql_tests::{query_rows, sqlstate_of, TestServer};

/// Applies cursor rows (epoch, diff, columns...) to a multiset of rows.
fn apply(state: &mut BTreeMap<Vec<String>, i64>, rows: &[Vec<String>], last_epoch: &mut i64) {
    for r in rows {
        let epoch: i64 = r[0].parse().unwrap();
        assert!(epoch >= *last_epoch, "epochs in order: {rows:?}");
        *last_epoch = epoch;
        let diff: i64 = r[1].parse().unwrap();
        let e = state.entry(r[2..].to_vec()).or_default();
        *e += diff;
        if *e == 0 {
            state.remove(&r[2..].to_vec());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_cursor_gives_snapshot_then_changes_in_epoch_order() -> Result<()> {
    let server = TestServer::start().await?;
    let c = server.connect().await?;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, g INT);
         INSERT INTO t VALUES (1, 1), (2, 1), (3, 2);
         CREATE MATERIALIZED VIEW m AS SELECT g, count(*) AS n FROM t GROUP BY g;
         FLUSH;
         DECLARE c CURSOR FOR SUBSCRIBE m;",
    )
    .await?;
    let mut state = BTreeMap::new();
    let mut epoch = 0;
    let snap = query_rows(&c, "FETCH ALL FROM c").await?;
    assert_eq!(snap.len(), 2, "{snap:?}");
    assert!(
        snap.iter().all(|r| r[1] == "1" && r[0] == snap[0][0]),
        "{snap:?}"
    );
    apply(&mut state, &snap, &mut epoch);
    // Nothing new: a zero timeout returns at once with no rows.
    let t = Instant::now();
    assert!(query_rows(&c, "FETCH ALL FROM c WITH (timeout = '0')")
        .await?
        .is_empty());
    assert!(t.elapsed() < Duration::from_secs(2));
    let other = server.connect().await?;
    for (i, stmt) in [
        "INSERT INTO t VALUES (4, 2), (5, 3)",
        "UPDATE t SET g = 3 WHERE id = 1",
        "DELETE FROM t WHERE g = 2",
    ]
    .iter()
    .enumerate()
    {
        other.batch_execute(&format!("{stmt}; FLUSH;")).await?;
        let rows = query_rows(&c, "FETCH 100 FROM c WITH (timeout = '10s')").await?;
        assert!(!rows.is_empty(), "change {i} arrives");
        assert!(
            rows.iter().all(|r| r[0].parse::<i64>().unwrap() > epoch),
            "{rows:?}"
        );
        apply(&mut state, &rows, &mut epoch);
        let mut view: Vec<Vec<String>> = query_rows(&c, "SELECT g, n FROM m").await?;
        view.sort();
        let mine: Vec<Vec<String>> = state
            .iter()
            .flat_map(|(r, n)| std::iter::repeat_n(r.clone(), *n as usize))
            .collect();
        assert_eq!(mine, view, "after change {i}");
    }
    // Resume: close the cursor, miss two changes, then AS OF the last
    // epoch seen gives exactly what was missed.
    c.batch_execute("CLOSE c").await?;
    other
        .batch_execute(
            "INSERT INTO t VALUES (6, 4); FLUSH; UPDATE t SET g = 4 WHERE id = 5; FLUSH;",
        )
        .await?;
    c.batch_execute(&format!("DECLARE c2 CURSOR FOR SUBSCRIBE m AS OF {epoch}"))
        .await?;
    let missed = query_rows(&c, "FETCH ALL FROM c2 WITH (timeout = '5s')").await?;
    assert!(
        missed.iter().all(|r| r[0].parse::<i64>().unwrap() > epoch),
        "{missed:?}"
    );
    apply(&mut state, &missed, &mut epoch);
    let mut view: Vec<Vec<String>> = query_rows(&c, "SELECT g, n FROM m").await?;
    view.sort();
    let mine: Vec<Vec<String>> = state
        .iter()
        .flat_map(|(r, n)| std::iter::repeat_n(r.clone(), *n as usize))
        .collect();
    assert_eq!(mine, view, "after resuming AS OF");
    assert_eq!(
        sqlstate_of(&c, "DECLARE old CURSOR FOR SUBSCRIBE m AS OF 1").await,
        "22023",
        "epochs before the first subscription are not retained"
    );
    // WITH (SNAPSHOT = false): changes only.
    c.batch_execute("DECLARE d CURSOR FOR SUBSCRIBE m WITH (SNAPSHOT = false)")
        .await?;
    assert!(query_rows(&c, "FETCH ALL FROM d WITH (timeout = '200ms')")
        .await?
        .is_empty());
    other
        .batch_execute("INSERT INTO t VALUES (9, 9); FLUSH;")
        .await?;
    let rows = query_rows(&c, "FETCH ALL FROM d WITH (timeout = '10s')").await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&rows[0][1..], ["1", "9", "1"]);
    assert_eq!(
        sqlstate_of(&c, "DECLARE e CURSOR FOR SUBSCRIBE t").await,
        "42809"
    );
    assert_eq!(
        sqlstate_of(&c, "DECLARE e CURSOR FOR SUBSCRIBE nope").await,
        "42P01"
    );
    assert_eq!(sqlstate_of(&c, "SUBSCRIBE m").await, "0A000");
    assert_eq!(
        sqlstate_of(&c, "FETCH 1 FROM d WITH (colour = 'red')").await,
        "22023"
    );
    c.batch_execute("CLOSE c2; CLOSE d;").await?;
    Ok(())
}
