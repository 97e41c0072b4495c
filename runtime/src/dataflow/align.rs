//! Barrier alignment at operators with several inputs.
//!
//! An operator may see epoch n's barrier only after every input delivered
//! it, and must not see anything an input sent after its barrier until
//! then. [`BarrierAligner`] enforces this: once an input's barrier has
//! arrived, that input's later items are held until the last input's
//! barrier arrives; then the barrier is released once, followed by the held
//! items in each input's order (which may block again on a later barrier).
//! It is pure: no I/O, no operator, no clock, so it is tested exhaustively
//! over every interleaving of small inputs.

use std::collections::VecDeque;

use freshet_storage::Epoch;

use crate::error::{Result, RuntimeError};

/// An item the aligner can tell barriers in.
pub trait Alignable {
    /// The epoch this item ends, when it is a barrier.
    fn barrier_epoch(&self) -> Option<Epoch>;
}

impl Alignable for super::Message {
    fn barrier_epoch(&self) -> Option<Epoch> {
        self.as_barrier().map(|b| b.epoch)
    }
}

/// Aligns the barriers of `inputs` inputs (see the module docs).
#[derive(Debug)]
pub struct BarrierAligner<M> {
    /// Per input: its barrier for the epoch being aligned has arrived.
    blocked: Vec<bool>,
    /// How many inputs are blocked.
    arrived: usize,
    /// The epoch being aligned (while at least one input is blocked).
    epoch: Option<Epoch>,
    /// Per input: items that came after its barrier, in order.
    held: Vec<VecDeque<M>>,
}

impl<M: Alignable> BarrierAligner<M> {
    pub fn new(inputs: usize) -> Self {
        BarrierAligner {
            blocked: vec![false; inputs],
            arrived: 0,
            epoch: None,
            held: (0..inputs).map(|_| VecDeque::new()).collect(),
        }
    }

    /// Takes `item` from `input` and appends to `out`, as (input, item),
    /// what the operator may process now, in order. A released barrier
    /// carries the input whose barrier completed the alignment.
    pub fn push(&mut self, input: usize, item: M, out: &mut Vec<(usize, M)>) -> Result<()> {
        if input >= self.blocked.len() {
            return Err(RuntimeError::Internal(format!(
                "item on input {input} of an operator with {} inputs",
                self.blocked.len()
            )));
        }
        if self.blocked[input] {
            self.held[input].push_back(item);
            return Ok(());
        }
        let Some(epoch) = item.barrier_epoch() else {
            out.push((input, item));
            return Ok(());
        };
        match self.epoch {
            Some(e) if e != epoch => {
                return Err(RuntimeError::Internal(format!(
                    "barrier of epoch {} on input {input} while aligning epoch {}",
                    epoch.0, e.0
                )))
            }
            _ => self.epoch = Some(epoch),
        }
        self.blocked[input] = true;
        self.arrived += 1;
        if self.arrived < self.blocked.len() {
            return Ok(());
        }
        // Aligned: release the barrier, then what each input held back.
        out.push((input, item));
        self.epoch = None;
        self.arrived = 0;
        self.blocked.iter_mut().for_each(|b| *b = false);
        let held: Vec<VecDeque<M>> = self.held.iter_mut().map(std::mem::take).collect();
        for (i, q) in held.into_iter().enumerate() {
            for m in q {
                self.push(i, m, out)?;
            }
        }
        Ok(())
    }

    /// Whether no input is blocked and nothing is held.
    pub fn is_idle(&self) -> bool {
        self.arrived == 0 && self.held.iter().all(|q| q.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data `(input, seq)` or the barrier of an epoch.
    #[derive(Debug, Clone, PartialEq)]
    enum T {
        D(usize, usize),
        B(u64),
    }

    impl Alignable for T {
        fn barrier_epoch(&self) -> Option<Epoch> {
            match self {
                T::B(e) => Some(Epoch(*e)),
                T::D(..) => None,
            }
        }
    }

    /// Calls `f` with every interleaving of `streams` (each kept in order).
    fn interleavings(streams: &[Vec<T>], f: &mut impl FnMut(&[(usize, T)])) {
        fn go(
            streams: &[Vec<T>],
            pos: &mut Vec<usize>,
            acc: &mut Vec<(usize, T)>,
            f: &mut impl FnMut(&[(usize, T)]),
        ) {
            let mut any = false;
            for i in 0..streams.len() {
                if pos[i] < streams[i].len() {
                    any = true;
                    acc.push((i, streams[i][pos[i]].clone()));
                    pos[i] += 1;
                    go(streams, pos, acc, f);
                    pos[i] -= 1;
                    acc.pop();
                }
            }
            if !any {
                f(acc);
            }
        }
        go(streams, &mut vec![0; streams.len()], &mut Vec::new(), f);
    }

    /// Input `i`'s stream: data and barriers at the given spots.
    fn stream(i: usize, shape: &str) -> Vec<T> {
        let mut seq = 0;
        let mut epoch = 0;
        shape
            .chars()
            .map(|c| match c {
                'd' => {
                    seq += 1;
                    T::D(i, seq)
                }
                _ => {
                    epoch += 1;
                    T::B(epoch)
                }
            })
            .collect()
    }

    /// Checks the aligner on every interleaving of inputs of these shapes.
    fn check_all(shapes: &[&str]) -> usize {
        let streams: Vec<Vec<T>> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| stream(i, s))
            .collect();
        let epochs = shapes[0].matches('b').count() as u64;
        assert!(shapes
            .iter()
            .all(|s| s.matches('b').count() as u64 == epochs));
        // The epoch each data item belongs to: barriers before it, plus one.
        let epoch_of = |i: usize, seq: usize| -> u64 {
            let mut e = 1;
            for t in &streams[i] {
                match t {
                    T::B(_) => e += 1,
                    T::D(_, s) if *s == seq => return e,
                    _ => {}
                }
            }
            unreachable!()
        };
        let mut runs = 0;
        interleavings(&streams, &mut |order| {
            runs += 1;
            let mut a = BarrierAligner::new(streams.len());
            let mut out = Vec::new();
            for (i, t) in order {
                a.push(*i, t.clone(), &mut out).expect("well-formed input");
            }
            assert!(a.is_idle(), "everything released: {order:?}");
            // Barriers: each epoch once, in order.
            let barriers: Vec<u64> = out
                .iter()
                .filter_map(|(_, t)| t.barrier_epoch().map(|e| e.0))
                .collect();
            assert_eq!(barriers, (1..=epochs).collect::<Vec<_>>(), "{order:?}");
            // Data: every item once, each input in order, each in its epoch.
            let mut next_seq = vec![1; streams.len()];
            let mut epoch = 1;
            for (i, t) in &out {
                match t {
                    T::B(_) => epoch += 1,
                    T::D(di, s) => {
                        assert_eq!(i, di, "an item keeps its input");
                        assert_eq!(*s, next_seq[*di], "input {di} in order: {order:?}");
                        next_seq[*di] += 1;
                        assert_eq!(epoch, epoch_of(*di, *s), "{t:?} in its epoch: {order:?}");
                    }
                }
            }
            for (i, s) in streams.iter().enumerate() {
                let data = s.iter().filter(|t| matches!(t, T::D(..))).count();
                assert_eq!(next_seq[i], data + 1, "all of input {i}'s data");
            }
        });
        runs
    }

    #[test]
    fn two_inputs_every_interleaving() {
        assert_eq!(check_all(&["dbdbd", "bdbdd"]), 252);
        check_all(&["ddbb", "bbdd"]);
        check_all(&["dbdbdb", "dbdbdb"]);
    }

    #[test]
    fn three_inputs_every_interleaving() {
        check_all(&["dbd", "bdd", "ddb"]);
        check_all(&["dbdb", "bdbd", "bbdd"]);
    }

    #[test]
    fn one_input_passes_straight_through() {
        check_all(&["dbddbdb"]);
        let mut a = BarrierAligner::new(1);
        let mut out = Vec::new();
        a.push(0, T::B(1), &mut out).unwrap();
        assert_eq!(out, vec![(0, T::B(1))]);
    }

    #[test]
    fn mismatched_epochs_and_bad_inputs_are_errors() {
        let mut a = BarrierAligner::new(2);
        let mut out = Vec::new();
        a.push(0, T::B(1), &mut out).unwrap();
        assert!(a.push(1, T::B(2), &mut out).is_err());
        assert!(a.push(2, T::D(2, 1), &mut out).is_err());
        assert!(out.is_empty());
    }
}
