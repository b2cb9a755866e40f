//! Giving a map's memory back. A `HashMap` never shrinks by itself: one burst of 100,000 projects would keep
//! the routers' project directories and routes and the window budget's tables at their largest for good
//! (megabytes each, after every actor stopped). Each removal calls `shrink_when_sparse`, which halves the
//! table's slack once it holds under a quarter of its room, so the cost stays amortised O(1) per removal.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Tables this small are not worth shrinking.
const MIN_CAPACITY: usize = 1024;

/// Shrinks `map` to twice its length when it fills less than a quarter of its capacity.
pub fn shrink_when_sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > MIN_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_burst_gives_its_table_back() {
        let mut map: HashMap<u64, [u8; 64]> = (0..100_000).map(|i| (i, [0; 64])).collect();
        let full = map.capacity();
        for i in 0..100_000 {
            map.remove(&i);
            shrink_when_sparse(&mut map);
        }
        assert!(map.is_empty());
        assert!(
            map.capacity() <= MIN_CAPACITY * 2,
            "{} of {full} slots kept",
            map.capacity()
        );
        let mut small: HashMap<u64, u8> = (0..100).map(|i| (i, 0)).collect();
        small.retain(|k, _| *k < 2);
        // `capacity()` counts removed slots out (tombstones), so compare it with itself, not with 100.
        let before = small.capacity();
        shrink_when_sparse(&mut small);
        assert_eq!(small.capacity(), before, "small tables are left alone");
    }
}
