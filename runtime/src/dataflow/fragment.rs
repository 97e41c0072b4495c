//! A fragment: one view's operators ([`Graph`]) on a thread of their own,
//! fed through one bounded channel.
//!
//! What enters a fragment comes on input ports: port 0 is the engine (table
//! changes, source chunks, backfill, and the barrier that ends each epoch),
//! and each view the fragment reads is a port of its own, fed by that
//! view's fragment. The fragment aligns barriers over its ports
//! ([`BarrierAligner`]): once a port delivered epoch n's barrier, what it
//! sends next waits until every port has; then the whole graph ends the
//! epoch at once, the fragment reports its writes to the engine and parks.
//! Parked, it runs the engine's [`Control`]s (new consumers of its view,
//! subscriptions) until [`Control::Resume`]: after the commit, so every
//! read of the store sees the epoch it wrote. A fragment whose operator
//! fails stops processing, still passes barriers on, and reports the
//! failure at the next barrier; the engine then marks its view failed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::Arc;

use freshet_storage::{Epoch, Store, TableId, WriteSet};

use super::graph::{Graph, NodeId, Remote};
use super::source_entry::{SourceEntry, SourceInput};
use super::{Alignable, BarrierAligner, Message};
use crate::error::{Result, RuntimeError};
use crate::operators::Operator;

/// Messages a fragment's channel holds before its senders wait.
const CHANNEL_SLOTS: usize = 64;

/// Views made to fail at their first change (`--fail-view`, for tests of
/// failure isolation).
static FAILING_VIEWS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Makes the views named `names` fail when they process their first
/// change (a test's fault injection; set once, at start-up).
pub fn set_failing_views(names: Vec<String>) {
    let _ = FAILING_VIEWS.set(names);
}

/// The sending end of a fragment's channel.
pub type FragmentTx = SyncSender<FragmentMsg>;

/// What a fragment receives.
pub enum FragmentMsg {
    /// A message on input `port`, entering the graph at node `entry` (a
    /// barrier ends the epoch for the whole port; its entry is not used).
    Input {
        port: usize,
        entry: NodeId,
        msg: Message,
    },
    /// A source reader's chunk (none: only split positions or a
    /// watermark) for the scan `input.entry`, on the engine's port.
    Source {
        chunk: Option<datafusion::arrow::array::RecordBatch>,
        input: SourceInput,
    },
    /// A chunk of a new view's backfill at scan `entry`, on the engine's
    /// port; counted in [`FragmentHandle::backfill_queued`] until taken.
    Backfill {
        entry: NodeId,
        batch: crate::change::ChangeBatch,
    },
    Control(Control),
}

/// The engine's changes to a running fragment.
pub enum Control {
    /// Adds node `id` reading `from`'s output (a subscription).
    AddNode {
        id: NodeId,
        op: Box<dyn Operator>,
        from: NodeId,
    },
    RemoveNode(NodeId),
    /// Readers will feed the source scan `entry` (its event-time column
    /// and counters, for sources with a watermark); `catching_up`: the
    /// view's catch-up reader reads the source's past first.
    AddSource {
        entry: NodeId,
        col: Option<usize>,
        time: Option<Arc<crate::time::TimeStats>>,
        catching_up: bool,
    },
    /// Sends `from`'s output to another fragment too (a new view reading
    /// this one).
    ConnectRemote {
        from: NodeId,
        to: Remote,
    },
    /// The epoch last reported is over (`committed`: it was written, and
    /// operators hear `on_committed`); `next` is the epoch now building.
    Resume {
        committed: bool,
        next: Epoch,
    },
    Stop,
}

/// Asks the engine to end the epoch early (the fragment's writes reached
/// [`crate::state::budget::EPOCH_WRITE_LIMIT`]).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// A fragment's end of an epoch: its writes, or why it failed.
pub struct Report {
    pub fragment: TableId,
    pub epoch: Epoch,
    pub result: std::result::Result<WriteSet, String>,
}

/// The engine's handle on a running fragment.
pub struct FragmentHandle {
    pub tx: FragmentTx,
    pub thread: std::thread::JoinHandle<()>,
    /// About the bytes the running epoch has written (the engine's early
    /// epoch end reads it).
    pub bytes: Arc<AtomicUsize>,
    /// Backfill chunks sent and not yet taken (the engine keeps this
    /// small, so a barrier never waits behind a long queue of them).
    pub backfill_queued: Arc<AtomicUsize>,
}

impl FragmentHandle {
    /// Sends `msg`, waiting while the channel is full; false once the
    /// fragment is gone.
    pub fn send(&self, msg: FragmentMsg) -> bool {
        self.tx.send(msg).is_ok()
    }
}

/// A channel for a fragment about to be spawned (its sender is needed to
/// wire other fragments to it first).
pub fn channel() -> (FragmentTx, Receiver<FragmentMsg>) {
    std::sync::mpsc::sync_channel(CHANNEL_SLOTS)
}

/// Starts fragment `id` (named after its view) running `graph`, which has
/// `ports` input ports, building epoch `epoch`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    id: TableId,
    name: &str,
    graph: Graph,
    ports: usize,
    store: Store,
    epoch: Epoch,
    channel: (FragmentTx, Receiver<FragmentMsg>),
    reports: Sender<Report>,
    wake: Wake,
) -> Result<FragmentHandle> {
    let (tx, rx) = channel;
    let bytes = Arc::new(AtomicUsize::new(0));
    let backfill_queued = Arc::new(AtomicUsize::new(0));
    let fail_on_change = FAILING_VIEWS
        .get()
        .is_some_and(|v| v.iter().any(|n| n == name));
    let f = Fragment {
        id,
        fail_on_change,
        graph,
        store,
        epoch,
        aligner: BarrierAligner::new(ports),
        rx,
        reports,
        bytes: bytes.clone(),
        backfill_queued: backfill_queued.clone(),
        failed: None,
        deferred: VecDeque::new(),
        sources: std::collections::HashMap::new(),
        wake,
        woke: false,
    };
    let thread = std::thread::Builder::new()
        .name(format!(
            "freshet-view-{}",
            name.chars().take(20).collect::<String>()
        ))
        .spawn(move || f.run())
        .map_err(|e| RuntimeError::Internal(format!("cannot start a view thread: {e}")))?;
    Ok(FragmentHandle {
        tx,
        thread,
        bytes,
        backfill_queued,
    })
}

/// A message on its way to the graph, through the port aligner: a
/// message, or a reader's chunk with its positions.
struct Routed {
    entry: NodeId,
    msg: Option<Message>,
    source: Option<SourceInput>,
}

impl Alignable for Routed {
    fn barrier_epoch(&self) -> Option<Epoch> {
        self.msg.as_ref().and_then(|m| m.barrier_epoch())
    }
}

struct Fragment {
    id: TableId,
    /// Fail at the first change (see [`set_failing_views`]).
    fail_on_change: bool,
    graph: Graph,
    store: Store,
    /// The epoch being built.
    epoch: Epoch,
    aligner: BarrierAligner<Routed>,
    rx: Receiver<FragmentMsg>,
    reports: Sender<Report>,
    bytes: Arc<AtomicUsize>,
    backfill_queued: Arc<AtomicUsize>,
    /// Set once an operator failed: inputs are dropped from then on.
    failed: Option<String>,
    /// Inputs that came while parked, taken before the channel.
    deferred: VecDeque<FragmentMsg>,
    /// Source scans fed by readers.
    sources: std::collections::HashMap<NodeId, SourceEntry>,
    wake: Wake,
    /// Whether this epoch already asked for an early end.
    woke: bool,
}

/// Whether the fragment goes on after a message.
#[derive(PartialEq)]
enum Flow {
    Go,
    Stop,
}

impl Fragment {
    fn run(mut self) {
        loop {
            let msg = match self.deferred.pop_front() {
                Some(m) => m,
                None => match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => return,
                },
            };
            if self.handle(msg) == Flow::Stop {
                return;
            }
        }
    }

    fn handle(&mut self, msg: FragmentMsg) -> Flow {
        match msg {
            FragmentMsg::Control(c) => self.control(c),
            FragmentMsg::Input { port, entry, msg } => self.take(
                port,
                Routed {
                    entry,
                    msg: Some(msg),
                    source: None,
                },
            ),
            FragmentMsg::Backfill { entry, batch } => {
                let flow = self.take(
                    0,
                    Routed {
                        entry,
                        msg: Some(Message::Chunk(batch)),
                        source: None,
                    },
                );
                self.backfill_queued.fetch_sub(1, Ordering::Relaxed);
                flow
            }
            FragmentMsg::Source { chunk, input } => self.take(
                0,
                Routed {
                    entry: input.entry,
                    msg: chunk.map(|c| Message::Chunk(crate::change::ChangeBatch::inserts(c))),
                    source: Some(input),
                },
            ),
        }
    }

    /// Takes `r` from `port` through the aligner and runs what it lets by.
    fn take(&mut self, port: usize, r: Routed) -> Flow {
        let mut ready = Vec::new();
        if let Err(e) = self.aligner.push(port, r, &mut ready) {
            self.fail(e.to_string());
        }
        for (_, r) in ready {
            match r.msg {
                Some(Message::Barrier(b)) => {
                    let flow = self.end_epoch(b);
                    if flow == Flow::Stop {
                        return flow;
                    }
                }
                Some(Message::Chunk(_)) if self.fail_on_change && self.failed.is_none() => {
                    self.fail("injected failure (--fail-view)".into());
                }
                m if self.failed.is_none() => {
                    let (store, epoch) = (self.store.clone(), self.epoch);
                    let (g, sources) = (&mut self.graph, &mut self.sources);
                    let res = guarded(|| apply(g, sources, &store, epoch, r.entry, m, r.source));
                    if let Err(e) = res {
                        self.fail(e);
                    }
                }
                _ => {}
            }
        }
        let bytes = self.graph.pending_bytes();
        self.bytes.store(bytes, Ordering::Relaxed);
        if bytes >= crate::state::budget::EPOCH_WRITE_LIMIT && !self.woke {
            self.woke = true;
            (self.wake)();
        }
        Flow::Go
    }

    fn fail(&mut self, why: String) {
        if self.failed.is_none() {
            tracing::error!(view = self.id.0, "view failed: {why}");
            self.failed = Some(why);
        }
    }

    fn control(&mut self, c: Control) -> Flow {
        match c {
            Control::AddNode { id, op, from } => {
                self.graph.insert(id, op, 1);
                self.graph.connect(from, id, 0);
            }
            Control::RemoveNode(id) => self.graph.remove(&[id]),
            Control::AddSource {
                entry,
                col,
                time,
                catching_up,
            } => {
                self.sources.insert(
                    entry,
                    SourceEntry {
                        col,
                        watermark: None,
                        time,
                        catching_up,
                        held: None,
                    },
                );
            }
            Control::ConnectRemote { from, to } => self.graph.connect_remote(from, to),
            Control::Resume { committed, next } => {
                if committed {
                    self.graph.on_committed();
                }
                self.epoch = next;
                self.woke = false;
            }
            Control::Stop => return Flow::Stop,
        }
        Flow::Go
    }

    /// Every port delivered barrier `b`: the graph ends the epoch, the
    /// fragment reports, then parks until the engine resumes it.
    fn end_epoch(&mut self, b: super::Barrier) -> Flow {
        let epoch = b.epoch;
        let result = match &self.failed {
            Some(why) => {
                // Downstream fragments still need the barrier.
                self.graph.forward_barrier(&b);
                Err(why.clone())
            }
            None => {
                let store = self.store.clone();
                let g = &mut self.graph;
                guarded(|| g.barrier(&store, b))
            }
        };
        if let Err(e) = &result {
            self.fail(e.clone());
        }
        let report = Report {
            fragment: self.id,
            epoch,
            result,
        };
        if self.reports.send(report).is_err() {
            return Flow::Stop;
        }
        self.bytes.store(0, Ordering::Relaxed);
        loop {
            match self.rx.recv() {
                Ok(FragmentMsg::Control(c)) => {
                    let resume = matches!(c, Control::Resume { .. });
                    if self.control(c) == Flow::Stop {
                        return Flow::Stop;
                    }
                    if resume {
                        return Flow::Go;
                    }
                }
                Ok(input) => self.deferred.push_back(input),
                Err(_) => return Flow::Stop,
            }
        }
    }
}

/// Runs message `m` at `entry`; for a reader's chunk also counts its late
/// rows, writes its split positions (a catch-up reader's: the shared
/// reader's are the engine's) and passes its watermark on. A catch-up
/// reader's last message ends the catch-up: its keys go, and the shared
/// reader's held watermark is let through.
fn apply(
    g: &mut Graph,
    sources: &mut std::collections::HashMap<NodeId, SourceEntry>,
    store: &Store,
    epoch: Epoch,
    entry: NodeId,
    m: Option<Message>,
    source: Option<SourceInput>,
) -> Result<()> {
    let Some(src) = source else {
        return match m {
            Some(m) => g.emit(store, epoch, entry, vec![m]),
            None => Ok(()),
        };
    };
    let se = sources.entry(entry).or_default();
    if src.done {
        g.delete_prefix(&src.key.state_prefix());
        g.delete_prefix(&src.key.until_prefix());
        if let Some(wm) = se.caught_up() {
            g.emit(store, epoch, entry, vec![Message::Watermark(wm)])?;
        }
        return Ok(());
    }
    if let Some(Message::Chunk(c)) = &m {
        se.count_late(&c.data);
    }
    if let Some(m) = m {
        g.emit(store, epoch, entry, vec![m])?;
    }
    for (split, off) in src.state {
        g.put(src.key.state_key(&split), off.to_be_bytes().to_vec());
    }
    let wm = match src.watermark {
        Some(w) if src.catch_up => se.advance(w),
        Some(w) => se.shared_watermark(w),
        None => None,
    };
    if let Some(wm) = wm {
        g.emit(store, epoch, entry, vec![Message::Watermark(wm)])?;
    }
    Ok(())
}

/// Runs `f`, turning an error or a panic into the failure's text.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(match p.downcast_ref::<&str>() {
            Some(s) => format!("internal panic: {s}"),
            None => match p.downcast_ref::<String>() {
                Some(s) => format!("internal panic: {s}"),
                None => "internal panic".to_string(),
            },
        }),
    }
}
