//! What deleting snapshots frees. The snapshots of one volume are incremental: each holds the
//! blocks written since the one before it and refers to the rest, so deleting one frees only the
//! blocks it wrote that no later snapshot still refers to. A block a snapshot wrote is referred
//! to by every later snapshot up to the first that writes that block again: it is freed when
//! the snapshot and every one of those go. Deleting one snapshot alone, that is the blocks it
//! wrote that its successor wrote again (all it wrote, for the last one).
//!
//! Where the lineage cannot be known (a copy carries an arbitrary volume id), the snapshot's
//! full size is the bound: what deleting it frees is at most that.

use std::collections::{BTreeMap, BTreeSet};

/// One snapshot of a volume, as the EBS direct APIs tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageSnapshot {
    pub snapshot_id: String,
    /// The indexes of the blocks it wrote: ListChangedBlocks from the snapshot before it, or
    /// ListSnapshotBlocks for the first of the volume.
    pub written: BTreeSet<u64>,
}

/// The bytes each deleted snapshot of `lineage` (ordered by StartTime, oldest first) frees when
/// all of `deleted` go. A freed block counts for the snapshot that wrote it, so the figures add
/// up to what the deletion frees in all.
pub fn freed_bytes(
    lineage: &[LineageSnapshot],
    deleted: &BTreeSet<&str>,
    block_bytes: u64,
) -> BTreeMap<String, u64> {
    let goes: Vec<bool> = lineage
        .iter()
        .map(|snapshot| deleted.contains(snapshot.snapshot_id.as_str()))
        .collect();
    let mut freed = BTreeMap::new();
    for (index, snapshot) in lineage.iter().enumerate() {
        if !goes[index] {
            continue;
        }
        let blocks = snapshot
            .written
            .iter()
            .filter(|&&block| {
                // Every later snapshot refers to this block until one writes it again.
                lineage[index + 1..]
                    .iter()
                    .zip(&goes[index + 1..])
                    .take_while(|(later, _)| !later.written.contains(&block))
                    .all(|(_, &later_goes)| later_goes)
            })
            .count() as u64;
        freed.insert(snapshot.snapshot_id.clone(), blocks * block_bytes);
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 512 * 1024;

    fn lineage(writes: &[(&str, &[u64])]) -> Vec<LineageSnapshot> {
        writes
            .iter()
            .map(|(id, blocks)| LineageSnapshot {
                snapshot_id: id.to_string(),
                written: blocks.iter().copied().collect(),
            })
            .collect()
    }

    /// A case: its name, the snapshots deleted, and the blocks each of them frees.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, u64)]);

    #[test]
    fn a_snapshot_frees_only_what_no_later_snapshot_refers_to() {
        // s1 writes blocks 0-3; s2 rewrites 1 and adds 4; s3 rewrites 1 and 2.
        let volume = lineage(&[("s1", &[0, 1, 2, 3]), ("s2", &[1, 4]), ("s3", &[1, 2])]);
        let cases: [Case; 7] = [
            // The first: its blocks 0, 2, 3 live on in s2; block 1 was written again by s2.
            ("first", &["s1"], &[("s1", 1)]),
            // The middle: block 1 s3 writes again; block 4 lives on in s3.
            ("middle", &["s2"], &[("s2", 1)]),
            // The last: nothing after it refers to anything.
            ("last", &["s3"], &[("s3", 2)]),
            // First and middle: s1's 1 and s2's 1 (rewritten), s1's 2 (s3 rewrote it and s2 goes).
            ("first and middle", &["s1", "s2"], &[("s1", 2), ("s2", 1)]),
            // The whole lineage: every block written.
            (
                "all",
                &["s1", "s2", "s3"],
                &[("s1", 4), ("s2", 2), ("s3", 2)],
            ),
            // First and last, middle kept: s2 still refers to s1's 0, 2, 3.
            ("first and last", &["s1", "s3"], &[("s1", 1), ("s3", 2)]),
            ("none", &[], &[]),
        ];
        for (case, deleted, wanted) in cases {
            let deleted: BTreeSet<&str> = deleted.iter().copied().collect();
            let wanted: BTreeMap<String, u64> = wanted
                .iter()
                .map(|(id, blocks)| (id.to_string(), blocks * BLOCK))
                .collect();
            assert_eq!(freed_bytes(&volume, &deleted, BLOCK), wanted, "{case}");
        }
    }

    #[test]
    fn the_only_snapshot_of_a_volume_frees_all_it_wrote() {
        let volume = lineage(&[("only", &[0, 1, 2])]);
        let deleted = BTreeSet::from(["only"]);
        assert_eq!(
            freed_bytes(&volume, &deleted, BLOCK),
            BTreeMap::from([("only".to_string(), 3 * BLOCK)])
        );
    }

    #[test]
    fn a_snapshot_that_wrote_nothing_frees_nothing() {
        let volume = lineage(&[("s1", &[0]), ("empty", &[]), ("s3", &[0])]);
        let deleted = BTreeSet::from(["empty"]);
        assert_eq!(
            freed_bytes(&volume, &deleted, BLOCK),
            BTreeMap::from([("empty".to_string(), 0)])
        );
    }
}
