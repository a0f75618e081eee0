//! The simulated disk: files whose bytes are either durable or merely written,
//! and directory entries that are either durable or merely made.
//!
//! A `write` lands in the volatile view at once (reads see it) and is remembered as
//! unsynced. A sync captures the unsynced writes that exist when it starts; when it
//! completes (after a latency the caller simulates) exactly those become durable.
//! A crash rebuilds each file from its durable bytes plus some prefix of its
//! unsynced writes, in order, as a real disk may have written any of them: the
//! prefix may be empty (all lost), may end in a write torn at a sector boundary
//! (later sectors never written), and the sector where the tear happened may hold
//! garbage.
//!
//! Files are inodes; names point at them. Creating, renaming and removing a name
//! changes the volatile namespace only; [`Disk::sync_dir`] makes a directory's
//! names durable. A crash keeps either a directory's volatile names or its durable
//! ones (each directory on its own), so a file created or renamed without a
//! directory sync may vanish or come back under its old name, and a removed one
//! may come back. Inodes no name reaches are gone.
//!
//! Garbage is only left where the reader is specified to recognise it as a torn
//! tail: the caller passes an oracle, and garbage it would call corruption is
//! written as zeros instead (counted in [`DiskStats::garbage_downgraded`]). A
//! sector of garbage that is indistinguishable from damage is corruption, and the
//! fault model here is crash faults only; bit rot is not modelled.

use std::collections::BTreeMap;

use detcd_core::rng::Rng;
use detcd_core::wal::SECTOR_BYTES;

/// How a crash treats unsynced writes. Chosen per crash by the fault schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashPolicy {
    /// Unsynced writes may be lost (else every write reaches the disk).
    pub lose_unsynced: bool,
    /// The last surviving write may be torn at a sector boundary.
    pub tear: bool,
    /// The torn sector may hold garbage instead of zeros.
    pub garbage: bool,
}

/// A fault beyond crashes, aimed at one file of a member that is down (the
/// snapshot-loss fault): the file is gone, or one of its bytes is flipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The name is gone, durably (an operator's mistake, a lost block).
    Lost,
    /// The byte at `offset` (modulo the file's length) is flipped, durably.
    Corrupt { offset: usize },
}

/// What the faults did, for the run's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub unsynced_writes_lost: u64,
    pub writes_torn: u64,
    pub garbage_sectors: u64,
    pub garbage_downgraded: u64,
    pub files_vanished: u64,
    pub dir_syncs: u64,
    /// Directories whose unsynced entries a crash undid.
    pub dirs_reverted: u64,
    /// Files lost or corrupted by [`Disk::damage`].
    pub files_damaged: u64,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads return: durable bytes plus every write since.
    content: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    /// Writes not yet covered by a completed sync, oldest first.
    unsynced: Vec<PendingWrite>,
    /// Writes dropped from `unsynced` by completed syncs, so sync tokens stay valid.
    synced_count: u64,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    offset: usize,
    bytes: Vec<u8>,
}

/// A sync in flight: which writes of which file it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncToken {
    inode: u64,
    /// Writes up to this number (counted since the file's creation) become durable.
    upto: u64,
}

/// The disk of one member.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    inodes: BTreeMap<u64, Inode>,
    /// Full name (`dir/name`) to inode, as lookups see it.
    names: BTreeMap<String, u64>,
    /// The names a crash keeps for certain.
    durable_names: BTreeMap<String, u64>,
    next_inode: u64,
    pub stats: DiskStats,
    /// Planted bug `disk-sync-lies`: syncs report success and make nothing durable.
    pub sync_lies: bool,
}

/// The directory part of a full name (`""` for none).
fn dir_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

impl Disk {
    pub fn new() -> Self {
        Self::default()
    }

    /// The inode `name` points at.
    pub fn lookup(&self, name: &str) -> Option<u64> {
        self.names.get(name).copied()
    }

    /// Points `name` at a new empty inode (the old one, if any, loses the name).
    pub fn create(&mut self, name: &str) -> u64 {
        self.next_inode += 1;
        let inode = self.next_inode;
        self.inodes.insert(inode, Inode::default());
        self.names.insert(name.to_string(), inode);
        inode
    }

    /// Moves `from`'s inode to `to` (replacing it); false when `from` is missing.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let Some(inode) = self.names.remove(from) else {
            return false;
        };
        self.names.insert(to.to_string(), inode);
        true
    }

    /// Removes the name; false when missing.
    pub fn remove(&mut self, name: &str) -> bool {
        self.names.remove(name).is_some()
    }

    /// Makes the names of `dir` durable as they are now.
    pub fn sync_dir(&mut self, dir: &str) {
        self.stats.dir_syncs += 1;
        self.durable_names.retain(|n, _| dir_of(n) != dir);
        for (name, &inode) in self.names.iter().filter(|(n, _)| dir_of(n) == dir) {
            self.durable_names.insert(name.clone(), inode);
        }
    }

    /// The names directly in `dir` (without the directory part), in order.
    pub fn list(&self, dir: &str) -> Vec<String> {
        self.names
            .keys()
            .filter(|n| dir_of(n) == dir)
            .map(|n| n.rsplit_once('/').map_or(n.as_str(), |(_, f)| f).to_string())
            .collect()
    }

    /// Whether a name in `dir` or below exists.
    pub fn has_dir(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.names.keys().any(|n| n.starts_with(&prefix))
    }

    /// Writes `bytes` at `offset` of the inode (zero-extended as needed).
    pub fn write(&mut self, inode: u64, offset: usize, bytes: &[u8]) {
        let file = self.inodes.entry(inode).or_default();
        apply(&mut file.content, offset, bytes);
        file.unsynced.push(PendingWrite {
            offset,
            bytes: bytes.to_vec(),
        });
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
    }

    /// Starts a sync of the inode: it covers the writes made so far.
    pub fn sync_begin(&mut self, inode: u64) -> SyncToken {
        let file = self.inodes.entry(inode).or_default();
        SyncToken {
            inode,
            upto: file.synced_count + file.unsynced.len() as u64,
        }
    }

    /// Completes a sync: the writes it covers become durable.
    pub fn sync_complete(&mut self, token: &SyncToken) {
        self.stats.syncs += 1;
        if self.sync_lies {
            return;
        }
        let Some(file) = self.inodes.get_mut(&token.inode) else {
            return;
        };
        let covered = token.upto.saturating_sub(file.synced_count) as usize;
        let covered = covered.min(file.unsynced.len());
        for write in file.unsynced.drain(..covered) {
            apply(&mut file.durable, write.offset, &write.bytes);
        }
        file.synced_count += covered as u64;
    }

    /// A sync of the inode, begun and completed at once.
    pub fn sync(&mut self, inode: u64) {
        let token = self.sync_begin(inode);
        self.sync_complete(&token);
    }

    pub fn read(&self, inode: u64) -> Option<&[u8]> {
        self.inodes.get(&inode).map(|f| f.content.as_slice())
    }

    /// Damages the file `name` (see [`Damage`]); false when there is no such file
    /// or it is empty.
    pub fn damage(&mut self, name: &str, damage: Damage) -> bool {
        let Some(inode) = self.names.get(name).copied() else {
            return false;
        };
        match damage {
            Damage::Lost => {
                self.names.remove(name);
                self.durable_names.remove(name);
                self.inodes.remove(&inode);
            }
            Damage::Corrupt { offset } => {
                let file = self.inodes.get_mut(&inode).expect("named inode");
                if file.content.is_empty() {
                    return false;
                }
                let at = offset % file.content.len();
                file.content[at] ^= 0x5a;
                if at < file.durable.len() {
                    file.durable[at] ^= 0x5a;
                }
            }
        }
        self.stats.files_damaged += 1;
        true
    }

    /// Bytes held (volatile view), for memory accounting.
    pub fn bytes(&self) -> usize {
        self.inodes.values().map(|f| f.content.len()).sum()
    }

    /// Power loss. `accepts_garbage(name, bytes)` says whether the reader of `name`
    /// would recognise the crashed file as a torn tail rather than corruption.
    pub fn crash(
        &mut self,
        rng: &mut Rng,
        policy: CrashPolicy,
        accepts_garbage: &dyn Fn(&str, &[u8]) -> bool,
    ) {
        self.stats.crashes += 1;
        self.crash_names(rng, policy);
        let names: Vec<(String, u64)> = self.names.iter().map(|(n, &i)| (n.clone(), i)).collect();
        let live: std::collections::BTreeSet<u64> = names.iter().map(|&(_, i)| i).collect();
        let before = self.inodes.len();
        self.inodes.retain(|inode, _| live.contains(inode));
        self.stats.files_vanished += (before - self.inodes.len()) as u64;
        let mut done = std::collections::BTreeSet::new();
        for (name, inode) in names {
            if done.insert(inode) {
                self.crash_inode(rng, policy, &name, inode, accepts_garbage);
            }
        }
    }

    /// Each directory whose names differ from its durable ones keeps its volatile
    /// names or goes back to the durable ones.
    fn crash_names(&mut self, rng: &mut Rng, policy: CrashPolicy) {
        let dirs: std::collections::BTreeSet<String> = self
            .names
            .keys()
            .chain(self.durable_names.keys())
            .filter(|n| self.names.get(*n) != self.durable_names.get(*n))
            .map(|n| dir_of(n).to_string())
            .collect();
        for dir in dirs {
            if policy.lose_unsynced && rng.chance(1, 2) {
                self.names.retain(|n, _| dir_of(n) != dir);
                for (name, &inode) in self.durable_names.iter().filter(|(n, _)| dir_of(n) == dir) {
                    self.names.insert(name.clone(), inode);
                }
                self.stats.dirs_reverted += 1;
            }
        }
        self.durable_names = self.names.clone();
    }

    fn crash_inode(
        &mut self,
        rng: &mut Rng,
        policy: CrashPolicy,
        name: &str,
        inode: u64,
        accepts_garbage: &dyn Fn(&str, &[u8]) -> bool,
    ) {
        let file = self.inodes.get_mut(&inode).expect("live inode");
        let pending = std::mem::take(&mut file.unsynced);
        let mut content = file.durable.clone();
        let survive = if policy.lose_unsynced {
            rng.range(0, pending.len() as u64 + 1) as usize
        } else {
            pending.len()
        };
        self.stats.unsynced_writes_lost += (pending.len() - survive) as u64;
        for write in &pending[..survive] {
            apply(&mut content, write.offset, &write.bytes);
        }
        if policy.tear && survive < pending.len() && rng.chance(1, 2) {
            let torn = &pending[survive];
            let end = torn.offset + torn.bytes.len();
            // Sectors are numbered on the file, not the write: keep whole sectors.
            let first_sector_end = (torn.offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
            if first_sector_end < end {
                let sectors = (end - first_sector_end).div_ceil(SECTOR_BYTES) as u64;
                let kept_end = first_sector_end + rng.range(0, sectors) as usize * SECTOR_BYTES;
                apply(&mut content, torn.offset, &torn.bytes[..kept_end - torn.offset]);
                self.stats.writes_torn += 1;
                if policy.garbage && kept_end < end && rng.chance(1, 2) {
                    let garbage_end = (kept_end + SECTOR_BYTES).min(end);
                    let garbage: Vec<u8> = (kept_end..garbage_end).map(|_| rng.next_u64() as u8).collect();
                    let mut with_garbage = content.clone();
                    apply(&mut with_garbage, kept_end, &garbage);
                    if accepts_garbage(name, &with_garbage) {
                        content = with_garbage;
                        self.stats.garbage_sectors += 1;
                    } else {
                        self.stats.garbage_downgraded += 1;
                    }
                }
            }
        }
        file.content = content.clone();
        file.durable = content;
        file.synced_count += pending.len() as u64;
    }
}

fn apply(target: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    if target.len() < end {
        target.resize(end, 0);
    }
    target[offset..end].copy_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: CrashPolicy = CrashPolicy {
        lose_unsynced: true,
        tear: true,
        garbage: true,
    };
    const LOSE: CrashPolicy = CrashPolicy {
        lose_unsynced: true,
        tear: false,
        garbage: false,
    };

    /// A disk with `f` created and its name durable.
    fn disk_with_file() -> (Disk, u64) {
        let mut disk = Disk::new();
        let f = disk.create("d/f");
        disk.sync_dir("d");
        (disk, f)
    }

    #[test]
    fn synced_writes_survive_a_crash() {
        let (mut disk, f) = disk_with_file();
        disk.write(f, 0, b"hello");
        let token = disk.sync_begin(f);
        disk.write(f, 5, b" world");
        disk.sync_complete(&token);
        let mut lost_tail = false;
        for seed in 0..64 {
            let mut d = disk.clone();
            d.crash(&mut Rng::new(seed), ALL, &|_, _| true);
            let bytes = d.read(d.lookup("d/f").unwrap()).unwrap();
            assert!(bytes.starts_with(b"hello"));
            lost_tail |= bytes.len() == 5;
        }
        assert!(lost_tail, "some crash loses the unsynced write");
    }

    #[test]
    fn a_sync_covers_only_writes_made_before_it_began() {
        let (mut disk, f) = disk_with_file();
        disk.write(f, 0, b"a");
        let token = disk.sync_begin(f);
        disk.write(f, 1, b"b");
        disk.sync_complete(&token);
        disk.crash(&mut Rng::new(1), LOSE, &|_, _| true);
        // Either "a" or "ab" is legal; "b" alone never is.
        assert!(disk.read(disk.lookup("d/f").unwrap()).unwrap().starts_with(b"a"));
    }

    #[test]
    fn tears_keep_whole_sectors_only() {
        let write = vec![7u8; SECTOR_BYTES * 4];
        let mut saw_torn = false;
        for seed in 0..64 {
            let (mut disk, f) = disk_with_file();
            disk.write(f, 0, &[1; 8]);
            disk.sync(f);
            disk.write(f, 8, &write);
            let policy = CrashPolicy {
                garbage: false,
                ..ALL
            };
            disk.crash(&mut Rng::new(seed), policy, &|_, _| true);
            let len = disk.read(f).unwrap().len();
            assert!(
                len == 8 || len == 8 + write.len() || len % SECTOR_BYTES == 0,
                "len {len}"
            );
            saw_torn |= len != 8 && len != 8 + write.len();
        }
        assert!(saw_torn);
    }

    #[test]
    fn lying_syncs_lose_acknowledged_data() {
        let mut lost = false;
        for seed in 0..32 {
            let (mut d, f) = disk_with_file();
            d.sync_lies = true;
            d.write(f, 0, b"acked");
            d.sync(f);
            d.crash(&mut Rng::new(seed), LOSE, &|_, _| true);
            lost |= d.read(f).is_none_or(<[u8]>::is_empty);
        }
        assert!(lost);
    }

    #[test]
    fn names_not_synced_may_be_lost_and_synced_ones_never_are() {
        let (mut kept, mut lost) = (false, false);
        for seed in 0..32 {
            let (mut d, f) = disk_with_file();
            d.write(f, 0, b"x");
            d.sync(f);
            assert!(d.rename("d/f", "d/g"));
            let h = d.create("d/h");
            d.write(h, 0, b"y");
            d.sync(h);
            d.crash(&mut Rng::new(seed), LOSE, &|_, _| true);
            match (d.lookup("d/f"), d.lookup("d/g"), d.lookup("d/h")) {
                (None, Some(_), Some(_)) => kept = true,
                (Some(_), None, None) => lost = true,
                other => panic!("seed {seed}: a directory keeps all its changes or none: {other:?}"),
            }
        }
        assert!(kept && lost);
        let (mut d, _) = disk_with_file();
        assert!(d.rename("d/f", "d/g"));
        d.sync_dir("d");
        for seed in 0..16 {
            let mut c = d.clone();
            c.crash(&mut Rng::new(seed), LOSE, &|_, _| true);
            assert!(c.lookup("d/g").is_some() && c.lookup("d/f").is_none());
        }
    }
}
