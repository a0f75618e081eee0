//! detcd-io: the tokio driver for `core::node`, the mmap write-ahead log, snapshot
//! files and the peer transport. Filled by the durable-storage issue.
