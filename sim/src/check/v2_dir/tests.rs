use detcd_core::v2store::{code, Action};

use super::*;

fn shown(key: &str, value: Option<&str>, created: u64, modified: u64) -> Shown {
    Shown {
        key: key.to_string(),
        dir: value.is_none(),
        value: value.map(str::to_string),
        ttl: false,
        created,
        modified,
        nodes: Vec::new(),
    }
}

fn expiring(shown: Shown) -> Shown {
    Shown { ttl: true, ..shown }
}

/// `mkdir --ttl /v2/d/s` at 5, a key set in it at 6.
fn ttl_dir() -> DirLinHistory {
    let mut h = DirLinHistory::default();
    let s = expiring(shown("/v2/d/s", None, 5, 5));
    let mkdir = DirInput::Mkdir { ttl: true };
    record(&mut h, "/v2/d/s", mkdir, ok(5, Action::Create, s, None), 0);
    let c0 = shown("/v2/d/s/c0", Some("a"), 6, 6);
    record(&mut h, "/v2/d/s/c0", set("a"), ok(6, Action::Set, c0, None), 10);
    h
}

#[test]
fn an_expiry_removes_the_directory_and_what_is_below_it() {
    let mut h = ttl_dir();
    let gone = ok(
        7,
        Action::Expire,
        shown("/v2/d/s", None, 5, 7),
        Some(expiring(shown("/v2/d/s", None, 5, 5))),
    );
    h.expired("/v2/d/s", gone, 25);
    let get = DirInput::Get { recursive: false };
    record(
        &mut h,
        "/v2/d/s/c0",
        get,
        err(code::KEY_NOT_FOUND, "/v2/d/s", 7),
        30,
    );
    assert_eq!(h.check(10_000).violation, None);
    // A key below it still read after the expiry is not.
    let c0 = shown("/v2/d/s/c0", Some("a"), 6, 6);
    let get = DirInput::Get { recursive: false };
    record(&mut h, "/v2/d/s/c0", get, ok(7, Action::Get, c0, None), 40);
    assert!(h.check(10_000).violation.is_some());
}

#[test]
fn a_directory_whose_ttl_an_update_removed_never_expires() {
    let mut h = ttl_dir();
    let update = DirInput::UpdateDir {
        ttl: false,
        refresh: false,
    };
    let now = shown("/v2/d/s", None, 5, 7);
    let before = expiring(shown("/v2/d/s", None, 5, 5));
    record(
        &mut h,
        "/v2/d/s",
        update,
        ok(7, Action::Update, now, Some(before)),
        20,
    );
    let gone = ok(
        8,
        Action::Expire,
        shown("/v2/d/s", None, 5, 8),
        Some(shown("/v2/d/s", None, 5, 5)),
    );
    h.expired("/v2/d/s", gone, 35);
    let why = h.check(10_000).violation.expect("a violation");
    assert!(why.contains("a leader's sync"), "{why}");
}

#[test]
fn a_hidden_key_is_read_by_its_path_and_never_listed() {
    let mut h = DirLinHistory::default();
    let d = shown(DIR, None, 5, 5);
    record(
        &mut h,
        DIR,
        DirInput::Mkdir { ttl: false },
        ok(5, Action::Create, d.clone(), None),
        0,
    );
    let hidden = shown("/v2/d/_h", Some("a"), 6, 6);
    record(
        &mut h,
        "/v2/d/_h",
        set("a"),
        ok(6, Action::Set, hidden.clone(), None),
        10,
    );
    let get = DirInput::Get { recursive: false };
    record(
        &mut h,
        "/v2/d/_h",
        get,
        ok(6, Action::Get, hidden.clone(), None),
        20,
    );
    let get = DirInput::Get { recursive: true };
    record(&mut h, DIR, get.clone(), ok(6, Action::Get, d.clone(), None), 30);
    assert_eq!(h.check(10_000).violation, None);
    let listed = Shown {
        nodes: vec![hidden],
        ..d
    };
    record(&mut h, DIR, get, ok(6, Action::Get, listed, None), 40);
    assert!(h.check(10_000).violation.is_some());
}

fn ok(index: u64, action: Action, node: Shown, prev: Option<Shown>) -> DirOutput {
    DirOutput::Ok {
        index,
        action,
        node,
        prev,
    }
}

fn err(code: u32, cause: &str, index: u64) -> DirOutput {
    DirOutput::Err {
        code,
        cause: cause.to_string(),
        index,
    }
}

fn record(h: &mut DirLinHistory, path: &str, input: DirInput, output: DirOutput, t: u64) {
    let id = h.invoke(1, path, input, t);
    h.complete(id, output, t + 1);
}

fn set(value: &str) -> DirInput {
    DirInput::Set {
        value: value.to_string(),
    }
}

/// mkdir /v2/d at 5, set /v2/d/c0 at 6, then a recursive listing at 6.
fn filled() -> DirLinHistory {
    let mut h = DirLinHistory::default();
    record(
        &mut h,
        DIR,
        DirInput::Mkdir { ttl: false },
        ok(5, Action::Create, shown(DIR, None, 5, 5), None),
        0,
    );
    let c0 = shown("/v2/d/c0", Some("a"), 6, 6);
    record(
        &mut h,
        "/v2/d/c0",
        set("a"),
        ok(6, Action::Set, c0.clone(), None),
        10,
    );
    let listing = Shown {
        nodes: vec![c0],
        ..shown(DIR, None, 5, 5)
    };
    record(
        &mut h,
        DIR,
        DirInput::Get { recursive: true },
        ok(6, Action::Get, listing, None),
        20,
    );
    h
}

#[test]
fn a_directory_filled_listed_and_removed_passes() {
    let mut h = filled();
    record(&mut h, DIR, DirInput::Rmdir, err(code::DIR_NOT_EMPTY, DIR, 6), 30);
    let crossing = "/v2/d/c0/x";
    record(&mut h, crossing, set("b"), err(code::NOT_DIR, "/v2/d/c0", 6), 40);
    let gone = ok(
        7,
        Action::Delete,
        shown(DIR, None, 5, 7),
        Some(shown(DIR, None, 5, 5)),
    );
    record(&mut h, DIR, DirInput::DeleteAll, gone, 50);
    record(
        &mut h,
        "/v2/d/c0",
        DirInput::Get { recursive: false },
        err(code::KEY_NOT_FOUND, DIR, 7),
        60,
    );
    let report = h.check(10_000);
    assert_eq!(report.violation, None);
    assert_eq!(report.ops_checked, 7);
}

#[test]
fn removing_a_non_empty_directory_without_recursive_fails() {
    let mut h = filled();
    let gone = ok(
        7,
        Action::Delete,
        shown(DIR, None, 5, 7),
        Some(shown(DIR, None, 5, 5)),
    );
    record(&mut h, DIR, DirInput::Rmdir, gone, 30);
    let why = h.check(10_000).violation.expect("a violation");
    assert!(why.contains("Rmdir"), "{why}");
}

#[test]
fn a_listing_missing_a_child_fails() {
    let mut h = filled();
    let empty = shown(DIR, None, 5, 5);
    record(
        &mut h,
        DIR,
        DirInput::Get { recursive: true },
        ok(6, Action::Get, empty, None),
        30,
    );
    assert!(h.check(10_000).violation.is_some());
}

/// A POST to the queue whose answer was lost, then a recursive listing of the
/// queue at 12 showing one in-order key made at 9 holding `listed`.
fn lost_post_then_listing(listed: &str) -> DirLinHistory {
    let mut h = DirLinHistory::default();
    let q = "/v2/d/q";
    let post = DirInput::Post {
        value: "p".to_string(),
    };
    h.invoke(2, q, post, 0);
    let key = format!("{q}/{:020}", 9);
    let listing = Shown {
        nodes: vec![shown(&key, Some(listed), 9, 9)],
        ..shown(q, None, 9, 9)
    };
    let get = DirInput::Get { recursive: true };
    record(&mut h, q, get, ok(12, Action::Get, listing, None), 20);
    h
}

#[test]
fn a_lost_post_is_named_by_a_listing() {
    let mut h = lost_post_then_listing("p");
    let q = "/v2/d/q";
    record(&mut h, q, DirInput::Rmdir, err(code::DIR_NOT_EMPTY, q, 12), 30);
    assert_eq!(h.check(10_000).violation, None);
    // A key it could not have made (another value) is not it.
    let wrong = lost_post_then_listing("other");
    assert!(wrong.check(10_000).violation.is_some());
}

#[test]
fn a_crossing_error_must_name_the_file() {
    let mut h = DirLinHistory::default();
    let c0 = shown("/v2/d/c0", Some("a"), 6, 6);
    record(&mut h, "/v2/d/c0", set("a"), ok(6, Action::Set, c0, None), 0);
    record(
        &mut h,
        "/v2/d/c0/x",
        set("b"),
        err(code::KEY_NOT_FOUND, "/v2/d/c0/x", 6),
        10,
    );
    assert!(h.check(10_000).violation.is_some());
}
