//! `SUBSCRIBE`: a view's committed changes streamed to a client.
//!
//! A subscription is a node of its own that consumes the view's root, like a
//! view reading the view. It starts between two epochs (after a barrier), so
//! the snapshot is the view as of that epoch and every later change arrives
//! exactly once, tagged with the epoch it committed in, after that epoch is
//! committed. Dropping the receiving end ends it.

use super::*;

/// What a subscriber receives: the changes of one committed epoch (the
/// snapshot is the first message, with the epoch it was read at).
#[derive(Debug)]
pub struct SubscribeMsg {
    pub epoch: Epoch,
    pub changes: Vec<ChangeBatch>,
}

pub type SubscribeTx = mpsc::UnboundedSender<SubscribeMsg>;

/// A subscription's handle: unsubscribes when dropped.
pub struct Subscription {
    pub rx: mpsc::UnboundedReceiver<SubscribeMsg>,
    /// The epoch the snapshot was read at; changes follow from the next.
    pub start: Epoch,
    node: u64,
    engine: Engine,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self
            .engine
            .tx
            .try_send(Command::Unsubscribe { node: self.node });
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Subscription(node {}, from epoch {})",
            self.node, self.start.0
        )
    }
}

/// How much of a view's recent changes stays for `AS OF` (per view, from
/// its first subscription on): at most this many bytes of change batches.
const RETAIN_BYTES: usize = 32 << 20;

/// A view's recent committed changes, kept from its first subscription so
/// that a client can resume `AS OF` an epoch it saw.
#[derive(Default)]
pub(super) struct Retained {
    /// Every change committed after this epoch is in `epochs`.
    pub complete_after: Epoch,
    epochs: std::collections::VecDeque<(Epoch, Vec<ChangeBatch>, usize)>,
    bytes: usize,
    pending: Vec<ChangeBatch>,
    epoch: Option<Epoch>,
}

impl Retained {
    fn add(&mut self, epoch: Epoch, changes: Vec<ChangeBatch>) {
        let size: usize = changes
            .iter()
            .map(|c| c.data.get_array_memory_size() + c.weights.len() * 8)
            .sum();
        self.epochs.push_back((epoch, changes, size));
        self.bytes += size;
        while self.bytes > RETAIN_BYTES {
            match self.epochs.pop_front() {
                Some((e, _, s)) => {
                    self.bytes -= s;
                    self.complete_after = e;
                }
                None => break,
            }
        }
    }

    /// The retained changes of epochs after `e`, or `None` when some of
    /// them are no longer kept.
    fn since(&self, e: Epoch) -> Option<Vec<SubscribeMsg>> {
        if e < self.complete_after {
            return None;
        }
        Some(
            self.epochs
                .iter()
                .filter(|(x, _, _)| *x > e)
                .map(|(x, c, _)| SubscribeMsg {
                    epoch: *x,
                    changes: c.clone(),
                })
                .collect(),
        )
    }
}

/// The retaining node of a view (see [`Retained`]).
struct RetainOperator(Arc<std::sync::Mutex<Retained>>);

impl Operator for RetainOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        if let Ok(mut r) = self.0.lock() {
            r.pending.push(batch);
        }
        Ok(Vec::new())
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        if let Ok(mut r) = self.0.lock() {
            if !r.pending.is_empty() {
                r.epoch = Some(ctx.epoch);
            }
        }
        Ok(Vec::new())
    }

    fn on_committed(&mut self) {
        if let Ok(mut r) = self.0.lock() {
            if let Some(e) = r.epoch.take() {
                let changes = std::mem::take(&mut r.pending);
                r.add(e, changes);
            }
        }
    }
}

/// The subscriber's node: holds the epoch's changes until it commits.
struct SubscribeOperator {
    tx: SubscribeTx,
    pending: Vec<ChangeBatch>,
    epoch: Option<Epoch>,
}

impl Operator for SubscribeOperator {
    fn process(
        &mut self,
        _input: usize,
        batch: ChangeBatch,
        _ctx: &mut EpochCtx<'_>,
    ) -> Result<Vec<ChangeBatch>> {
        self.pending.push(batch);
        Ok(Vec::new())
    }

    fn on_barrier(&mut self, ctx: &mut EpochCtx<'_>) -> Result<Vec<ChangeBatch>> {
        if !self.pending.is_empty() {
            self.epoch = Some(ctx.epoch);
        }
        Ok(Vec::new())
    }

    fn on_committed(&mut self) {
        if let Some(epoch) = self.epoch.take() {
            let changes = std::mem::take(&mut self.pending);
            // A closed receiver is removed by its handle's Unsubscribe.
            let _ = self.tx.send(SubscribeMsg { epoch, changes });
        }
    }
}

impl Engine {
    /// Subscribes to the committed changes of view `view`, first with its
    /// current contents when `snapshot`.
    /// With `as_of`, the changes committed after that epoch come first
    /// (and no snapshot): resuming where a client left off, while those
    /// changes are retained.
    pub async fn subscribe(
        &self,
        view: TableId,
        snapshot: bool,
        as_of: Option<Epoch>,
    ) -> Result<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (start, node) = self
            .call(|reply| Command::Subscribe {
                view,
                snapshot,
                as_of,
                tx,
                reply,
            })
            .await?;
        Ok(Subscription {
            rx,
            start,
            node,
            engine: self.clone(),
        })
    }
}

impl Worker {
    pub(super) fn subscribe(
        &mut self,
        view: TableId,
        snapshot: bool,
        as_of: Option<Epoch>,
        tx: SubscribeTx,
    ) -> Result<(Epoch, u64)> {
        let (root, schema, keyed) = {
            let v = self
                .views
                .get(&view)
                .ok_or_else(|| RuntimeError::UnknownObject(format!("view {}", view.0)))?;
            (v.root, v.def.schema(), v.def.keyed())
        };
        if let Some(why) = self.failed.get(view) {
            let name = self
                .views
                .get(&view)
                .map(|v| v.def.name.clone())
                .unwrap_or_default();
            return Err(RuntimeError::ViewFailed { view: name, why });
        }
        // Start between epochs: what is pending commits first, and the
        // view's fragment waits at the boundary until its new node is in.
        let parked = self.mutate(|w| w.barrier_collect(true))?;
        let r = self.start_subscription(view, root, &schema, keyed, snapshot, as_of, tx);
        self.release(parked);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn start_subscription(
        &mut self,
        view: TableId,
        root: u64,
        schema: &SchemaRef,
        keyed: bool,
        snapshot: bool,
        as_of: Option<Epoch>,
        tx: SubscribeTx,
    ) -> Result<(Epoch, u64)> {
        let epoch = self.epoch;
        if let Some(e) = as_of {
            // The retained changes after that epoch (a refusal is the
            // user's mistake and changes nothing).
            let kept = self
                .retained
                .get(&view)
                .and_then(|(_, r)| r.lock().ok().map(|r| (r.since(e), r.complete_after)));
            let msgs = match kept {
                Some((Some(msgs), _)) if e <= epoch => msgs,
                Some((_, after)) => {
                    return Err(crate::source::SourceError::Option(format!(
                        "the changes after epoch {} are not retained (subscriptions to this view can resume from epoch {} to {})",
                        e.0, after.0, epoch.0
                    ))
                    .into())
                }
                None => {
                    return Err(crate::source::SourceError::Option(format!(
                        "the changes after epoch {} are not retained (a view keeps them from its first subscription since the server started)",
                        e.0
                    ))
                    .into())
                }
            };
            for m in msgs {
                let _ = tx.send(m);
            }
        } else if snapshot {
            let entries = self.store.scan_prefix(&table_prefix(view))?;
            let mut changes = Vec::new();
            for chunk in entries.chunks(BACKFILL_CHUNK) {
                changes.push(ChangeBatch::inserts(decode_view_rows(
                    chunk, schema, keyed,
                )?));
            }
            let _ = tx.send(SubscribeMsg { epoch, changes });
        }
        if !self.retained.contains_key(&view) {
            let r = Arc::new(std::sync::Mutex::new(Retained {
                complete_after: epoch,
                ..Default::default()
            }));
            let gid = self.add_consumer(view, root, Box::new(RetainOperator(r.clone())));
            self.retained.insert(view, (gid, r));
        }
        let gid = self.add_consumer(
            view,
            root,
            Box::new(SubscribeOperator {
                tx,
                pending: Vec::new(),
                epoch: None,
            }),
        );
        self.subscriptions.insert(gid, view);
        Ok((epoch, gid))
    }

    /// Adds a node reading the root `from` of `view`, at the boundary the
    /// view's fragment is parked at; returns its id.
    fn add_consumer(&mut self, view: TableId, from: u64, op: Box<dyn Operator>) -> u64 {
        let gid = self.next_node;
        self.next_node += 1;
        if let Some(f) = self.fragments.get_mut(&view) {
            f.controls
                .push(crate::dataflow::Control::AddNode { id: gid, op, from });
            self.node_fragment.insert(gid, view);
        }
        gid
    }

    /// Removes a subscription's node from its view's fragment.
    fn remove_node(&mut self, node: u64) {
        if let Some(f) = self
            .node_fragment
            .remove(&node)
            .and_then(|v| self.fragments.get(&v))
        {
            f.handle.send(crate::dataflow::FragmentMsg::Control(
                crate::dataflow::Control::RemoveNode(node),
            ));
        }
    }

    pub(super) fn unsubscribe(&mut self, node: u64) {
        if self.subscriptions.remove(&node).is_some() {
            self.remove_node(node);
        }
    }

    /// Ends the subscriptions of a view being dropped (their receivers see
    /// the channel close).
    pub(super) fn end_subscriptions(&mut self, view: TableId) {
        if let Some((gid, _)) = self.retained.remove(&view) {
            self.remove_node(gid);
        }
        let doomed: Vec<u64> = self
            .subscriptions
            .iter()
            .filter(|(_, v)| **v == view)
            .map(|(n, _)| *n)
            .collect();
        for n in doomed {
            self.unsubscribe(n);
        }
    }
}
