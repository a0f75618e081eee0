//! The history of one key as a list of generations (etcd's `keyIndex`).
//!
//! A generation runs from the put that created the key to the delete that ended it
//! (its tombstone, the generation's last revision). The last generation is the live
//! one, empty while the key does not exist. Version and create revision come from
//! here, so the revision storage does not need to be consulted to answer them.

use super::revision::Revision;

/// One life of a key: created by a put, ended by a tombstone (if it is not the last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generation {
    /// Number of revisions ever put in this generation (the key's `version` at its last one).
    pub version: i64,
    /// The revision of the put that created the key in this generation.
    pub created: Revision,
    /// Every revision still kept, ascending; a closed generation ends with its tombstone.
    pub revs: Vec<Revision>,
}

/// The key's revisions, grouped by generation. Never empty: the last generation exists
/// even when it holds no revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyIndex {
    pub modified: Revision,
    pub generations: Vec<Generation>,
}

/// What the key looked like at some revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAt {
    pub modified: Revision,
    pub created: Revision,
    pub version: i64,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }
}

impl KeyIndex {
    /// Records a put at `rev`, which must be newer than anything recorded.
    pub fn put(&mut self, rev: Revision) {
        assert!(rev > self.modified, "put {rev:?} not after {:?}", self.modified);
        let g = self
            .generations
            .last_mut()
            .expect("a key index always has a generation");
        if g.revs.is_empty() {
            g.created = rev;
            // Most keys keep one revision after compaction: do not let the first push
            // allocate room for four.
            g.revs.reserve_exact(1);
        }
        g.revs.push(rev);
        g.version += 1;
        self.modified = rev;
    }

    /// Records a delete at `rev` and opens a new, empty generation. Returns false (and
    /// changes nothing) when the key does not currently exist.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        if self.generations.last().is_none_or(|g| g.revs.is_empty()) {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// The key as of main revision `at`, or `None` if it did not exist then.
    pub fn get(&self, at: i64) -> Option<KeyAt> {
        let g = self.find_generation(at)?;
        let n = g.revs.iter().rposition(|r| r.main <= at)?;
        Some(KeyAt {
            modified: g.revs[n],
            created: g.created,
            version: g.version - (g.revs.len() - n - 1) as i64,
        })
    }

    /// Removes every revision with main revision `main` or later (a failed write's
    /// changes), reopening a generation its tombstone had closed.
    pub fn revert_from(&mut self, main: i64) {
        loop {
            let n = self.generations.len();
            let last = &mut self.generations[n - 1];
            match last.revs.last() {
                Some(r) if r.main >= main => {
                    last.revs.pop();
                    last.version -= 1;
                }
                Some(_) => break,
                None => {
                    let reopen = n > 1
                        && self.generations[n - 2]
                            .revs
                            .last()
                            .is_some_and(|r| r.main >= main);
                    if !reopen {
                        break;
                    }
                    self.generations.pop();
                }
            }
        }
        self.modified = self
            .generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
            .unwrap_or_default();
    }

    /// True when no revision is left (the key can leave the tree).
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// Drops history before `at`, keeping in each key the last revision at or before
    /// `at` (a tombstone at exactly `at` included, so watchers from `at` still see the
    /// delete). Adds the revisions that must stay in storage to `available`.
    pub fn compact(&mut self, at: i64, available: &mut Vec<Revision>) {
        let (gen_idx, rev_idx) = self.compaction_point(at);
        if let Some(i) = rev_idx {
            available.push(self.generations[gen_idx].revs[i]);
            self.generations[gen_idx].revs.drain(..i);
        }
        self.generations.drain(..gen_idx);
    }

    /// The revision compacting at `at` would keep, as HashKV counts it: a tombstone at
    /// exactly `at` is not counted (etcd keeps hashes equal across versions that did and
    /// did not keep it).
    pub fn keep(&self, at: i64) -> Option<Revision> {
        if self.is_empty() {
            return None;
        }
        let (gen_idx, rev_idx) = self.compaction_point(at);
        let i = rev_idx?;
        let g = &self.generations[gen_idx];
        if i == g.revs.len() - 1 && gen_idx != self.generations.len() - 1 {
            return None;
        }
        Some(g.revs[i])
    }

    /// The first generation that still matters at `at` (its tombstone is at or after
    /// `at`, or it is the last) and the index of its last revision at or before `at`.
    fn compaction_point(&self, at: i64) -> (usize, Option<usize>) {
        let last = self.generations.len() - 1;
        let mut gen_idx = 0;
        while gen_idx < last {
            let tomb = self.generations[gen_idx]
                .revs
                .last()
                .expect("closed generation")
                .main;
            if tomb >= at {
                break;
            }
            gen_idx += 1;
        }
        let rev_idx = self.generations[gen_idx].revs.iter().rposition(|r| r.main <= at);
        (gen_idx, rev_idx)
    }

    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= at {
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }

    /// Checks the structure: revisions ascend across generations, every closed
    /// generation is non-empty, versions cover the kept revisions.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.generations.is_empty() {
            return Err("key index without generations");
        }
        let mut prev: Option<Revision> = None;
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate() {
            if i != last && g.revs.is_empty() {
                return Err("closed generation without revisions");
            }
            if (g.version as u64) < g.revs.len() as u64 {
                return Err("generation version below its revision count");
            }
            for &r in &g.revs {
                if prev.is_some_and(|p| p >= r) {
                    return Err("key index revisions not ascending");
                }
                prev = Some(r);
            }
        }
        if prev.is_some_and(|p| p != self.modified) {
            return Err("key index modified is not its last revision");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put 2, put 4, delete 6, put 8, put 10
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        ki
    }

    #[test]
    fn get_sees_versions_per_generation_and_gaps_after_tombstones() {
        let ki = sample();
        assert_eq!(ki.get(1), None);
        assert_eq!(
            ki.get(3),
            Some(KeyAt {
                modified: r(2),
                created: r(2),
                version: 1
            })
        );
        assert_eq!(
            ki.get(5),
            Some(KeyAt {
                modified: r(4),
                created: r(2),
                version: 2
            })
        );
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(7), None);
        assert_eq!(
            ki.get(9),
            Some(KeyAt {
                modified: r(8),
                created: r(8),
                version: 1
            })
        );
        assert_eq!(
            ki.get(99),
            Some(KeyAt {
                modified: r(10),
                created: r(8),
                version: 2
            })
        );
    }

    #[test]
    fn tombstone_of_a_missing_key_is_refused() {
        let mut ki = KeyIndex::default();
        assert!(!ki.tombstone(r(2)));
        ki.put(r(2));
        assert!(ki.tombstone(r(3)));
        assert!(!ki.tombstone(r(4)));
    }

    #[test]
    fn compact_keeps_latest_revision_and_a_tombstone_at_exactly_the_compact_revision() {
        let mut ki = sample();
        let mut kept = Vec::new();
        ki.compact(5, &mut kept);
        assert_eq!(kept, vec![r(4)]);
        assert_eq!(ki.get(5).map(|k| k.version), Some(2));

        let mut kept = Vec::new();
        ki.compact(6, &mut kept);
        assert_eq!(kept, vec![r(6)]);
        assert_eq!(ki.generations[0].revs, vec![r(6)]);
        assert_eq!(
            ki.keep(6),
            None,
            "hash does not count a tombstone at the compact revision"
        );

        let mut kept = Vec::new();
        ki.compact(7, &mut kept);
        assert!(kept.is_empty());
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.get(99).map(|k| k.version), Some(2));
    }

    #[test]
    fn revert_undoes_puts_and_tombstones_of_one_revision() {
        let mut ki = sample();
        let before = ki.clone();
        ki.tombstone(Revision::new(11, 0));
        ki.put(Revision::new(11, 1));
        ki.revert_from(11);
        assert_eq!(ki, before);
    }

    #[test]
    fn compacting_past_the_last_tombstone_empties_the_key() {
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        ki.tombstone(r(3));
        ki.compact(4, &mut Vec::new());
        assert!(ki.is_empty());
    }
}
