//! A sink's delivery thread: reads committed epochs from the sink's log in
//! order and hands each one to its [`Target`] as one transaction, then
//! trims it from the log. Any failure (broker down, a refused record)
//! abandons the attempt, reopens the target, which re-reads its progress,
//! and tries again with backoff: nothing is skipped and nothing is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use freshet_storage::{Store, TableId};

use super::encode::Record;
use super::log::{self, Cursor};
use super::stats::SinkStats;
use crate::error::{Result, RuntimeError};

/// Most bytes of log entries read (and held) at once.
const READ_BYTES: usize = 4 << 20;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a sink's records go. Calls come from the delivery thread only, in
/// the order `open`, then per epoch `begin`, `write`..., `commit`; after
/// any error, `reset` and `open` again.
pub trait Target: Send {
    /// Connects. An exactly-once target also resolves a transaction the
    /// previous run left open and returns the last epoch it committed.
    fn open(&mut self) -> std::result::Result<Option<u64>, String>;
    fn begin(&mut self, epoch: u64) -> std::result::Result<(), String>;
    fn write(&mut self, records: &[Record]) -> std::result::Result<(), String>;
    /// Commits the epoch's records together with the epoch as progress.
    fn commit(&mut self, epoch: u64) -> std::result::Result<(), String>;
    /// Abandons an attempt (aborts what is open) and disconnects.
    fn reset(&mut self);
}

/// The running delivery thread; stopped and joined on drop.
pub struct Delivery {
    stop: Arc<AtomicBool>,
    notify: Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl Delivery {
    pub fn spawn(
        store: Store,
        log_table: TableId,
        stats: Arc<SinkStats>,
        target: Box<dyn Target>,
    ) -> Result<Delivery> {
        let stop = Arc::new(AtomicBool::new(false));
        let (notify, rx) = channel();
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("freshet-sink-{}", stats.name))
            .spawn(move || run(store, log_table, stats, target, s, rx))
            .map_err(|e| RuntimeError::Internal(format!("cannot start a sink thread: {e}")))?;
        Ok(Delivery {
            stop,
            notify,
            handle: Some(handle),
        })
    }

    /// Tells the thread that an epoch with records is on its way to the log.
    pub fn notify(&self) {
        let _ = self.notify.send(());
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.notify.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits for a notification, the stop flag or `d`; true when stopping.
fn wait(rx: &Receiver<()>, stop: &AtomicBool, d: Duration) -> bool {
    match rx.recv_timeout(d) {
        Ok(()) => while rx.try_recv().is_ok() {},
        Err(RecvTimeoutError::Timeout) => {}
        Err(RecvTimeoutError::Disconnected) => return true,
    }
    stop.load(Ordering::Relaxed)
}

fn run(
    store: Store,
    table: TableId,
    stats: Arc<SinkStats>,
    mut target: Box<dyn Target>,
    stop: Arc<AtomicBool>,
    rx: Receiver<()>,
) {
    let mut open = false;
    let mut cursor = Cursor { epoch: 0, seq: 0 };
    let mut in_epoch: Option<u64> = None;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let step: std::result::Result<bool, String> = (|| {
            if !open {
                let progress = target.open()?;
                open = true;
                in_epoch = None;
                cursor = match progress {
                    Some(p) => {
                        stats.delivered_epoch.fetch_max(p, Ordering::Relaxed);
                        log::trim(&store, table, p).map_err(|e| e.to_string())?;
                        Cursor {
                            epoch: p + 1,
                            seq: 0,
                        }
                    }
                    None => Cursor { epoch: 0, seq: 0 },
                };
            }
            let Some(chunk) =
                log::read(&store, table, cursor, READ_BYTES).map_err(|e| e.to_string())?
            else {
                return Ok(false);
            };
            if in_epoch != Some(chunk.epoch) {
                target.begin(chunk.epoch)?;
                in_epoch = Some(chunk.epoch);
                (records, bytes) = (0, 0);
            }
            target.write(&chunk.records)?;
            records += chunk.records.len() as u64;
            bytes += chunk.records.iter().map(|r| r.bytes() as u64).sum::<u64>();
            if chunk.epoch_done {
                target.commit(chunk.epoch)?;
                in_epoch = None;
                stats.records.fetch_add(records, Ordering::Relaxed);
                stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                stats
                    .delivered_epoch
                    .fetch_max(chunk.epoch, Ordering::Relaxed);
                stats.clear_error();
                // Trimmed after the commit: a crash before this line only
                // leaves an epoch the target's progress already covers.
                log::trim(&store, table, chunk.epoch).map_err(|e| e.to_string())?;
            }
            cursor = chunk.next;
            Ok(true)
        })();
        match step {
            Ok(true) => backoff = Duration::from_millis(100),
            Ok(false) => {
                if wait(&rx, &stop, Duration::from_millis(200)) {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(sink = %stats.name, "sink delivery failed, retrying: {e}");
                stats.error(&e);
                target.reset();
                open = false;
                if wait(&rx, &stop, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    target.reset();
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_storage::{Epoch, WriteSet};
    use std::sync::Mutex;

    /// A target that keeps what it committed, starts with `progress`, and
    /// fails the first `fail` commits.
    #[derive(Clone, Default)]
    struct Fake {
        log: Arc<Mutex<Vec<(u64, usize)>>>,
        progress: Arc<Mutex<Option<u64>>>,
        fail: Arc<Mutex<u32>>,
        open_txn: Arc<Mutex<Option<(u64, usize)>>>,
    }

    impl Target for Fake {
        fn open(&mut self) -> std::result::Result<Option<u64>, String> {
            *self.open_txn.lock().unwrap() = None;
            Ok(*self.progress.lock().unwrap())
        }
        fn begin(&mut self, epoch: u64) -> std::result::Result<(), String> {
            *self.open_txn.lock().unwrap() = Some((epoch, 0));
            Ok(())
        }
        fn write(&mut self, records: &[Record]) -> std::result::Result<(), String> {
            let mut t = self.open_txn.lock().unwrap();
            let t = t.as_mut().ok_or("no transaction")?;
            t.1 += records.len();
            Ok(())
        }
        fn commit(&mut self, epoch: u64) -> std::result::Result<(), String> {
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err("broker down".into());
            }
            let t = self
                .open_txn
                .lock()
                .unwrap()
                .take()
                .ok_or("no transaction")?;
            assert_eq!(t.0, epoch);
            self.log.lock().unwrap().push(t);
            *self.progress.lock().unwrap() = Some(epoch);
            Ok(())
        }
        fn reset(&mut self) {
            *self.open_txn.lock().unwrap() = None;
        }
    }

    fn rec(i: u32) -> Record {
        Record {
            key: None,
            value: Some(i.to_le_bytes().to_vec()),
        }
    }

    /// Epochs the target already has are skipped (a crash after its commit,
    /// before the trim); failed commits are retried; every other epoch is
    /// delivered once, in order, whole; delivered epochs leave the log.
    #[test]
    fn delivers_each_epoch_once_after_the_targets_progress() {
        let dir = std::env::temp_dir().join(format!("freshet-sink-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let table = TableId(9);
        for (epoch, n) in [(3u64, 2u32), (5, 3), (6, 50_000), (8, 1)] {
            let mut w = WriteSet::default();
            let recs: Vec<Record> = (0..n).map(rec).collect();
            log::append(&mut w, table, epoch, &recs);
            store.commit(w, Epoch(epoch)).unwrap();
        }
        let fake = Fake::default();
        *fake.progress.lock().unwrap() = Some(3);
        *fake.fail.lock().unwrap() = 2;
        let stats = Arc::new(SinkStats::new("t"));
        let d =
            Delivery::spawn(store.clone(), table, stats.clone(), Box::new(fake.clone())).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while stats.delivered_epoch.load(Ordering::Relaxed) < 8 {
            assert!(std::time::Instant::now() < deadline, "not delivered");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(d);
        assert_eq!(*fake.log.lock().unwrap(), vec![(5, 3), (6, 50_000), (8, 1)]);
        assert_eq!(stats.errors.load(Ordering::Relaxed), 2);
        assert!(
            log::read(&store, table, log::Cursor { epoch: 0, seq: 0 }, 1 << 20)
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
