//! The client history: every KV operation the workload issued, when it was invoked, and how it
//! ended. It owns the vocabulary the checkers share (`KvOp`, `KvResult`, `Outcome`) and nothing
//! else; it judges nothing. The workload records into it as it goes; the checkers read it after
//! the run.
//!
//! Times are virtual and opaque to the history: nanoseconds or milliseconds, as long as one
//! history uses one unit. Only their order matters to the checkers.

use std::fmt;

/// The client that issued an operation. Rendered in reports; the checkers do not require a
/// client's operations to be sequential, though a real client's are.
pub type ClientId = u64;

/// Index of an operation in its [`History`], in invocation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

/// A single-key KV request, as the workload sends it to an etcd-like store.
///
/// Values written by the workload must be unique per write (across all keys and clients):
/// the checker identifies a write by the value a read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// `Put`: write `value` at `key`.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// A linearizable `Range` of one key.
    Get { key: Vec<u8> },
    /// `DeleteRange` of one key.
    Delete { key: Vec<u8> },
    /// `Txn { compare: [mod_revision(key) == expected_mod_revision], success: [put key
    /// new_value], failure: [] }`. `expected_mod_revision == 0` means "key absent".
    CompareAndSwap {
        key: Vec<u8>,
        expected_mod_revision: i64,
        new_value: Vec<u8>,
    },
}

impl KvOp {
    /// The one key the operation touches; the linearizability check partitions by it.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::CompareAndSwap { key, .. } => key,
        }
    }

    /// Whether the operation can change the store. A read with an unknown outcome tells the
    /// checker nothing and is dropped.
    pub fn is_write(&self) -> bool {
        !matches!(self, KvOp::Get { .. })
    }
}

/// A successful response. `revision` is the header revision etcd returns: for a write that
/// changed the store, the revision the write created; otherwise the store's revision when the
/// request was served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvResult {
    /// Answer to [`KvOp::Put`].
    PutOk { revision: i64 },
    /// Answer to [`KvOp::Get`]. When `value` is `None`, `mod_revision` and `version` are 0.
    /// `version` is the key's `version` field (puts since creation); it is checked too.
    GetOk {
        value: Option<Vec<u8>>,
        mod_revision: i64,
        version: i64,
        revision: i64,
    },
    /// Answer to [`KvOp::Delete`]: `deleted` is 0 or 1 for a one-key delete.
    DeleteOk { deleted: i64, revision: i64 },
    /// Answer to [`KvOp::CompareAndSwap`].
    TxnOk { succeeded: bool, revision: i64 },
}

impl KvResult {
    /// The response header revision.
    pub fn revision(&self) -> i64 {
        match *self {
            KvResult::PutOk { revision }
            | KvResult::GetOk { revision, .. }
            | KvResult::DeleteOk { revision, .. }
            | KvResult::TxnOk { revision, .. } => revision,
        }
    }

    /// Whether this response says the store moved to a new revision (`revision` is then the
    /// write's own revision, which no other write may share).
    pub fn created_revision(&self) -> bool {
        match *self {
            KvResult::PutOk { .. } => true,
            KvResult::GetOk { .. } => false,
            KvResult::DeleteOk { deleted, .. } => deleted > 0,
            KvResult::TxnOk { succeeded, .. } => succeeded,
        }
    }

    fn answers(&self, op: &KvOp) -> bool {
        matches!(
            (op, self),
            (KvOp::Put { .. }, KvResult::PutOk { .. })
                | (KvOp::Get { .. }, KvResult::GetOk { .. })
                | (KvOp::Delete { .. }, KvResult::DeleteOk { .. })
                | (KvOp::CompareAndSwap { .. }, KvResult::TxnOk { .. })
        )
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No answer recorded yet. At check time this is treated exactly like [`Outcome::Unknown`]:
    /// a run that ends with requests in flight does not know whether they took effect.
    Pending,
    /// Answered with a result at time `at`.
    Completed { result: KvResult, at: u64 },
    /// Timed out or lost its connection at `at`: it may take effect at any time after its
    /// invocation, even after operations invoked later, or never. Its return time is infinite.
    Unknown { at: u64 },
    /// Its response was lost at `at`, but the run's committed log shows the write applied and
    /// creating `revision` (see [`History::resolve_unknown`]). It must take effect, at any time
    /// after its invocation, with that revision.
    AppliedUnanswered { at: u64, revision: i64 },
    /// Rejected with an error that proves it was never applied (e.g. refused before proposal).
    /// Dropped from checking.
    FailedDefinite,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: ClientId,
    pub op: KvOp,
    pub invoked_at: u64,
    pub outcome: Outcome,
}

impl Operation {
    /// The time by which the operation certainly took effect, if it is known to have.
    pub fn returned_at(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Completed { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The result, if the operation completed.
    pub fn result(&self) -> Option<&KvResult> {
        match &self.outcome {
            Outcome::Completed { result, .. } => Some(result),
            _ => None,
        }
    }
}

/// Renders as `client 3 [t=120..180] Get(k1) -> Some("v7")@rev 12`.
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} [t={}..", self.client, self.invoked_at)?;
        match &self.outcome {
            Outcome::Completed { at, .. } => write!(f, "{at}]")?,
            Outcome::Unknown { at } | Outcome::AppliedUnanswered { at, .. } => {
                write!(f, "? (lost at {at})]")?
            }
            Outcome::Pending => write!(f, "? (in flight)]")?,
            Outcome::FailedDefinite => write!(f, "x (not applied)]")?,
        }
        match &self.op {
            KvOp::Put { key, value } => write!(f, " Put({}, {})", Bytes(key), Bytes(value))?,
            KvOp::Get { key } => write!(f, " Get({})", Bytes(key))?,
            KvOp::Delete { key } => write!(f, " Delete({})", Bytes(key))?,
            KvOp::CompareAndSwap {
                key,
                expected_mod_revision,
                new_value,
            } => write!(
                f,
                " Cas({}, if mod_rev == {expected_mod_revision}, {})",
                Bytes(key),
                Bytes(new_value)
            )?,
        }
        if let Outcome::AppliedUnanswered { revision, .. } = self.outcome {
            return write!(f, " -> ? (applied at rev {revision}, per the log)");
        }
        match self.result() {
            None => write!(f, " -> ?"),
            Some(KvResult::PutOk { revision }) => write!(f, " -> Ok@rev {revision}"),
            Some(KvResult::GetOk {
                value: None,
                revision,
                ..
            }) => write!(f, " -> None@rev {revision}"),
            Some(KvResult::GetOk {
                value: Some(v),
                mod_revision,
                version,
                revision,
            }) => write!(
                f,
                " -> Some({})@rev {revision} (mod_rev {mod_revision}, version {version})",
                Bytes(v)
            ),
            Some(KvResult::DeleteOk { deleted, revision }) => {
                write!(f, " -> deleted {deleted}@rev {revision}")
            }
            Some(KvResult::TxnOk { succeeded, revision }) => {
                let word = if *succeeded { "succeeded" } else { "failed" };
                write!(f, " -> {word}@rev {revision}")
            }
        }
    }
}

/// Renders a key or value readably: printable ASCII quoted, anything else as hex.
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            // A printable byte string is valid UTF-8; the lossy conversion never replaces.
            write!(f, "{:?}", String::from_utf8_lossy(self.0))
        } else {
            f.write_str("0x")?;
            for b in self.0 {
                write!(f, "{b:02x}")?;
            }
            Ok(())
        }
    }
}

/// The recorder. Operation ids are indices in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` sent `op` at `at`.
    pub fn invoke(&mut self, client: ClientId, op: KvOp, at: u64) -> OpId {
        self.ops.push(Operation {
            client,
            op,
            invoked_at: at,
            outcome: Outcome::Pending,
        });
        OpId(self.ops.len() - 1)
    }

    /// Records the answer to `id`, received at `at`.
    ///
    /// Panics if `id` already ended, `at` precedes the invocation or the result is of the wrong
    /// kind: those are bugs in the workload, not in the store.
    pub fn complete(&mut self, id: OpId, result: KvResult, at: u64) {
        let op = self.pending_mut(id, at);
        assert!(result.answers(&op.op), "{result:?} does not answer {:?}", op.op);
        op.outcome = Outcome::Completed { result, at };
    }

    /// Records that `id` ended without an answer at `at` (timeout, connection lost, the
    /// serving member crashed): it may or may not take effect, at any later time.
    pub fn fail_unknown(&mut self, id: OpId, at: u64) {
        let op = self.pending_mut(id, at);
        op.outcome = Outcome::Unknown { at };
    }

    /// Narrows a lost write (`fail_unknown`) after the run, from the cluster's committed log,
    /// as etcd's robustness tests patch their history with the requests found persisted:
    /// `None` if the request never applied (it is then dropped like a definite failure),
    /// `Some(revision)` if it applied and created `revision` (a compare-and-swap whose compare
    /// failed, or a delete of an absent key, created none: pass `None`). Resolving turns an
    /// exponential part of the search into a fixed constraint; unresolved lost writes remain
    /// correct but costly.
    ///
    /// Panics unless `id` is a write that ended with `fail_unknown`.
    pub fn resolve_unknown(&mut self, id: OpId, applied_at_revision: Option<i64>) {
        let outcome = &self.ops[id.0].outcome;
        assert!(
            matches!(outcome, Outcome::Unknown { .. }),
            "operation {id:?} is not a lost request: {outcome:?}"
        );
        self.resolve_lost(id, applied_at_revision);
    }

    /// [`History::resolve_unknown`] for a write that ended with `fail_unknown` or is still in
    /// flight at the end of the run (`Pending`; it is then treated as lost at the end of time).
    ///
    /// Panics unless `id` is a write that is lost or in flight.
    pub fn resolve_lost(&mut self, id: OpId, applied_at_revision: Option<i64>) {
        let op = &mut self.ops[id.0];
        let at = match op.outcome {
            Outcome::Unknown { at } => at,
            Outcome::Pending => u64::MAX,
            _ => panic!("operation {id:?} is not a lost request: {:?}", op.outcome),
        };
        assert!(op.op.is_write(), "a lost read has nothing to resolve: {id:?}");
        op.outcome = match applied_at_revision {
            Some(revision) => Outcome::AppliedUnanswered { at, revision },
            None => Outcome::FailedDefinite,
        };
    }

    /// Records that `id` failed with an error that proves it was never applied.
    pub fn fail_definite(&mut self, id: OpId) {
        let at = self.ops[id.0].invoked_at;
        let op = self.pending_mut(id, at);
        op.outcome = Outcome::FailedDefinite;
    }

    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    pub fn operation(&self, id: OpId) -> &Operation {
        &self.ops[id.0]
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn pending_mut(&mut self, id: OpId, at: u64) -> &mut Operation {
        let op = &mut self.ops[id.0];
        assert_eq!(op.outcome, Outcome::Pending, "operation {id:?} already ended");
        assert!(
            at >= op.invoked_at,
            "operation {id:?} ends at {at} before its invocation"
        );
        op
    }
}
