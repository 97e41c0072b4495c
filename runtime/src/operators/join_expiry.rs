//! Interval-join state expiry: which stored rows of a join side can no
//! longer match once the other side's watermark has passed them, and when
//! to scan the side to delete them.
//!
//! A row of a bound's side is dead once its bound column is below the cut
//! (the other side's watermark less the bound's offset). Rows that die
//! within the epoch they arrive in are dropped before they are written.
//! Committed rows are deleted by a scan of the side, done only when at
//! least as many of its rows are surely dead as are live: each side keeps a
//! ledger of its rows in runs (the survivors of the last scan, then each
//! epoch's writes split by bound value into up to eight runs), each with
//! its largest bound value, so the rows of every run the cut has passed
//! are known dead without reading state. Scans so cost a constant per row
//! written, and dead rows stay about as many as live ones (a run counts as
//! dead only once its largest value is below the cut, so a cut through an
//! epoch's range leaves up to an eighth of its rows uncounted).

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use freshet_storage::codec::decode_datum;

use super::EpochCtx;
use crate::error::Result;
use crate::state::MultisetTable;
use crate::time::StateBound;

/// Runs a ledger keeps before merging neighbours.
const MAX_RUNS: usize = 64;

/// Runs one epoch's rows are split into (by bound value), so that a cut
/// through the epoch's range still counts most of the rows below it.
const RUNS_PER_EPOCH: usize = 8;

/// Expiry of both sides' rows of one interval join.
pub struct Expiry {
    bounds: Vec<StateBound>,
    /// Per side and column: the latest watermark.
    watermarks: [HashMap<usize, ScalarValue>; 2],
    /// Per bound: the cut of its last scan.
    cleaned: Vec<Option<ScalarValue>>,
    /// Per bound: its side's rows, in runs.
    ledgers: Vec<Ledger>,
    /// Per bound: the runs this epoch writes, until the scan (which reads
    /// committed state only) is done.
    writing: Vec<Vec<(Option<ScalarValue>, usize)>>,
}

/// A side's rows as runs of (largest bound value, rows), plus rows whose
/// bound value is NULL (which never expire). `known` is false until the
/// first scan, as after a restart: the committed rows are then unaccounted.
#[derive(Debug, Default)]
struct Ledger {
    known: bool,
    runs: Vec<(ScalarValue, usize)>,
    total: usize,
}

impl Ledger {
    fn push(&mut self, max: Option<ScalarValue>, rows: usize) {
        self.total += rows;
        let Some(max) = max else { return };
        self.runs.push((max, rows));
        if self.runs.len() > MAX_RUNS {
            let runs = std::mem::take(&mut self.runs);
            let mut it = runs.into_iter();
            while let Some((m, n)) = it.next() {
                match it.next() {
                    Some((m2, n2)) => self.runs.push((if m2 > m { m2 } else { m }, n + n2)),
                    None => self.runs.push((m, n)),
                }
            }
        }
    }

    /// Rows surely below `cut`.
    fn dead(&self, cut: &ScalarValue) -> usize {
        self.runs
            .iter()
            .filter(|(m, _)| m < cut)
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether a scan at `cut` pays: its dead rows are at least its live ones.
    fn due(&self, cut: &ScalarValue) -> bool {
        if !self.known {
            return true;
        }
        let dead = self.dead(cut);
        dead > 0 && 2 * dead >= self.total
    }
}

/// The bound column of the encoded row `row` (the row after its join key)
/// whose column types are `types`.
fn bound_value(types: &[DataType], col: usize, row: &[u8]) -> freshet_storage::Result<ScalarValue> {
    let mut buf = row;
    let mut v = ScalarValue::Null;
    for t in &types[..=col] {
        v = decode_datum(&mut buf, t)?;
    }
    Ok(v)
}

/// The larger of `cur` and `v`, NULL counting as absent.
fn keep_max(cur: &mut Option<ScalarValue>, v: ScalarValue) {
    if !v.is_null() && cur.as_ref().is_none_or(|c| &v > c) {
        *cur = Some(v);
    }
}

impl Expiry {
    pub fn new(bounds: Vec<StateBound>) -> Expiry {
        let n = bounds.len();
        Expiry {
            bounds,
            watermarks: [HashMap::new(), HashMap::new()],
            cleaned: vec![None; n],
            ledgers: (0..n).map(|_| Ledger::default()).collect(),
            writing: vec![Vec::new(); n],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Records a watermark on column `col` of `side`.
    pub fn on_watermark(&mut self, side: usize, col: usize, value: ScalarValue) {
        let mut cur = self.watermarks[side].get(&col).cloned();
        if crate::time::advance(&mut cur, value) {
            if let Some(v) = cur {
                self.watermarks[side].insert(col, v);
            }
        }
    }

    /// The cut of bound `b`: rows of its side whose column is below it can
    /// no longer match (`None` while the other side has no watermark).
    fn cut(&self, b: &StateBound, types: &[Vec<DataType>; 2]) -> Result<Option<ScalarValue>> {
        let Some(wm) = self.watermarks[1 - b.side].get(&b.other_col) else {
            return Ok(None);
        };
        let Some(cut) = crate::time::shift(wm, -b.offset_ns) else {
            return Ok(None);
        };
        Ok(Some(cut.cast_to(&types[b.side][b.col])?))
    }

    /// Before this epoch's changes are written: drops those to rows that
    /// can no longer match (in an interval join over time-ordered input,
    /// most rows die within an epoch or two of arriving), and notes the run
    /// the rest make.
    pub fn before_flush(
        &mut self,
        tables: &mut [MultisetTable; 2],
        types: &[Vec<DataType>; 2],
    ) -> Result<()> {
        for (i, b) in self.bounds.clone().iter().enumerate() {
            let cut = self.cut(b, types)?;
            let (mut dead, mut live, mut nulls) = (Vec::new(), Vec::new(), 0usize);
            for (group, rest) in tables[b.side].pending_rows() {
                let v = bound_value(&types[b.side], b.col, rest)?;
                if v.is_null() {
                    nulls += 1;
                } else if cut.as_ref().is_some_and(|c| &v < c) {
                    dead.push((group.to_vec(), rest.to_vec()));
                } else {
                    live.push(v);
                }
            }
            for (group, rest) in dead {
                tables[b.side].discard_pending(&group, &rest);
            }
            self.writing[i] = epoch_runs(live, nulls);
        }
        Ok(())
    }

    /// After this epoch's changes are written: deletes the committed rows
    /// of each side whose ledger says a scan pays.
    pub fn after_flush(
        &mut self,
        tables: &mut [MultisetTable; 2],
        types: &[Vec<DataType>; 2],
        key_types: &[Vec<DataType>; 2],
        ctx: &mut EpochCtx<'_>,
    ) -> Result<()> {
        for (i, b) in self.bounds.clone().iter().enumerate() {
            if let Some(cut) = self.cut(b, types)? {
                let mut cur = self.cleaned[i].clone();
                if self.ledgers[i].due(&cut) && crate::time::advance(&mut cur, cut.clone()) {
                    self.cleaned[i] = cur;
                    self.ledgers[i] = scan(b, &cut, &mut tables[b.side], types, key_types, ctx)?;
                }
            }
            for (max, rows) in std::mem::take(&mut self.writing[i]) {
                self.ledgers[i].push(max, rows);
            }
        }
        Ok(())
    }
}

/// The runs of one epoch's rows: their bound values `live` split by value
/// into up to [`RUNS_PER_EPOCH`] runs of about equal size, each with its
/// largest value, plus the `nulls` rows that never expire.
fn epoch_runs(mut live: Vec<ScalarValue>, nulls: usize) -> Vec<(Option<ScalarValue>, usize)> {
    let mut runs = Vec::new();
    if nulls > 0 {
        runs.push((None, nulls));
    }
    if live.is_empty() {
        return runs;
    }
    live.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let size = live.len().div_ceil(RUNS_PER_EPOCH);
    for piece in live.chunks(size) {
        if let Some(max) = piece.last() {
            runs.push((Some(max.clone()), piece.len()));
        }
    }
    runs
}

/// Deletes the committed rows of `b`'s side below `cut`, returning the
/// ledger of the rows left.
fn scan(
    b: &StateBound,
    cut: &ScalarValue,
    table: &mut MultisetTable,
    types: &[Vec<DataType>; 2],
    key_types: &[Vec<DataType>; 2],
    ctx: &mut EpochCtx<'_>,
) -> Result<Ledger> {
    let (mut dead, mut max, mut live) = (Vec::new(), None, 0usize);
    // Entries are `group | rest`: the join key, then the row.
    table.scan_all_while(ctx.store, |body, _, _| {
        let mut buf = body;
        for t in &key_types[b.side] {
            decode_datum(&mut buf, t)?;
        }
        let (group, rest) = body.split_at(body.len() - buf.len());
        let v = bound_value(&types[b.side], b.col, rest)?;
        if !v.is_null() && &v < cut {
            dead.push((group.to_vec(), rest.to_vec()));
        } else {
            live += 1;
            keep_max(&mut max, v);
        }
        Ok(true)
    })?;
    for (group, rest) in dead {
        table.remove(ctx.writes, &group, &rest);
    }
    let mut ledger = Ledger {
        known: true,
        ..Ledger::default()
    };
    ledger.push(max, live);
    Ok(ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> ScalarValue {
        ScalarValue::Int64(Some(s))
    }

    #[test]
    fn a_scan_is_due_once_dead_rows_match_live_ones() {
        let mut l = Ledger {
            known: true,
            ..Ledger::default()
        };
        l.push(Some(ts(10)), 100);
        l.push(Some(ts(20)), 50);
        l.push(None, 10);
        assert_eq!(l.dead(&ts(15)), 100);
        assert!(l.due(&ts(15)), "100 dead of 160");
        assert!(!l.due(&ts(10)), "no run is wholly below 10");
        l.push(Some(ts(30)), 200);
        assert!(!l.due(&ts(15)), "100 dead of 360");
        assert!(!l.due(&ts(25)), "150 dead of 360");
        assert!(l.due(&ts(31)), "350 dead of 360");
        assert!(Ledger::default().due(&ts(0)), "unknown state is scanned");
    }

    #[test]
    fn an_epoch_counts_as_runs_so_a_cut_through_it_counts_its_dead_rows() {
        let runs = epoch_runs((0..1000).rev().map(ts).collect(), 3);
        assert_eq!(runs.len(), 1 + RUNS_PER_EPOCH);
        let mut l = Ledger {
            known: true,
            ..Ledger::default()
        };
        for (m, n) in runs {
            l.push(m, n);
        }
        assert_eq!(l.total, 1003);
        assert_eq!(l.dead(&ts(900)), 875, "7 of 8 runs lie below 900");
        assert!(l.due(&ts(900)));
        assert!(epoch_runs(Vec::new(), 0).is_empty());
    }

    #[test]
    fn runs_merge_keeping_the_largest_value_and_every_row() {
        let mut l = Ledger::default();
        for s in 0..1000 {
            l.push(Some(ts(s)), 1);
        }
        assert!(l.runs.len() <= MAX_RUNS + 1);
        assert_eq!(l.total, 1000);
        assert_eq!(l.runs.iter().map(|(_, n)| n).sum::<usize>(), 1000);
        assert_eq!(l.dead(&ts(1000)), 1000);
        assert!(l.dead(&ts(500)) <= 500, "a lower bound");
    }
}
