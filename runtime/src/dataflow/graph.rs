//! One fragment's operators joined by edges, and the one path by which
//! [`Message`]s (chunks, watermarks, barriers) travel along them.
//!
//! A node has a number of input ports and a list of consumers: (node,
//! port) inside the graph, or the entry of another fragment ([`Remote`]).
//! Nodes without input ports are the graph's entry points (table, source,
//! constant and view scans): the fragment emits what reaches it there.
//! Everything else reaches a node only along an edge, through the node's
//! [`BarrierAligner`]. When a node's barrier is released it runs
//! `on_barrier`, and its output, then its watermarks, then the barrier go
//! on downstream.
//!
//! Delivery is depth first on the calling thread: when [`Graph::emit`]
//! returns, everything the messages caused in this graph has happened
//! (and what leaves it is in the other fragments' channels). Every
//! operator writes into the graph's [`WriteSet`], which the barrier hands
//! over whole.

use std::collections::BTreeMap;

use freshet_storage::{Epoch, Store, WriteSet};

use super::fragment::{FragmentMsg, FragmentTx};
use super::{Barrier, BarrierAligner, Message};
use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::operators::{EpochCtx, Operator};

/// Identifies a node (unique for the engine's lifetime).
pub type NodeId = u64;

/// An entry of another fragment that a node's output goes to.
#[derive(Clone)]
pub struct Remote {
    pub tx: FragmentTx,
    /// The port of that fragment's input aligner.
    pub port: usize,
    /// The entry node there.
    pub entry: NodeId,
    /// The epoch of the last barrier sent there.
    pub sent: Option<Epoch>,
}

/// One operator and where its output goes.
pub struct Node {
    pub op: Box<dyn Operator>,
    consumers: Vec<(NodeId, usize)>,
    remotes: Vec<Remote>,
    /// Input ports (0 for an entry point).
    inputs: usize,
    aligner: BarrierAligner<Message>,
}

/// The running operators of one fragment and the writes of their epoch.
#[derive(Default)]
pub struct Graph {
    nodes: BTreeMap<NodeId, Node>,
    writes: WriteSet,
}

impl Graph {
    /// Adds node `id` running `op`, with `inputs` input ports.
    pub fn insert(&mut self, id: NodeId, op: Box<dyn Operator>, inputs: usize) {
        self.nodes.insert(
            id,
            Node {
                op,
                consumers: Vec::new(),
                remotes: Vec::new(),
                inputs,
                aligner: BarrierAligner::new(inputs),
            },
        );
    }

    /// Sends `from`'s output to input `port` of `to`.
    pub fn connect(&mut self, from: NodeId, to: NodeId, port: usize) {
        if let Some(n) = self.nodes.get_mut(&from) {
            n.consumers.push((to, port));
        }
    }

    /// Sends `from`'s output to another fragment.
    pub fn connect_remote(&mut self, from: NodeId, to: Remote) {
        if let Some(n) = self.nodes.get_mut(&from) {
            n.remotes.push(to);
        }
    }

    /// Stops sending `from`'s output to the entry `entry` of another fragment.
    pub fn disconnect_remote(&mut self, from: NodeId, entry: NodeId) {
        if let Some(n) = self.nodes.get_mut(&from) {
            n.remotes.retain(|r| r.entry != entry);
        }
    }

    /// Removes the nodes `ids` and every edge into them.
    pub fn remove(&mut self, ids: &[NodeId]) {
        for id in ids {
            self.nodes.remove(id);
        }
        for n in self.nodes.values_mut() {
            n.consumers.retain(|(c, _)| !ids.contains(c));
        }
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Runs `on_start` on every node, in id order.
    pub fn start(&mut self, store: &Store, epoch: Epoch, fresh: bool) -> Result<()> {
        let Graph { nodes, writes } = self;
        for n in nodes.values_mut() {
            let mut ctx = EpochCtx {
                store,
                writes: &mut *writes,
                epoch,
            };
            n.op.on_start(&mut ctx, fresh)?;
        }
        Ok(())
    }

    /// Writes `key` in this epoch (a reader's split position).
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.put(key, value);
    }

    /// Deletes every key under `prefix` in this epoch (a finished
    /// catch-up reader's positions).
    pub fn delete_prefix(&mut self, prefix: &[u8]) {
        self.writes.delete_prefix(prefix);
    }

    /// About the bytes this epoch has written so far.
    pub fn pending_bytes(&self) -> usize {
        self.writes.approx_bytes()
    }

    /// Tells every node that the epoch of its last barrier is committed.
    pub fn on_committed(&mut self) {
        for n in self.nodes.values_mut() {
            n.op.on_committed();
        }
    }

    /// Delivers `msgs`, emitted by node `from`, to its consumers (each
    /// message to every consumer before the next message), depth first.
    pub fn emit(
        &mut self,
        store: &Store,
        epoch: Epoch,
        from: NodeId,
        msgs: Vec<Message>,
    ) -> Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let (consumers, remotes) = match self.nodes.get(&from) {
            Some(n) => (n.consumers.clone(), n.remotes.clone()),
            None => return Ok(()),
        };
        let mut gone = Vec::new();
        let last_barrier = msgs
            .iter()
            .rev()
            .find_map(|m| m.as_barrier().map(|b| b.epoch));
        for m in msgs {
            for &(c, port) in &consumers {
                self.deliver(store, epoch, c, port, m.clone())?;
            }
            for r in &remotes {
                let msg = FragmentMsg::Input {
                    port: r.port,
                    entry: r.entry,
                    msg: m.clone(),
                };
                // A fragment that stopped (its view was dropped) is gone.
                if r.tx.send(msg).is_err() && !gone.contains(&r.entry) {
                    gone.push(r.entry);
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&from) {
            if let Some(e) = last_barrier {
                n.remotes.iter_mut().for_each(|r| r.sent = Some(e));
            }
            n.remotes.retain(|r| !gone.contains(&r.entry));
        }
        Ok(())
    }

    /// Sends barrier `b` to every other fragment this graph feeds that has
    /// not had it (a failed graph, whose operators no longer run).
    pub fn forward_barrier(&mut self, b: &Barrier) {
        for n in self.nodes.values_mut() {
            for r in n.remotes.iter_mut().filter(|r| r.sent != Some(b.epoch)) {
                let _ = r.tx.send(FragmentMsg::Input {
                    port: r.port,
                    entry: r.entry,
                    msg: Message::Barrier(b.clone()),
                });
                r.sent = Some(b.epoch);
            }
        }
    }

    /// [`Graph::emit`] of one change batch (nothing when it is empty).
    pub fn emit_chunk(
        &mut self,
        store: &Store,
        epoch: Epoch,
        from: NodeId,
        batch: ChangeBatch,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.emit(store, epoch, from, vec![Message::Chunk(batch)])
    }

    /// Ends the epoch of `barrier` in the whole graph: injects it at every
    /// entry point, in id order, checks that it reached every node, and
    /// hands over what the epoch wrote.
    pub fn barrier(&mut self, store: &Store, barrier: Barrier) -> Result<WriteSet> {
        let entries: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.inputs == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in entries {
            self.fire_barrier(store, id, barrier.clone())?;
        }
        if let Some((id, _)) = self.nodes.iter().find(|(_, n)| !n.aligner.is_idle()) {
            return Err(RuntimeError::Internal(format!(
                "the barrier of epoch {} did not reach every input of node {id}",
                barrier.epoch.0
            )));
        }
        Ok(std::mem::take(&mut self.writes))
    }

    /// Hands `msg` to input `port` of node `id`, and runs what the node's
    /// aligner lets through.
    fn deliver(
        &mut self,
        store: &Store,
        epoch: Epoch,
        id: NodeId,
        port: usize,
        msg: Message,
    ) -> Result<()> {
        let mut ready = Vec::new();
        self.node(id)?.aligner.push(port, msg, &mut ready)?;
        for (port, msg) in ready {
            let Graph { nodes, writes } = self;
            let op = &mut nodes
                .get_mut(&id)
                .ok_or_else(|| RuntimeError::Internal(format!("missing node {id}")))?
                .op;
            let mut ctx = EpochCtx {
                store,
                writes,
                epoch,
            };
            match msg {
                Message::Chunk(batch) => {
                    let outs = op.process(port, batch, &mut ctx)?;
                    self.emit(store, epoch, id, chunks(outs))?;
                }
                Message::Watermark(wm) => {
                    let (batches, wms) = op.on_watermark(port, wm, &mut ctx)?;
                    let mut out = chunks(batches);
                    out.extend(wms.into_iter().map(Message::Watermark));
                    self.emit(store, epoch, id, out)?;
                }
                Message::Barrier(b) => self.fire_barrier(store, id, b)?,
            }
        }
        Ok(())
    }

    /// Node `id` has its barrier on every input: it ends its epoch, and its
    /// output, its watermarks and the barrier go downstream.
    fn fire_barrier(&mut self, store: &Store, id: NodeId, b: Barrier) -> Result<()> {
        let Graph { nodes, writes } = self;
        let op = &mut nodes
            .get_mut(&id)
            .ok_or_else(|| RuntimeError::Internal(format!("missing node {id}")))?
            .op;
        let mut ctx = EpochCtx {
            store,
            writes,
            epoch: b.epoch,
        };
        let mut out = chunks(op.on_barrier(&mut ctx)?);
        out.extend(op.take_watermarks().into_iter().map(Message::Watermark));
        let epoch = b.epoch;
        out.push(Message::Barrier(b));
        self.emit(store, epoch, id, out)
    }

    fn node(&mut self, id: NodeId) -> Result<&mut Node> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| RuntimeError::Internal(format!("missing node {id}")))
    }
}

/// The non-empty batches of `outs` as messages.
fn chunks(outs: Vec<ChangeBatch>) -> Vec<Message> {
    outs.into_iter()
        .filter(|b| !b.is_empty())
        .map(Message::Chunk)
        .collect()
}
