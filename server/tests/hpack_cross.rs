//! server/src/hpack.rs against an independent HPACK implementation (loona-hpack): random
//! header lists encoded with loona's stateful encoder (dynamic table, eviction) or by hand
//! with Huffman strings, decoded by both decoders on one connection's worth of blocks.

use detcd_server::hpack::Decoder;

/// A small deterministic generator (the test needs variety, not quality).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
        from[(self.next() as usize) % from.len()]
    }
}

const NAMES: &[&[u8]] = &[
    b":authority",
    b":path",
    b"content-type",
    b"user-agent",
    b"grpc-timeout",
    b"x-a",
    b"x-long-custom-header",
    b"authorization",
];
const VALUES: &[&[u8]] = &[
    b"",
    b"127.0.0.1:2379",
    b"http://127.0.0.1:2379",
    b"/etcdserverpb.KV/Put",
    b"application/grpc",
    b"v",
];

fn value(rng: &mut Lcg) -> Vec<u8> {
    let mut v = rng.pick(VALUES).to_vec();
    // Sometimes long values, so the 4096-byte table evicts.
    if rng.next() % 4 == 0 {
        let n = (rng.next() % 900) as usize;
        v.extend(std::iter::repeat_n(b'a' + (rng.next() % 26) as u8, n));
    }
    v
}

fn ours(d: &mut Decoder, block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))
        .expect("our decoder accepts it");
    out
}

#[test]
fn blocks_from_loonas_encoder_decode_alike() {
    for seed in 1..=20u64 {
        let mut rng = Lcg(seed);
        let mut enc = loona_hpack::Encoder::new();
        let mut theirs = loona_hpack::Decoder::new();
        let mut mine = Decoder::new(4096);
        for block_no in 0..200 {
            let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..1 + rng.next() % 8)
                .map(|_| (rng.pick(NAMES).to_vec(), value(&mut rng)))
                .collect();
            let block = enc.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])));
            let want = theirs.decode(&block).expect("loona decodes its own block");
            assert_eq!(want, fields, "seed {seed} block {block_no}: loona's round trip");
            assert_eq!(ours(&mut mine, &block), want, "seed {seed} block {block_no}");
        }
    }
}

/// A string literal, Huffman-coded when `huffman`.
fn string(s: &[u8], huffman: bool) -> Vec<u8> {
    let body = if huffman {
        let mut h = Vec::new();
        httlib_huffman::encode(s, &mut h).expect("huffman");
        h
    } else {
        s.to_vec()
    };
    assert!(body.len() < 127, "short strings only");
    let mut out = vec![body.len() as u8 | if huffman { 0x80 } else { 0 }];
    out.extend(body);
    out
}

#[test]
fn huffman_strings_and_every_literal_kind_decode_alike() {
    let mut rng = Lcg(7);
    let mut theirs = loona_hpack::Decoder::new();
    let mut mine = Decoder::new(4096);
    for block_no in 0..500 {
        let mut block = Vec::new();
        for _ in 0..1 + rng.next() % 6 {
            let huffman = rng.next() % 2 == 0;
            let v: Vec<u8> = rng.pick(VALUES).iter().chain(b"-x").copied().collect();
            match rng.next() % 5 {
                // Literal with incremental indexing, new name.
                0 => {
                    block.push(0x40);
                    block.extend(string(rng.pick(NAMES), huffman));
                    block.extend(string(&v, huffman));
                }
                // Literal with incremental indexing, indexed name (static 1..=61).
                1 => {
                    block.push(0x40 | (1 + rng.next() % 61) as u8);
                    block.extend(string(&v, huffman));
                }
                // Without indexing / never indexed, indexed name.
                2 | 3 => {
                    let kind = if rng.next() % 2 == 0 { 0x00 } else { 0x10 };
                    block.push(kind | (1 + rng.next() % 14) as u8);
                    block.extend(string(&v, huffman));
                }
                // Indexed, from the static table.
                _ => block.push(0x80 | (1 + rng.next() % 61) as u8),
            }
        }
        let want = theirs.decode(&block).expect("loona decodes it");
        assert_eq!(ours(&mut mine, &block), want, "block {block_no}");
    }
}
