//! A linearizability checker for one history against one sequential model: the Wing & Gong
//! search with Lowe's memoization, as Porcupine implements it. This module owns the search and
//! knows nothing of keys or etcd; [`super::kv`] partitions a KV history by key and feeds each
//! partition through here.
//!
//! The history becomes a list of call and return entries sorted by time. The search walks the
//! list from its head: a call entry is a candidate to linearize next, if the model accepts it
//! from the current state; reaching a return entry means the operation it ends must already
//! have been linearized, so the search backtracks. A (set of linearized calls, model state)
//! pair reached once is never explored again, which is what makes the search practical.
//!
//! Operations whose outcome is unknown (the client timed out) have no return entry: they stay
//! candidates for the rest of the search and may be linearized at any point after their
//! invocation, with no output to match, or left out. The search succeeds when every operation
//! that did return is linearized. This is etcd's robustness-model treatment of a lost response
//! (a call that never returns and that may or may not have been applied).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash};

/// A sequential specification. `step` answers whether `input` may take effect in `state`
/// producing `output`, and the state after it.
pub trait Model {
    type Input;
    type Output;
    /// Part of the memoization key, so it must be small and cheap to hash.
    type State: Clone + Eq + Hash + std::fmt::Debug;

    fn init(&self) -> Self::State;

    /// `output` is `None` for an operation whose outcome is unknown: the model says how it
    /// could take effect, if it can. "It did not take effect" needs no answer here, since the
    /// search may always leave such an operation out; an effect that cannot be distinguished
    /// from doing nothing (a failed compare-and-swap) may therefore return `None` too.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// One operation of the history handed to [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call<I, O> {
    pub input: I,
    /// What the operation returned; `None` when its outcome is unknown.
    pub output: Option<O>,
    pub invoked_at: u64,
    /// `None`: it never returned (unknown outcome) and may be linearized at any time after
    /// `invoked_at`, or not at all.
    pub returned_at: Option<u64>,
}

/// The answer of one search. Indices refer to the `calls` slice given to [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<S> {
    /// `order` is a linearization: every returned call and the unknown-outcome calls that had
    /// to take effect, in the order they took effect.
    Linearizable {
        order: Vec<usize>,
    },
    NotLinearizable(Counterexample<S>),
    /// The search ran out of its step budget before deciding.
    Unknown,
}

/// What the search had reached when it got furthest, for a human to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample<S> {
    /// The longest sequence of calls the model accepted that respects real time.
    pub longest_prefix: Vec<usize>,
    pub state_after_prefix: S,
    /// The first call, by return time, not in the prefix: it had to take effect before it
    /// returned, and from `state_after_prefix` no order of the candidates lets it.
    pub deadline: usize,
    /// Calls invoked before `deadline` returned and not in the prefix (`deadline` included):
    /// none of them extends the prefix to a full linearization.
    pub candidates: Vec<usize>,
}

/// The verdict and how much work it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResult<S> {
    pub verdict: Verdict<S>,
    /// Loop iterations of the search: each tries one candidate or backtracks once.
    pub steps: u64,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// Runs the search, giving up with [`Verdict::Unknown`] after `steps_max` steps.
///
/// Deterministic: the same calls give the same verdict, counterexample and step count. The
/// memo set is hashed with a fixed-key hasher and never iterated.
pub fn check<M: Model>(
    model: &M,
    calls: &[Call<M::Input, M::Output>],
    steps_max: u64,
) -> SearchResult<M::State> {
    let mut list = EntryList::new(calls);
    let mut remaining_returns = calls.iter().filter(|c| c.returned_at.is_some()).count();
    let mut linearized = Bitset::new(calls.len());
    let mut memo: HashSet<(Bitset, M::State), BuildHasherDefault<DefaultHasher>> = HashSet::default();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: Option<Counterexample<M::State>> = None;
    let mut state = model.init();
    let mut steps = 0;
    let mut node = list.next[HEAD];

    while remaining_returns > 0 {
        if steps == steps_max {
            return SearchResult {
                verdict: Verdict::Unknown,
                steps,
            };
        }
        steps += 1;
        // A return entry of an unlinearized call is always ahead while any remain.
        debug_assert_ne!(node, NIL);
        let call = list.call_of[node];
        if !list.is_return[node] {
            let c = &calls[call];
            if let Some(next_state) = model.step(&state, &c.input, c.output.as_ref()) {
                linearized.set(call);
                if memo.insert((linearized.clone(), next_state.clone())) {
                    stack.push((call, std::mem::replace(&mut state, next_state)));
                    list.lift(call);
                    if c.returned_at.is_some() {
                        remaining_returns -= 1;
                    }
                    node = list.next[HEAD];
                    continue;
                }
                linearized.clear(call);
            }
            node = list.next[node];
            continue;
        }
        // `call` must have taken effect by now and nothing on the list lets it: backtrack.
        if best.as_ref().is_none_or(|b| stack.len() > b.longest_prefix.len()) {
            best = Some(Counterexample {
                longest_prefix: stack.iter().map(|(c, _)| *c).collect(),
                state_after_prefix: state.clone(),
                deadline: call,
                candidates: list.calls_before(node),
            });
        }
        let Some((undone, previous)) = stack.pop() else {
            let counterexample = best.expect("recorded just above");
            return SearchResult {
                verdict: Verdict::NotLinearizable(counterexample),
                steps,
            };
        };
        state = previous;
        linearized.clear(undone);
        list.unlift(undone);
        if calls[undone].returned_at.is_some() {
            remaining_returns += 1;
        }
        node = list.next[list.call_node[undone]];
    }
    let order = stack.into_iter().map(|(c, _)| c).collect();
    SearchResult {
        verdict: Verdict::Linearizable { order },
        steps,
    }
}

/// The time-sorted call and return entries as a doubly linked list over indices, so that
/// linearizing a call (removing its two entries) and undoing it are O(1). Node 0 is the head.
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
    call_of: Vec<usize>,
    is_return: Vec<bool>,
    call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl EntryList {
    fn new<I, O>(calls: &[Call<I, O>]) -> Self {
        // (time, returns after calls at the same instant, call index): touching intervals
        // count as concurrent, and ties break by index so the order is total.
        let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(calls.len() * 2);
        for (i, c) in calls.iter().enumerate() {
            entries.push((c.invoked_at, false, i));
            if let Some(at) = c.returned_at {
                debug_assert!(at >= c.invoked_at);
                entries.push((at, true, i));
            }
        }
        entries.sort_unstable();
        let nodes = entries.len() + 1;
        let mut list = EntryList {
            next: (1..=nodes).map(|n| if n == nodes { NIL } else { n }).collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            call_of: Vec::with_capacity(nodes),
            is_return: Vec::with_capacity(nodes),
            call_node: vec![NIL; calls.len()],
            return_node: vec![NIL; calls.len()],
        };
        list.call_of.push(NIL);
        list.is_return.push(false);
        for (n, &(_, is_return, call)) in entries.iter().enumerate() {
            list.call_of.push(call);
            list.is_return.push(is_return);
            if is_return {
                list.return_node[call] = n + 1;
            } else {
                list.call_node[call] = n + 1;
            }
        }
        list
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != NIL {
            self.prev[x] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != NIL {
            self.prev[x] = n;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(self.call_node[call]);
        if self.return_node[call] != NIL {
            self.unlink(self.return_node[call]);
        }
    }

    /// Exactly undoes the most recent `lift` still in effect (removed nodes keep their links).
    fn unlift(&mut self, call: usize) {
        if self.return_node[call] != NIL {
            self.relink(self.return_node[call]);
        }
        self.relink(self.call_node[call]);
    }

    /// The calls whose call entries lie between the head and `stop`. When `stop` is a return
    /// entry its own call is among them: a call entry precedes its return entry.
    fn calls_before(&self, stop: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = self.next[HEAD];
        while n != stop && n != NIL {
            if !self.is_return[n] {
                out.push(self.call_of[n]);
            }
            n = self.next[n];
        }
        out
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single register: write(v) -> (), read() -> v.
    struct Register;

    #[derive(Clone, Debug)]
    enum Op {
        Write(u8),
        Read,
    }

    impl Model for Register {
        type Input = Op;
        type Output = u8;
        type State = u8;

        fn init(&self) -> u8 {
            0
        }

        fn step(&self, state: &u8, input: &Op, output: Option<&u8>) -> Option<u8> {
            match input {
                Op::Write(v) => Some(*v),
                Op::Read => (output.is_none_or(|o| o == state)).then_some(*state),
            }
        }
    }

    fn call(input: Op, output: u8, invoked_at: u64, returned_at: u64) -> Call<Op, u8> {
        Call {
            input,
            output: Some(output),
            invoked_at,
            returned_at: Some(returned_at),
        }
    }

    #[test]
    fn concurrent_write_and_read_may_go_either_way() {
        let calls = [
            call(Op::Write(1), 0, 0, 10),
            call(Op::Read, 0, 1, 5),
            call(Op::Read, 1, 2, 6),
        ];
        let result = check(&Register, &calls, 1000);
        assert_eq!(result.verdict, Verdict::Linearizable { order: vec![1, 0, 2] });
    }

    #[test]
    fn read_after_write_returned_must_see_it() {
        let calls = [call(Op::Write(1), 0, 0, 10), call(Op::Read, 0, 11, 12)];
        let Verdict::NotLinearizable(c) = check(&Register, &calls, 1000).verdict else {
            panic!("stale read accepted");
        };
        assert_eq!(c.longest_prefix, vec![0]);
        assert_eq!(c.state_after_prefix, 1);
        assert_eq!(c.deadline, 1);
        assert_eq!(c.candidates, vec![1]);
    }

    #[test]
    fn unknown_call_may_be_left_out_or_applied_late() {
        let lost = Call {
            input: Op::Write(7),
            output: None,
            invoked_at: 0,
            returned_at: None,
        };
        let late = [lost.clone(), call(Op::Read, 0, 5, 6), call(Op::Read, 7, 8, 9)];
        assert!(matches!(
            check(&Register, &late, 1000).verdict,
            Verdict::Linearizable { .. }
        ));
        let never = [lost, call(Op::Read, 0, 5, 6)];
        assert_eq!(
            check(&Register, &never, 1000).verdict,
            Verdict::Linearizable { order: vec![1] }
        );
    }

    #[test]
    fn budget_exhaustion_is_unknown_not_a_verdict() {
        let calls = [call(Op::Write(1), 0, 0, 10), call(Op::Read, 0, 11, 12)];
        let result = check(&Register, &calls, 1);
        assert_eq!(
            result,
            SearchResult {
                verdict: Verdict::Unknown,
                steps: 1
            }
        );
    }
}
