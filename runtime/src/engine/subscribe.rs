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
    pub async fn subscribe(&self, view: TableId, snapshot: bool) -> Result<Subscription> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (start, node) = self
            .call(|reply| Command::Subscribe {
                view,
                snapshot,
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
        tx: SubscribeTx,
    ) -> Result<(Epoch, u64)> {
        let (root, schema, keyed) = {
            let v = self
                .views
                .get(&view)
                .ok_or_else(|| RuntimeError::UnknownObject(format!("view {}", view.0)))?;
            (v.root, v.def.schema(), v.def.keyed())
        };
        // Start between epochs: what is pending commits first.
        self.barrier(true)?;
        let epoch = self.epoch;
        if snapshot {
            let entries = self.store.scan_prefix(&table_prefix(view))?;
            let mut changes = Vec::new();
            for chunk in entries.chunks(BACKFILL_CHUNK) {
                changes.push(ChangeBatch::inserts(decode_view_rows(
                    chunk, &schema, keyed,
                )?));
            }
            let _ = tx.send(SubscribeMsg { epoch, changes });
        }
        let gid = self.next_node;
        self.next_node += 1;
        self.nodes.insert(
            gid,
            Node {
                op: Box::new(SubscribeOperator {
                    tx,
                    pending: Vec::new(),
                    epoch: None,
                }),
                consumers: Vec::new(),
            },
        );
        if let Some(n) = self.nodes.get_mut(&root) {
            n.consumers.push((gid, 0));
        }
        self.subscriptions.insert(gid, view);
        Ok((epoch, gid))
    }

    pub(super) fn unsubscribe(&mut self, node: u64) {
        if self.subscriptions.remove(&node).is_some() {
            self.nodes.remove(&node);
            for n in self.nodes.values_mut() {
                n.consumers.retain(|(c, _)| *c != node);
            }
        }
    }

    /// Ends the subscriptions of a view being dropped (their receivers see
    /// the channel close).
    pub(super) fn end_subscriptions(&mut self, view: TableId) {
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
