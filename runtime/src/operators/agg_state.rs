//! An aggregate's per-group state: the accumulators of each call, how rows
//! update them and how they become output values, and their encoding in
//! the aggregate's state table.
//!
//! Per aggregate call, state that supports both adding and removing rows:
//! - `count(*)`, `count(x)`: a signed count;
//! - `sum`, `avg`: an exact `i128` sum for integers and decimals (or an `f64`
//!   for floats) plus the count of non-NULL inputs (all-NULL sums are NULL);
//! - `min`, `max`, `DISTINCT` and value aggregates (`array_agg`, ...): a
//!   multiset of values ordered by their memcomparable encoding, so deleting
//!   the current minimum finds the next one.
//!
//! Encoding ([`GroupCodec`], compact): `STATE_VERSION | rows | per call:
//! count, or sum int, float, n, or multiset length then (value, count)
//! pairs`, numbers as varints. Data dirs written before it hold version 1,
//! fixed-width big-endian fields, which is still read.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use freshet_storage::codec::{decode_datum, FORMAT_VERSION};
use freshet_storage::StorageError;

use super::aggregate::Input;
use crate::error::{Result, RuntimeError};
use crate::numeric::exact_avg;
use crate::plan::{AggCall, AggKind};
use crate::state::compact::{self, Reader};
use crate::state::ValueCodec;

/// How a sum or average accumulates its input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NumKind {
    Int,
    Float,
    Decimal,
}

pub(super) fn num_kind(t: &DataType) -> NumKind {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => NumKind::Float,
        DataType::Decimal128(_, _) => NumKind::Decimal,
        _ => NumKind::Int,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum AggState {
    Count(i64),
    Sum { int: i128, float: f64, n: i64 },
    MinMax(MultiSet),
}

/// A multiset of encoded values, ordered by their memcomparable bytes.
///
/// Most groups hold few distinct values, so it starts as a sorted `Vec`
/// (one small allocation) and turns into a `BTreeMap` past
/// [`MultiSet::SMALL`] entries, keeping inserts logarithmic for big groups.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum MultiSet {
    Small(Vec<(Vec<u8>, i64)>),
    Large(BTreeMap<Vec<u8>, i64>),
}

impl Default for MultiSet {
    fn default() -> Self {
        MultiSet::Small(Vec::new())
    }
}

impl MultiSet {
    const SMALL: usize = 32;

    /// Adds `w` copies (negative: removes), dropping values whose count is 0.
    pub(super) fn add(&mut self, v: Vec<u8>, w: i64) {
        match self {
            MultiSet::Small(vec) => match vec.binary_search_by(|(k, _)| k.as_slice().cmp(&v)) {
                Ok(i) => {
                    vec[i].1 += w;
                    if vec[i].1 == 0 {
                        vec.remove(i);
                    }
                }
                Err(i) => {
                    vec.insert(i, (v, w));
                    if vec.len() > Self::SMALL {
                        *self = MultiSet::Large(std::mem::take(vec).into_iter().collect());
                    }
                }
            },
            MultiSet::Large(m) => match m.get_mut(&v) {
                Some(c) => {
                    *c += w;
                    if *c == 0 {
                        m.remove(&v);
                    }
                }
                None => {
                    m.insert(v, w);
                }
            },
        }
    }

    /// Keeps only the smallest (`min`) or largest value: all a min or max
    /// over append-only input needs, since no value is ever removed.
    pub(super) fn keep_extreme(&mut self, min: bool) {
        if self.len() <= 1 {
            return;
        }
        let kept = match std::mem::take(self) {
            MultiSet::Small(mut v) => {
                if min {
                    v.swap_remove(0)
                } else {
                    v.pop().unwrap_or_default()
                }
            }
            MultiSet::Large(mut m) => {
                let e = if min { m.pop_first() } else { m.pop_last() };
                e.unwrap_or_default()
            }
        };
        *self = MultiSet::Small(vec![kept]);
    }

    pub(super) fn first(&self) -> Option<&Vec<u8>> {
        match self {
            MultiSet::Small(v) => v.first().map(|(k, _)| k),
            MultiSet::Large(m) => m.keys().next(),
        }
    }

    pub(super) fn last(&self) -> Option<&Vec<u8>> {
        match self {
            MultiSet::Small(v) => v.last().map(|(k, _)| k),
            MultiSet::Large(m) => m.keys().next_back(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            MultiSet::Small(v) => v.len(),
            MultiSet::Large(m) => m.len(),
        }
    }

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (&Vec<u8>, &i64)> + '_> {
        match self {
            MultiSet::Small(v) => Box::new(v.iter().map(|(k, c)| (k, c))),
            MultiSet::Large(m) => Box::new(m.iter()),
        }
    }
}

/// One group's state. The group's key values are not kept: they are decoded
/// from its (memcomparable) key when a row is emitted.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Group {
    pub rows: i64,
    pub states: Vec<AggState>,
}

/// The first byte of a group's compact encoding.
const STATE_VERSION: u8 = 2;

/// Encodes and decodes the groups of one aggregate (whose calls fix the
/// shape of every group's state), and turns a group into its output values.
pub(super) struct GroupCodec {
    pub aggs: Vec<AggCall>,
    /// A global aggregate: its one group always has a row.
    pub global: bool,
    pub empty: Vec<AggState>,
}

impl GroupCodec {
    pub fn new(aggs: Vec<AggCall>, group_types: Vec<DataType>) -> Self {
        GroupCodec {
            empty: empty_states(&aggs),
            global: group_types.is_empty(),
            aggs,
        }
    }

    /// The aggregate values group `g` shows, one per call (none for a
    /// group without rows). Its key columns are the group key itself.
    pub fn values(&self, g: &Group) -> Result<Option<Vec<ScalarValue>>> {
        if g.rows <= 0 && !self.global {
            return Ok(None);
        }
        self.aggs
            .iter()
            .zip(&g.states)
            .map(|(a, s)| finish(a, s, g.rows))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

impl ValueCodec for GroupCodec {
    type Value = Group;
    /// The values the group showed when the epoch began.
    type Snapshot = Option<Vec<ScalarValue>>;

    fn snapshot(&self, _key: &[u8], g: &Group) -> Result<Self::Snapshot> {
        self.values(g)
    }

    fn empty(&self) -> Group {
        Group {
            rows: 0,
            states: self.empty.clone(),
        }
    }

    fn encode(&self, g: &Group, v: &mut Vec<u8>) -> Result<()> {
        v.push(STATE_VERSION);
        compact::put_i64(v, g.rows);
        for s in &g.states {
            match s {
                AggState::Count(c) => compact::put_i64(v, *c),
                AggState::Sum { int, float, n } => {
                    compact::put_i128(v, *int);
                    compact::put_f64(v, *float);
                    compact::put_i64(v, *n);
                }
                AggState::MinMax(m) => {
                    compact::put_u64(v, m.len() as u64);
                    for (val, c) in m.iter() {
                        compact::put_bytes(v, val);
                        compact::put_i64(v, *c);
                    }
                }
            }
        }
        Ok(())
    }

    fn decode(&self, v: &[u8]) -> Result<Group> {
        let mut r = Reader::new(v);
        match r.u8()? {
            STATE_VERSION => {}
            FORMAT_VERSION => return self.decode_v1(r),
            _ => return Err(corrupt("unknown aggregate state version")),
        }
        let rows = r.i64()?;
        let mut states = self.empty.clone();
        for s in states.iter_mut() {
            match s {
                AggState::Count(c) => *c = r.i64()?,
                AggState::Sum { int, float, n } => {
                    *int = r.i128()?;
                    *float = r.f64()?;
                    *n = r.i64()?;
                }
                AggState::MinMax(m) => {
                    let len = r.u64()?;
                    for _ in 0..len {
                        let val = r.bytes()?.to_vec();
                        m.add(val, r.i64()?);
                    }
                }
            }
        }
        if !r.is_empty() {
            return Err(corrupt("trailing bytes in aggregate state"));
        }
        Ok(Group { rows, states })
    }

    fn heap_bytes(&self, g: &Group) -> usize {
        let mut b = g.states.capacity() * std::mem::size_of::<AggState>();
        for s in &g.states {
            if let AggState::MinMax(m) = s {
                b += match m {
                    MultiSet::Small(v) => {
                        v.capacity() * 32 + v.iter().map(|(k, _)| k.len() + 16).sum::<usize>()
                    }
                    // Estimated from one value: summing a big group's
                    // values at every barrier would cost as much as the
                    // group's changes.
                    MultiSet::Large(m) => m.len() * (m.keys().next().map_or(0, |k| k.len()) + 80),
                };
            }
        }
        b
    }
}

impl GroupCodec {
    /// Version 1: fixed-width big-endian fields, `u32` lengths.
    fn decode_v1(&self, mut r: Reader<'_>) -> Result<Group> {
        fn int<const N: usize>(r: &mut Reader<'_>) -> Result<[u8; N]> {
            let mut a = [0u8; N];
            a.copy_from_slice(r.take(N)?);
            Ok(a)
        }
        let rows = i64::from_be_bytes(int::<8>(&mut r)?);
        let mut states = self.empty.clone();
        for s in states.iter_mut() {
            match s {
                AggState::Count(c) => *c = i64::from_be_bytes(int::<8>(&mut r)?),
                AggState::Sum { int: i, float, n } => {
                    *i = i128::from_be_bytes(int::<16>(&mut r)?);
                    *float = f64::from_bits(u64::from_be_bytes(int::<8>(&mut r)?));
                    *n = i64::from_be_bytes(int::<8>(&mut r)?);
                }
                AggState::MinMax(m) => {
                    let len = u32::from_be_bytes(int::<4>(&mut r)?);
                    for _ in 0..len {
                        let l = u32::from_be_bytes(int::<4>(&mut r)?) as usize;
                        let val = r.take(l)?.to_vec();
                        let c = i64::from_be_bytes(int::<8>(&mut r)?);
                        m.add(val, c);
                    }
                }
            }
        }
        Ok(Group { rows, states })
    }
}

fn corrupt(what: &str) -> RuntimeError {
    RuntimeError::Storage(StorageError::Corrupt(what.into()))
}

/// The empty state of each call.
pub(super) fn empty_states(aggs: &[AggCall]) -> Vec<AggState> {
    aggs.iter()
        .map(|a| match a.kind {
            _ if a.distinct => AggState::MinMax(MultiSet::default()),
            AggKind::CountStar | AggKind::Count => AggState::Count(0),
            AggKind::Sum | AggKind::Avg => AggState::Sum {
                int: 0,
                float: 0.0,
                n: 0,
            },
            _ => AggState::MinMax(MultiSet::default()),
        })
        .collect()
}

pub(super) fn update(state: &mut AggState, input: &Input, row: usize, w: i64) -> Result<()> {
    match (state, input) {
        (AggState::Count(c), Input::None) => *c += w,
        (AggState::Count(c), Input::Any(a)) => {
            if a.is_valid(row) {
                *c += w
            }
        }
        (AggState::Sum { int, n, .. }, Input::Int(a)) => {
            if a.is_valid(row) {
                // Wrapping: exact whenever the true sum fits (a retraction
                // may bring an overflowed sum back into range).
                *int = int.wrapping_add(
                    i128::from(a.as_primitive::<Int64Type>().value(row))
                        .wrapping_mul(i128::from(w)),
                );
                *n += w;
            }
        }
        (AggState::Sum { int, n, .. }, Input::Decimal(a)) => {
            if a.is_valid(row) {
                *int = int.wrapping_add(
                    a.as_primitive::<Decimal128Type>()
                        .value(row)
                        .wrapping_mul(i128::from(w)),
                );
                *n += w;
            }
        }
        (AggState::Sum { float, n, .. }, Input::Float(a)) => {
            if a.is_valid(row) {
                *float += a.as_primitive::<Float64Type>().value(row) * w as f64;
                *n += w;
                if *n == 0 {
                    // Reset accumulated rounding error when the sum is empty.
                    *float = 0.0;
                }
            }
        }
        (AggState::MinMax(m), Input::Elements(e)) => {
            if let Some(Some(k)) = e.get(row) {
                m.add(k.clone(), w);
            }
        }
        _ => {
            return Err(RuntimeError::Internal(
                "aggregate input does not match its state".into(),
            ))
        }
    }
    Ok(())
}

/// `count`, `sum` or `avg` over the distinct values of a group.
fn distinct_value(a: &AggCall, m: &MultiSet) -> Result<ScalarValue> {
    let n = m.len() as i64;
    if a.kind == AggKind::Count {
        return Ok(ScalarValue::Int64(Some(n)));
    }
    if n == 0 {
        return Ok(ScalarValue::try_from(&a.output_type)?);
    }
    let mut int: i128 = 0;
    let mut float: f64 = 0.0;
    for (k, _) in m.iter() {
        match decode_datum(&mut k.as_slice(), &a.input_type)? {
            ScalarValue::Decimal128(Some(v), _, _) => int = int.wrapping_add(v),
            v if num_kind(&a.input_type) == NumKind::Float => {
                if let ScalarValue::Float64(Some(f)) = v.cast_to(&DataType::Float64)? {
                    float += f;
                }
            }
            v => {
                if let ScalarValue::Int64(Some(i)) = v.cast_to(&DataType::Int64)? {
                    int += i128::from(i);
                }
            }
        }
    }
    let sum_state = AggState::Sum { int, float, n };
    let plain = AggCall {
        distinct: false,
        ..a.clone()
    };
    finish(&plain, &sum_state, n)
}

pub(super) fn finish(a: &AggCall, s: &AggState, rows: i64) -> Result<ScalarValue> {
    let out = &a.output_type;
    let v = match (a.kind, s) {
        (k, AggState::MinMax(m)) if super::agg_values::is_value_agg(k) => {
            super::agg_values::finish(a, m.iter())?
        }
        (AggKind::Count | AggKind::Sum | AggKind::Avg, AggState::MinMax(m)) if a.distinct => {
            distinct_value(a, m)?
        }
        (AggKind::CountStar, _) => ScalarValue::Int64(Some(rows)),
        (AggKind::Count, AggState::Count(c)) => ScalarValue::Int64(Some(*c)),
        (AggKind::Sum, AggState::Sum { int, float, n }) => {
            if *n == 0 {
                ScalarValue::try_from(out)?
            } else {
                match num_kind(&a.input_type) {
                    NumKind::Int => {
                        // Out of bigint range: NULL (and a warning), never a stopped view.
                        ScalarValue::Int64(i64::try_from(*int).ok().or_else(|| {
                            tracing::warn!(agg = %a.display, "sum out of bigint range; the view shows NULL");
                            None
                        }))
                    }
                    NumKind::Float => ScalarValue::Float64(Some(*float)),
                    NumKind::Decimal => match out {
                        DataType::Decimal128(p, s) => {
                            // Past 38 digits: NULL (and a warning), as above.
                            let fits = int.unsigned_abs() < 10u128.pow(u32::from(*p).min(38));
                            if !fits {
                                tracing::warn!(agg = %a.display, "numeric sum out of range; the view shows NULL");
                            }
                            ScalarValue::Decimal128(fits.then_some(*int), *p, *s)
                        }
                        _ => {
                            return Err(RuntimeError::Internal(
                                "sum of decimal is not decimal".into(),
                            ))
                        }
                    },
                }
            }
        }
        (AggKind::Avg, AggState::Sum { int, float, n }) => {
            if *n == 0 {
                ScalarValue::try_from(out)?
            } else {
                match (num_kind(&a.input_type), out) {
                    // PostgreSQL's numeric average: exact, rounded half
                    // away from zero at the output's scale.
                    (NumKind::Int, DataType::Decimal128(p, s2)) => {
                        ScalarValue::Decimal128(exact_avg(*int, *n, (*s2).max(0) as u32), *p, *s2)
                    }
                    (NumKind::Int, _) => ScalarValue::Float64(Some(*int as f64 / *n as f64)),
                    (NumKind::Float, _) => ScalarValue::Float64(Some(*float / *n as f64)),
                    (NumKind::Decimal, DataType::Decimal128(p, s2)) => {
                        let s1 = match &a.input_type {
                            DataType::Decimal128(_, s) => *s,
                            _ => 0,
                        };
                        ScalarValue::Decimal128(
                            exact_avg(*int, *n, (*s2 - s1).max(0) as u32),
                            *p,
                            *s2,
                        )
                    }
                    _ => {
                        return Err(RuntimeError::Internal(
                            "avg of decimal is not decimal".into(),
                        ))
                    }
                }
            }
        }
        (AggKind::Min, AggState::MinMax(m)) | (AggKind::Max, AggState::MinMax(m)) => {
            let entry = if a.kind == AggKind::Min {
                m.first()
            } else {
                m.last()
            };
            match entry {
                None => ScalarValue::try_from(out)?,
                Some(k) => decode_datum(&mut k.as_slice(), &a.input_type)?,
            }
        }
        _ => {
            return Err(RuntimeError::Internal(
                "aggregate state does not match its call".into(),
            ))
        }
    };
    if &v.data_type() != out {
        Ok(v.cast_to(out)?)
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_grows_and_shrinks() {
        let mut m = MultiSet::default();
        for i in (0..100u8).rev() {
            m.add(vec![i], 2);
        }
        assert!(matches!(m, MultiSet::Large(_)));
        assert_eq!(m.first(), Some(&vec![0]));
        assert_eq!(m.last(), Some(&vec![99]));
        m.add(vec![0], -2);
        m.add(vec![99], -1);
        assert_eq!(m.first(), Some(&vec![1]));
        assert_eq!(m.last(), Some(&vec![99]));
        assert_eq!(m.len(), 99);
        let mut s = MultiSet::default();
        s.add(vec![5], 1);
        s.add(vec![3], 1);
        s.add(vec![5], -1);
        assert_eq!(s, MultiSet::Small(vec![(vec![3], 1)]));
    }

    fn sample() -> (GroupCodec, Group) {
        let mut m = MultiSet::default();
        m.add(vec![1, 2, 3], 2);
        m.add(vec![9], 1);
        let states = vec![
            AggState::Count(-3),
            AggState::Sum {
                int: -(1i128 << 100),
                float: 2.5,
                n: 7,
            },
            AggState::MinMax(m),
        ];
        let mut codec = GroupCodec::new(Vec::new(), vec![DataType::Int64]);
        codec.empty = vec![
            AggState::Count(0),
            AggState::Sum {
                int: 0,
                float: 0.0,
                n: 0,
            },
            AggState::MinMax(MultiSet::default()),
        ];
        (codec, Group { rows: 12, states })
    }

    #[test]
    fn compact_encoding_round_trips() {
        let (codec, g) = sample();
        let mut v = Vec::new();
        codec.encode(&g, &mut v).unwrap();
        assert_eq!(codec.decode(&v).unwrap(), g);
        let mut small = Vec::new();
        codec.encode(&codec.empty(), &mut small).unwrap();
        assert_eq!(small.len(), 7, "an empty group is a few bytes");
        for cut in 0..v.len() {
            assert!(codec.decode(&v[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn version_1_states_still_decode() {
        let (codec, g) = sample();
        // The layout the first releases wrote.
        let mut v = vec![FORMAT_VERSION];
        v.extend_from_slice(&12i64.to_be_bytes());
        v.extend_from_slice(&(-3i64).to_be_bytes());
        v.extend_from_slice(&(-(1i128 << 100)).to_be_bytes());
        v.extend_from_slice(&2.5f64.to_bits().to_be_bytes());
        v.extend_from_slice(&7i64.to_be_bytes());
        v.extend_from_slice(&2u32.to_be_bytes());
        for (val, c) in [(vec![1u8, 2, 3], 2i64), (vec![9], 1)] {
            v.extend_from_slice(&(val.len() as u32).to_be_bytes());
            v.extend_from_slice(&val);
            v.extend_from_slice(&c.to_be_bytes());
        }
        assert_eq!(codec.decode(&v).unwrap(), g);
    }
}
