//! The simulated disk: named files whose bytes are either durable or merely written.
//!
//! A `write` lands in the volatile view at once (reads see it) and is remembered as
//! unsynced. A sync captures the unsynced writes that exist when it starts; when it
//! completes (after a latency the caller simulates) exactly those become durable.
//! A crash rebuilds each file from its durable bytes plus some prefix of its
//! unsynced writes, in order, as a real disk may have written any of them: the
//! prefix may be empty (all lost), may end in a write torn at a sector boundary
//! (later sectors never written), and the sector where the tear happened may hold
//! garbage. Files never synced may vanish.
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
}

#[derive(Clone, Debug, Default)]
struct File {
    /// What reads return: durable bytes plus every write since.
    content: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    /// Writes not yet covered by a completed sync, oldest first.
    unsynced: Vec<PendingWrite>,
    /// Writes dropped from `unsynced` by completed syncs, so sync tokens stay valid.
    synced_count: u64,
    /// Whether the file's existence is durable (a sync completed since creation).
    exists_durably: bool,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    offset: usize,
    bytes: Vec<u8>,
}

/// A sync in flight: which writes of which file it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncToken {
    name: String,
    /// Writes up to this number (counted since the file's creation) become durable.
    upto: u64,
}

/// The disk of one member.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    files: BTreeMap<String, File>,
    pub stats: DiskStats,
    /// Planted bug `disk-sync-lies`: syncs report success and make nothing durable.
    pub sync_lies: bool,
}

impl Disk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `bytes` at `offset` of `name` (created, zero-extended as needed).
    pub fn write(&mut self, name: &str, offset: usize, bytes: &[u8]) {
        let file = self.files.entry(name.to_string()).or_default();
        apply(&mut file.content, offset, bytes);
        file.unsynced.push(PendingWrite {
            offset,
            bytes: bytes.to_vec(),
        });
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
    }

    /// Starts a sync of `name`: it covers the writes made so far.
    pub fn sync_begin(&mut self, name: &str) -> SyncToken {
        let file = self.files.entry(name.to_string()).or_default();
        SyncToken {
            name: name.to_string(),
            upto: file.synced_count + file.unsynced.len() as u64,
        }
    }

    /// Completes a sync: the writes it covers become durable.
    pub fn sync_complete(&mut self, token: &SyncToken) {
        self.stats.syncs += 1;
        if self.sync_lies {
            return;
        }
        let Some(file) = self.files.get_mut(&token.name) else {
            return;
        };
        file.exists_durably = true;
        let covered = token.upto.saturating_sub(file.synced_count) as usize;
        let covered = covered.min(file.unsynced.len());
        for write in file.unsynced.drain(..covered) {
            apply(&mut file.durable, write.offset, &write.bytes);
        }
        file.synced_count += covered as u64;
    }

    /// Makes `name` hold exactly `content`, durably at once (recovery's truncation
    /// of a torn tail, which a real driver follows with a sync before going on).
    pub fn replace_durable(&mut self, name: &str, content: Vec<u8>) {
        let file = self.files.entry(name.to_string()).or_default();
        file.durable = content.clone();
        file.content = content;
        file.synced_count += file.unsynced.len() as u64;
        file.unsynced.clear();
        file.exists_durably = true;
    }

    /// Removes `name` durably (a rename or unlink followed by a directory sync).
    pub fn remove(&mut self, name: &str) {
        self.files.remove(name);
    }

    pub fn read(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|f| f.content.as_slice())
    }

    /// Names starting with `prefix`, in order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.files
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Bytes held (volatile view), for memory accounting.
    pub fn bytes(&self) -> usize {
        self.files.values().map(|f| f.content.len()).sum()
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
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in names {
            let file = self.files.get_mut(&name).expect("listed");
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
                        let garbage: Vec<u8> =
                            (kept_end..garbage_end).map(|_| rng.next_u64() as u8).collect();
                        let mut with_garbage = content.clone();
                        apply(&mut with_garbage, kept_end, &garbage);
                        if accepts_garbage(&name, &with_garbage) {
                            content = with_garbage;
                            self.stats.garbage_sectors += 1;
                        } else {
                            self.stats.garbage_downgraded += 1;
                        }
                    }
                }
            }
            if !file.exists_durably && content.is_empty() {
                self.files.remove(&name);
                self.stats.files_vanished += 1;
                continue;
            }
            file.content = content.clone();
            file.durable = content;
            file.synced_count += pending.len() as u64;
            file.exists_durably = true;
        }
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

    #[test]
    fn synced_writes_survive_a_crash() {
        let mut disk = Disk::new();
        disk.write("f", 0, b"hello");
        let token = disk.sync_begin("f");
        disk.write("f", 5, b" world");
        disk.sync_complete(&token);
        let mut lost_tail = false;
        for seed in 0..64 {
            let mut d = disk.clone();
            d.crash(&mut Rng::new(seed), ALL, &|_, _| true);
            let bytes = d.read("f").unwrap();
            assert!(bytes.starts_with(b"hello"));
            lost_tail |= bytes.len() == 5;
        }
        assert!(lost_tail, "some crash loses the unsynced write");
    }

    #[test]
    fn a_sync_covers_only_writes_made_before_it_began() {
        let mut disk = Disk::new();
        disk.write("f", 0, b"a");
        let token = disk.sync_begin("f");
        disk.write("f", 1, b"b");
        disk.sync_complete(&token);
        disk.crash(
            &mut Rng::new(1),
            CrashPolicy {
                lose_unsynced: true,
                tear: false,
                garbage: false,
            },
            &|_, _| true,
        );
        // Either "a" or "ab" is legal; "b" alone never is.
        assert!(disk.read("f").unwrap().starts_with(b"a"));
    }

    #[test]
    fn tears_keep_whole_sectors_only() {
        let write = vec![7u8; SECTOR_BYTES * 4];
        let mut saw_torn = false;
        for seed in 0..64 {
            let mut disk = Disk::new();
            disk.write("f", 0, &[1; 8]);
            let token = disk.sync_begin("f");
            disk.sync_complete(&token);
            disk.write("f", 8, &write);
            disk.crash(
                &mut Rng::new(seed),
                CrashPolicy {
                    lose_unsynced: true,
                    tear: true,
                    garbage: false,
                },
                &|_, _| true,
            );
            let len = disk.read("f").unwrap().len();
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
        let mut disk = Disk {
            sync_lies: true,
            ..Disk::new()
        };
        disk.write("f", 0, b"acked");
        let token = disk.sync_begin("f");
        disk.sync_complete(&token);
        disk.crash(
            &mut Rng::new(3),
            CrashPolicy {
                lose_unsynced: true,
                tear: false,
                garbage: false,
            },
            &|_, _| true,
        );
        let survived = disk.read("f").map(<[u8]>::to_vec);
        // With some seed the write is gone although its sync "completed".
        let mut lost = survived.is_none();
        for seed in 0..32 {
            let mut d = Disk {
                sync_lies: true,
                ..Disk::new()
            };
            d.write("f", 0, b"acked");
            let t = d.sync_begin("f");
            d.sync_complete(&t);
            d.crash(
                &mut Rng::new(seed),
                CrashPolicy {
                    lose_unsynced: true,
                    tear: false,
                    garbage: false,
                },
                &|_, _| true,
            );
            lost |= d.read("f").is_none();
        }
        assert!(lost);
    }
}
