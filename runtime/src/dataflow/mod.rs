//! The dataflow graph: operator nodes joined by edges, and the one path by
//! which [`Message`]s (chunks, watermarks, barriers) travel along them.
//!
//! A node has a number of input ports and a list of consumers (node, port).
//! Nodes without input ports are the graph's entry points (table, source
//! and constant scans): the engine emits their data and injects barriers
//! there. Everything else reaches a node only along an edge, through the
//! node's [`BarrierAligner`]: the operator sees a barrier once every input
//! has delivered it, and nothing an input sent after its barrier before
//! that. When a node's barrier is released it runs `on_barrier`, and its
//! output, then its watermarks, then the barrier go on downstream.
//!
//! Delivery is depth first on the calling thread: when [`Graph::emit`]
//! returns, everything the messages caused downstream has happened.

mod align;
mod message;

pub use align::{Alignable, BarrierAligner};
pub use message::{Barrier, Message};

use std::collections::BTreeMap;

use crate::change::ChangeBatch;
use crate::error::{Result, RuntimeError};
use crate::operators::{EpochCtx, Operator};

/// Identifies a node of the graph (unique for the engine's lifetime).
pub type NodeId = u64;

/// One operator and where its output goes.
pub struct Node {
    pub op: Box<dyn Operator>,
    /// Where this node's output goes: (node, input port).
    pub consumers: Vec<(NodeId, usize)>,
    /// Input ports (0 for an entry point).
    inputs: usize,
    aligner: BarrierAligner<Message>,
}

/// The running operators of every view.
#[derive(Default)]
pub struct Graph {
    nodes: BTreeMap<NodeId, Node>,
}

impl Graph {
    /// Adds node `id` running `op`, with `inputs` input ports.
    pub fn insert(&mut self, id: NodeId, op: Box<dyn Operator>, inputs: usize) {
        self.nodes.insert(
            id,
            Node {
                op,
                consumers: Vec::new(),
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

    /// Removes the nodes `ids` and every edge into them.
    pub fn remove(&mut self, ids: &[NodeId]) {
        for id in ids {
            self.nodes.remove(id);
        }
        for n in self.nodes.values_mut() {
            n.consumers.retain(|(c, _)| !ids.contains(c));
        }
    }

    pub fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(&id)
    }

    /// Every node, in id order.
    pub fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.nodes.values_mut()
    }

    /// Delivers `msgs`, emitted by node `from`, to its consumers (each
    /// message to every consumer before the next message), depth first.
    pub fn emit(&mut self, ctx: &mut EpochCtx<'_>, from: NodeId, msgs: Vec<Message>) -> Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        let consumers = match self.nodes.get(&from) {
            Some(n) => n.consumers.clone(),
            None => return Ok(()),
        };
        for m in msgs {
            for &(c, port) in &consumers {
                self.deliver(ctx, c, port, m.clone())?;
            }
        }
        Ok(())
    }

    /// [`Graph::emit`] of one change batch (nothing when it is empty).
    pub fn emit_chunk(
        &mut self,
        ctx: &mut EpochCtx<'_>,
        from: NodeId,
        batch: &ChangeBatch,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.emit(ctx, from, vec![Message::Chunk(batch.clone())])
    }

    /// Ends the epoch of `barrier` everywhere: injects it at every entry
    /// point, in id order, and checks that it reached every node.
    pub fn barrier(&mut self, ctx: &mut EpochCtx<'_>, barrier: Barrier) -> Result<()> {
        let entries: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.inputs == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in entries {
            self.fire_barrier(ctx, id, barrier.clone())?;
        }
        if let Some((id, _)) = self.nodes.iter().find(|(_, n)| !n.aligner.is_idle()) {
            return Err(RuntimeError::Internal(format!(
                "the barrier of epoch {} did not reach every input of node {id}",
                barrier.epoch.0
            )));
        }
        Ok(())
    }

    /// Hands `msg` to input `port` of node `id`, and runs what the node's
    /// aligner lets through.
    fn deliver(&mut self, ctx: &mut EpochCtx<'_>, id: NodeId, port: usize, msg: Message) -> Result<()> {
        let mut ready = Vec::new();
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| RuntimeError::Internal(format!("missing node {id}")))?
            .aligner
            .push(port, msg, &mut ready)?;
        for (port, msg) in ready {
            match msg {
                Message::Chunk(batch) => {
                    let outs = self.node(id)?.op.process(port, batch, ctx)?;
                    self.emit(ctx, id, chunks(outs))?;
                }
                Message::Watermark(wm) => {
                    let (batches, wms) = self.node(id)?.op.on_watermark(port, wm, ctx)?;
                    let mut out = chunks(batches);
                    out.extend(wms.into_iter().map(Message::Watermark));
                    self.emit(ctx, id, out)?;
                }
                Message::Barrier(b) => self.fire_barrier(ctx, id, b)?,
            }
        }
        Ok(())
    }

    /// Node `id` has its barrier on every input: it ends its epoch, and its
    /// output, its watermarks and the barrier go downstream.
    fn fire_barrier(&mut self, ctx: &mut EpochCtx<'_>, id: NodeId, b: Barrier) -> Result<()> {
        let node = self.node(id)?;
        let mut out = chunks(node.op.on_barrier(ctx)?);
        out.extend(node.op.take_watermarks().into_iter().map(Message::Watermark));
        out.push(Message::Barrier(b));
        self.emit(ctx, id, out)
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
