//! The write-ahead-log record codec and the recovery scan over bytes.
