//! Key layout of everything Freshet stores.
//!
//! ```text
//! state / table / view row:  table_id (u32 BE) | vnode (u16 BE) | memcomparable(pk)
//! metadata:                  table_id 0        | name bytes
//! ```
//!
//! Table id 0 is reserved for metadata (committed epoch, catalog, counters).
//! The vnode is a stable hash of the encoded primary key into
//! [`VNODE_COUNT`] virtual partitions; it sits right after the table id so
//! state can later be split by vnode across cores and machines without
//! rewriting it. The hash (FNV-1a) is part of the on-disk format and must
//! never change.

/// Identifies one keyspace: a table, a view's rows, or an operator's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);

/// A checkpoint epoch. Epoch 0 means "nothing committed yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epoch(pub u64);

/// Number of virtual partitions every keyed state is hashed into.
pub const VNODE_COUNT: u16 = 256;

/// The keyspace reserved for metadata.
pub const META: TableId = TableId(0);

/// Stable hash of an encoded key into a vnode.
pub fn vnode_of(pk: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in pk {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(VNODE_COUNT)) as u16
}

/// The full storage key of `pk` in `table`.
pub fn row_key(table: TableId, pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + pk.len());
    k.extend_from_slice(&table.0.to_be_bytes());
    k.extend_from_slice(&vnode_of(pk).to_be_bytes());
    k.extend_from_slice(pk);
    k
}

/// A key placed by a *group* (e.g. a join key) rather than by the whole key:
/// `table | vnode(group) | group | rest`, so every entry of one group is
/// found by one prefix scan ([`group_prefix`]). `group` must be
/// self-delimiting (memcomparable) for the prefix to be exact.
pub fn grouped_key(table: TableId, group: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut k = group_prefix(table, group);
    k.extend_from_slice(rest);
    k
}

/// The prefix of every [`grouped_key`] of `group` in `table`.
pub fn group_prefix(table: TableId, group: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(6 + group.len());
    k.extend_from_slice(&table.0.to_be_bytes());
    k.extend_from_slice(&vnode_of(group).to_be_bytes());
    k.extend_from_slice(group);
    k
}

/// The prefix shared by every key of `table`.
pub fn table_prefix(table: TableId) -> Vec<u8> {
    table.0.to_be_bytes().to_vec()
}

/// Strips table id and vnode from a full key, returning the encoded pk.
pub fn pk_of(key: &[u8]) -> &[u8] {
    key.get(6..).unwrap_or(&[])
}

/// The key of a metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut k = META.0.to_be_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_table_vnode_pk() {
        let k = row_key(TableId(7), b"abc");
        assert_eq!(&k[..4], &7u32.to_be_bytes());
        assert_eq!(pk_of(&k), b"abc");
        assert!(vnode_of(b"abc") < VNODE_COUNT);
        // The hash is part of the format: pin one value.
        assert_eq!(vnode_of(b""), (0x811c_9dc5u32 % 256) as u16);
    }
}
