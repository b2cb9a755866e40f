//! Which partition a project lives in, and which live node should own a partition. Both are pure functions
//! of their inputs, so every node computes the same answer without asking anyone.

/// A partition number, `0..partitions`.
pub type Partition = u32;

/// The partition of a project: a stable hash (CRC-32, the same on every node and every release) of its id.
pub fn of_project(project_id: &str, partitions: u32) -> Partition {
    crc32fast::hash(project_id.as_bytes()) % partitions.max(1)
}

/// The node that should own `partition` among `nodes` (rendezvous hashing: each node scores each
/// partition and the highest score wins). A node joining or leaving moves only the partitions it wins or
/// held, about 1/n of them, instead of reshuffling everything as `partition % n` would.
pub fn preferred_owner<'a>(partition: Partition, nodes: &[&'a str]) -> Option<&'a str> {
    nodes
        .iter()
        .copied()
        .max_by_key(|node| (score(node, partition), *node))
}

fn score(node: &str, partition: Partition) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(node.as_bytes());
    hasher.update(&[0]);
    hasher.update(&partition.to_le_bytes());
    // CRC-32 of nearby inputs differs in few bits; a multiplicative mix spreads them over the range.
    hasher.finalize().wrapping_mul(0x9E37_79B1).rotate_left(13)
}

/// The partitions `node` should own among `nodes`.
pub fn preferred_partitions(node: &str, nodes: &[&str], partitions: u32) -> Vec<Partition> {
    (0..partitions)
        .filter(|p| preferred_owner(*p, nodes) == Some(node))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_always_hashes_to_the_same_partition() {
        assert_eq!(of_project("alpha", 64), of_project("alpha", 64));
        assert!(of_project("alpha", 64) < 64);
        assert_eq!(of_project("anything", 1), 0);
    }

    #[test]
    fn every_partition_has_one_preferred_owner_and_the_load_is_spread() {
        let nodes = ["a", "b", "c"];
        let owned: Vec<Vec<Partition>> = nodes
            .iter()
            .map(|n| preferred_partitions(n, &nodes, 64))
            .collect();
        assert_eq!(owned.iter().map(Vec::len).sum::<usize>(), 64);
        for share in &owned {
            assert!(share.len() >= 10, "uneven spread: {owned:?}");
        }
    }

    #[test]
    fn losing_a_node_moves_only_its_partitions() {
        let before: Vec<_> = (0..64)
            .map(|p| preferred_owner(p, &["a", "b", "c"]))
            .collect();
        let after: Vec<_> = (0..64).map(|p| preferred_owner(p, &["a", "b"])).collect();
        for (p, (was, now)) in before.iter().zip(&after).enumerate() {
            if *was != Some("c") {
                assert_eq!(was, now, "partition {p} moved though its owner stayed");
            }
        }
    }
}
