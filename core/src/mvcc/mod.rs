//! The multi-version key-value store: revisions, the key index, range, put, delete, txn, compact, hash.
