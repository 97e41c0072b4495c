//! The background committer: writes one epoch's batch to RocksDB on a thread
//! of its own while the engine goes on with the next epoch.
//!
//! At most one commit is in flight. Every read of the store first waits for
//! it ([`Committer::wait`]), so a reader never sees the database without an
//! epoch the engine has already handed over: committing in the background
//! changes when the work happens, never what anyone reads. A failed
//! background commit is kept and returned by the next [`Committer::settle`]
//! (the engine's next commit), which stops the engine.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rocksdb::{WriteBatch, DB};

use crate::error::{Result, StorageError};
use crate::keys::Epoch;
use crate::store::{build_batch, WriteSet};

type Done = Receiver<std::result::Result<(), String>>;

struct Job {
    writes: WriteSet,
    epoch: Epoch,
    sync: bool,
    done: SyncSender<std::result::Result<(), String>>,
}

#[derive(Default)]
struct Slot {
    in_flight: Option<Done>,
    failed: Option<String>,
}

pub(crate) struct Committer {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    slot: Mutex<Slot>,
}

/// Writes `batch`, syncing the WAL first if asked.
pub(crate) fn write(db: &DB, batch: WriteBatch, sync: bool) -> Result<()> {
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(sync);
    db.write_opt(batch, &wo)?;
    Ok(())
}

impl Committer {
    pub(crate) fn start(db: Arc<DB>) -> Result<Self> {
        let (tx, rx) = sync_channel::<Job>(1);
        let thread = std::thread::Builder::new()
            .name("freshet-commit".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let batch = build_batch(job.writes, job.epoch);
                    let r = write(&db, batch, job.sync).map_err(|e| e.to_string());
                    let _ = job.done.send(r);
                }
            })
            .map_err(|e| StorageError::CommitFailed(format!("cannot start the committer: {e}")))?;
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
            slot: Mutex::new(Slot::default()),
        })
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves the slot consistent.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the commit in flight, if any, recording its failure.
    fn wait_locked(slot: &mut Slot) {
        if let Some(done) = slot.in_flight.take() {
            match done.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => slot.failed = Some(e),
                Err(_) => slot.failed = Some("the committer thread stopped".into()),
            }
        }
    }

    /// Waits until no commit is in flight (before any read).
    pub(crate) fn wait(&self) {
        Self::wait_locked(&mut self.slot());
    }

    /// Waits until no commit is in flight; fails if a background commit failed.
    pub(crate) fn settle(&self) -> Result<()> {
        let mut slot = self.slot();
        Self::wait_locked(&mut slot);
        match &slot.failed {
            Some(e) => Err(StorageError::CommitFailed(e.clone())),
            None => Ok(()),
        }
    }

    /// Hands `writes` to the committer thread once the previous commit is
    /// done; the thread builds the batch (sorting it) and writes it.
    pub(crate) fn submit(&self, writes: WriteSet, epoch: Epoch, sync: bool) -> Result<()> {
        let mut slot = self.slot();
        Self::wait_locked(&mut slot);
        if let Some(e) = &slot.failed {
            return Err(StorageError::CommitFailed(e.clone()));
        }
        let (done, rx) = sync_channel(1);
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| StorageError::CommitFailed("the committer is stopped".into()))?;
        tx.send(Job {
            writes,
            epoch,
            sync,
            done,
        })
        .map_err(|_| StorageError::CommitFailed("the committer thread stopped".into()))?;
        slot.in_flight = Some(rx);
        Ok(())
    }
}

impl Drop for Committer {
    /// Finishes the commit in flight and stops the thread, so the database
    /// is closed once the last [`crate::Store`] handle is gone.
    fn drop(&mut self) {
        self.wait();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
