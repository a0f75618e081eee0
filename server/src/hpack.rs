//! HPACK (RFC 7541) as far as the `:authority` repair needs it: a decoder that follows a
//! client's dynamic table, and an encoder that writes plain literals and never indexes.
//!
//! Hand-written because the maintained HPACK crates do not fit a per-request path: loona-hpack
//! (and hpack, its ancestor) builds a hash map of the Huffman code for every Huffman-coded
//! string it decodes (half of the server's CPU under a Status load in a profile), and
//! httlib-hpack allocates and shifts its input for every field. The Huffman code itself
//! (RFC 7541 Appendix B) comes from `httlib_huffman`'s table; its decoder is not used, as
//! it accepts padding that is not the EOS prefix, which h2 refuses.
//!
//! Limits: the dynamic table never holds more than the size the decoder was allowed
//! ([`Decoder::new`]); integers above 2^28 and strings longer than the block are errors.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What makes a header block undecodable (RFC 7541: a COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer over 2^28.
    IntegerTooLarge,
    /// Index 0, or past the end of the tables.
    BadIndex,
    /// A Huffman string with an invalid code or padding.
    Huffman,
    /// A table size update above the allowed size.
    TableTooLarge,
    /// A table size update after a header field.
    LateSizeUpdate,
}

/// One entry of the dynamic table.
#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
}

impl Entry {
    /// RFC 7541 4.1: name and value lengths plus 32.
    fn size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}

/// The decoding side of one HTTP/2 connection's header compression.
#[derive(Debug)]
pub struct Decoder {
    /// Newest first: index 62 is `dynamic[0]`.
    dynamic: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// What the encoder may set the table size to (SETTINGS_HEADER_TABLE_SIZE).
    allowed: usize,
    /// Huffman-decoded name and value of the field being decoded.
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder whose table starts at, and may never exceed, `allowed` bytes.
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            dynamic: VecDeque::new(),
            size: 0,
            max_size: allowed,
            allowed,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Decodes one whole header block, calling `field` with each name and value in order.
    /// On an error the table may hold part of the block's insertions (as in any decoder:
    /// the connection is unusable after a compression error).
    pub fn decode(&mut self, block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> Result<(), DecodeError> {
        let mut at = 0;
        let mut seen_field = false;
        while at < block.len() {
            let first = block[at];
            if first & 0x80 != 0 {
                let (index, used) = integer(&block[at..], 7)?;
                at += used;
                let (name, value) = self.get(index)?;
                field(name, value);
            } else if first & 0xe0 == 0x20 {
                if seen_field {
                    return Err(DecodeError::LateSizeUpdate);
                }
                let (size, used) = integer(&block[at..], 5)?;
                at += used;
                if size > self.allowed {
                    return Err(DecodeError::TableTooLarge);
                }
                self.max_size = size;
                self.evict_to(size);
                continue;
            } else {
                // Literal: with incremental indexing (01), without (0000) or never (0001).
                let (insert, prefix) = if first & 0x40 != 0 { (true, 6) } else { (false, 4) };
                let (index, used) = integer(&block[at..], prefix)?;
                at += used;
                let name_literal = if index == 0 {
                    let (raw, huffman, used) = string(&block[at..])?;
                    at += used;
                    Some((raw, huffman))
                } else {
                    None
                };
                let (raw_value, value_huffman, used) = string(&block[at..])?;
                at += used;
                let value = decoded(raw_value, value_huffman, &mut self.value_buf)?;
                let name = match name_literal {
                    Some((raw, huffman)) => decoded(raw, huffman, &mut self.name_buf)?,
                    None => {
                        let (name, _) = get(&self.dynamic, index)?;
                        self.name_buf.clear();
                        self.name_buf.extend_from_slice(name);
                        &self.name_buf[..]
                    }
                };
                field(name, value);
                if insert {
                    let entry = Entry {
                        name: name.into(),
                        value: value.into(),
                    };
                    self.insert(entry);
                }
            }
            seen_field = true;
        }
        Ok(())
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        get(&self.dynamic, index)
    }

    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            // RFC 7541 4.4: a too-large entry empties the table and is not added.
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.dynamic.push_front(entry);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let gone = self
                .dynamic
                .pop_back()
                .expect("a table with a size holds entries");
            self.size -= gone.size();
        }
    }
}

/// Entry `index` of the static table (1..=61) or the dynamic one (62..).
fn get(dynamic: &VecDeque<Entry>, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    match index {
        0 => Err(DecodeError::BadIndex),
        1..=61 => Ok(STATIC_TABLE[index - 1]),
        _ => dynamic
            .get(index - 62)
            .map(|e| (&e.name[..], &e.value[..]))
            .ok_or(DecodeError::BadIndex),
    }
}

/// An integer with an `prefix`-bit prefix (RFC 7541 5.1) and the bytes it used.
fn integer(bytes: &[u8], prefix: u32) -> Result<(usize, usize), DecodeError> {
    let max = (1usize << prefix) - 1;
    let first = usize::from(*bytes.first().ok_or(DecodeError::Truncated)?) & max;
    if first < max {
        return Ok((first, 1));
    }
    let mut value = max;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        let shift = 7 * (i - 1);
        if shift > 21 {
            return Err(DecodeError::IntegerTooLarge);
        }
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(DecodeError::Truncated)
}

/// A string literal (RFC 7541 5.2): its raw bytes, whether they are Huffman-coded, and the
/// bytes it used.
fn string(bytes: &[u8]) -> Result<(&[u8], bool, usize), DecodeError> {
    let huffman = bytes.first().ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let (len, used) = integer(bytes, 7)?;
    let raw = bytes.get(used..used + len).ok_or(DecodeError::Truncated)?;
    Ok((raw, huffman, used + len))
}

/// `raw` itself, or its Huffman decoding in `buf`.
fn decoded<'a>(raw: &'a [u8], huffman: bool, buf: &'a mut Vec<u8>) -> Result<&'a [u8], DecodeError> {
    if !huffman {
        return Ok(raw);
    }
    buf.clear();
    huffman_decode(raw, buf)?;
    Ok(&buf[..])
}

/// A node of the Huffman decoding tree: for a 0 bit and a 1 bit, the next node, or a
/// symbol when the child is `LEAF | symbol`.
type Node = [u16; 2];
const LEAF: u16 = 0x8000;
const EOS: u16 = 256;

/// The decoding tree of the HPACK Huffman code, built once from its code table.
fn huffman_tree() -> &'static [Node] {
    static TREE: OnceLock<Vec<Node>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut nodes: Vec<Node> = vec![[0, 0]];
        for (symbol, &(len, code)) in httlib_huffman::encoder::table::ENCODE_TABLE.iter().enumerate() {
            let mut node = 0usize;
            for bit in (0..len).rev() {
                let b = ((code >> bit) & 1) as usize;
                if bit == 0 {
                    nodes[node][b] = LEAF | symbol as u16;
                } else {
                    if nodes[node][b] == 0 {
                        nodes.push([0, 0]);
                        nodes[node][b] = (nodes.len() - 1) as u16;
                    }
                    node = usize::from(nodes[node][b]);
                }
            }
        }
        nodes
    })
}

/// Decodes a Huffman-coded string (RFC 7541 5.2): an invalid code, the EOS symbol, or
/// padding longer than 7 bits or not all ones is an error.
fn huffman_decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let tree = huffman_tree();
    let mut node = 0usize;
    let (mut depth, mut all_ones) = (0u32, true);
    for &byte in raw {
        for bit in (0..8).rev() {
            let b = usize::from((byte >> bit) & 1);
            let next = tree[node][b];
            depth += 1;
            all_ones &= b == 1;
            if next & LEAF != 0 {
                let symbol = next & !LEAF;
                if symbol == EOS {
                    return Err(DecodeError::Huffman);
                }
                out.push(symbol as u8);
                node = 0;
                depth = 0;
                all_ones = true;
            } else if next == 0 {
                return Err(DecodeError::Huffman);
            } else {
                node = usize::from(next);
            }
        }
    }
    if depth > 7 || !all_ones {
        return Err(DecodeError::Huffman);
    }
    Ok(())
}

/// Appends a field as a literal that is never added to a table: its name by static index
/// when the static table has it, its value as plain octets.
pub fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match STATIC_TABLE.iter().position(|(n, _)| *n == name) {
        Some(i) => encode_integer(out, 0x00, 4, i + 1),
        None => {
            out.push(0x00);
            encode_integer(out, 0x00, 7, name.len());
            out.extend_from_slice(name);
        }
    }
    encode_integer(out, 0x00, 7, value.len());
    out.extend_from_slice(value);
}

/// Appends a dynamic table size update to `size`.
pub fn encode_size_update(out: &mut Vec<u8>, size: usize) {
    encode_integer(out, 0x20, 5, size);
}

/// Appends an integer with a `prefix`-bit prefix whose higher bits are `mask`.
fn encode_integer(out: &mut Vec<u8>, mask: u8, prefix: u32, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(mask | value as u8);
        return;
    }
    out.push(mask | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Result<Fields, DecodeError> {
        let mut out = Vec::new();
        d.decode(block, |n, v| out.push((n.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    #[test]
    fn integers_round_trip_at_every_prefix() {
        for prefix in 1..=8u32 {
            for value in [0, 1, 30, 31, 127, 128, 255, 4096, 1 << 20, (1 << 28) - 1] {
                let mut out = Vec::new();
                encode_integer(&mut out, 0, prefix, value);
                assert_eq!(integer(&out, prefix), Ok((value, out.len())), "{prefix} {value}");
            }
        }
        assert_eq!(
            integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(DecodeError::IntegerTooLarge)
        );
        assert_eq!(integer(&[0x1f, 0x80], 5), Err(DecodeError::Truncated));
    }

    #[test]
    fn literals_encode_and_decode() {
        let mut block = Vec::new();
        encode_size_update(&mut block, 0);
        encode_literal(&mut block, b":authority", b"127.0.0.1:2379");
        encode_literal(&mut block, b"x-custom", b"v");
        let mut d = Decoder::new(4096);
        let fields = decode_all(&mut d, &block).expect("decodes");
        assert_eq!(
            fields,
            vec![
                (b":authority".to_vec(), b"127.0.0.1:2379".to_vec()),
                (b"x-custom".to_vec(), b"v".to_vec())
            ]
        );
        assert!(d.dynamic.is_empty());
    }

    #[test]
    fn errors() {
        let mut d = Decoder::new(4096);
        assert_eq!(decode_all(&mut d, &[0x80]), Err(DecodeError::BadIndex));
        assert_eq!(decode_all(&mut d, &[0xbe]), Err(DecodeError::BadIndex));
        assert_eq!(
            decode_all(&mut d, &[0x3f, 0xe2, 0x1f]),
            Err(DecodeError::TableTooLarge)
        );
        assert_eq!(
            decode_all(&mut d, &[0x82, 0x20]),
            Err(DecodeError::LateSizeUpdate)
        );
        assert_eq!(
            decode_all(&mut d, &[0x04, 0x05, b'/']),
            Err(DecodeError::Truncated)
        );
        // A Huffman string whose padding is not the EOS prefix (all zero bits).
        assert_eq!(decode_all(&mut d, &[0x04, 0x81, 0x00]), Err(DecodeError::Huffman));
    }

    #[test]
    fn huffman_round_trips_and_strict_padding() {
        let samples: [&[u8]; 5] = [
            b"",
            b"127.0.0.1:2379",
            b"http://example.com/a?b#c",
            b"\x00\xff~",
            &[0, 1, 255, 128, 10],
        ];
        for s in samples {
            let mut coded = Vec::new();
            httlib_huffman::encode(s, &mut coded).expect("encodes");
            let mut out = Vec::new();
            huffman_decode(&coded, &mut out).expect("decodes");
            assert_eq!(out, s);
        }
        // '0' is 00000: three zero bits of padding, then eight ones of padding.
        assert_eq!(
            huffman_decode(&[0x00], &mut Vec::new()),
            Err(DecodeError::Huffman)
        );
        assert_eq!(
            huffman_decode(&[0x07, 0xff], &mut Vec::new()),
            Err(DecodeError::Huffman)
        );
        assert_eq!(huffman_decode(&[0x07], &mut Vec::new()), Ok(()));
        // EOS (30 ones) inside a string.
        assert_eq!(
            huffman_decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(DecodeError::Huffman)
        );
    }
}
