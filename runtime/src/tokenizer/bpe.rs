//! Byte-pair merging of one pre-token.
//!
//! Hugging Face's BPE (`Word::merge_all`) repeatedly merges the adjacent pair
//! with the lowest merge rank, the leftmost one on ties, until no adjacent pair
//! has a merge. This does the same with a linear scan for the minimum instead
//! of a priority queue: O(n^2) in the piece length, with n small in practice,
//! and no allocation (the pair ranks live in the caller's scratch).

use super::blob::Tables;

const NO_MERGE: u32 = u32::MAX;

/// Merges `ids` in place and returns how many tokens are left at its front.
/// `ranks` is scratch of at least `ids.len()` words.
pub fn merge(t: &Tables, ids: &mut [u32], ranks: &mut [u32]) -> usize {
    let mut n = ids.len();
    if n < 2 {
        return n;
    }
    let rank = |l: u32, r: u32| t.merge(l, r).map_or(NO_MERGE, |(rank, _)| rank);
    // ranks[i] is the rank of the pair (ids[i], ids[i + 1]).
    let ranks = &mut ranks[..n - 1];
    for i in 0..n - 1 {
        ranks[i] = rank(ids[i], ids[i + 1]);
    }
    loop {
        let mut best = NO_MERGE;
        let mut at = 0;
        for (i, &r) in ranks[..n - 1].iter().enumerate() {
            if r < best {
                best = r;
                at = i;
            }
        }
        if best == NO_MERGE {
            break;
        }
        let Some((_, merged)) = t.merge(ids[at], ids[at + 1]) else {
            ranks[at] = NO_MERGE;
            continue;
        };
        ids[at] = merged;
        ids.copy_within(at + 2..n, at + 1);
        if at + 2 < n - 1 {
            ranks.copy_within(at + 2..n - 1, at + 1);
        }
        n -= 1;
        if at > 0 {
            ranks[at - 1] = rank(ids[at - 1], ids[at]);
        }
        if at + 1 < n {
            ranks[at] = rank(ids[at], ids[at + 1]);
        }
        if n < 2 {
            break;
        }
    }
    n
}
