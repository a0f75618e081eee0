//! Writing a bbolt file in one pass: buckets are bulk loaded from keys in
//! ascending order, bottom-up (leaf pages as they fill, then the branch levels
//! above them), each page written once at the next page id. The meta pages and the
//! (empty) freelist at the front of the file are written last, which is why the
//! output must be seekable: a file, or a `Cursor` for small databases.
//!
//! Memory is bounded by one leaf page plus one (key, page id) per page of the
//! bucket being written, whatever the size of the values.

use std::io::{self, Seek, SeekFrom, Write};

use super::{
    put_page_header, Meta, BUCKET_HEADER_BYTES, ELEMENT_HEADER_BYTES, FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF,
    LEAF_FLAG_BUCKET, PAGE_BYTES, PAGE_HEADER_BYTES,
};

/// Page ids: 0 and 1 meta, 2 the freelist; data starts at 3.
const FREELIST_PAGE: u64 = 2;
const FIRST_DATA_PAGE: u64 = 3;
/// bbolt stores a bucket inline when its one leaf fits in a quarter page.
const INLINE_BYTES_MAX: usize = PAGE_BYTES / 4;

/// Writes one bbolt database; see the module doc.
#[derive(Debug)]
pub struct BoltWriter<W: Write + Seek> {
    out: W,
    next_page: u64,
    /// Finished buckets: (name, value in the root bucket), in the order written.
    buckets: Vec<(Vec<u8>, Vec<u8>)>,
    /// The bucket being written: its name and tree.
    open: Option<(Vec<u8>, TreeBuilder)>,
    written_bytes: u64,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

impl<W: Write + Seek> BoltWriter<W> {
    /// Starts a database in `out`, which must be empty.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.seek(SeekFrom::Start(FIRST_DATA_PAGE * PAGE_BYTES as u64))?;
        Ok(BoltWriter {
            out,
            next_page: FIRST_DATA_PAGE,
            buckets: Vec::new(),
            open: None,
            written_bytes: 0,
        })
    }

    /// Starts the bucket `name` in the root bucket; its keys follow with
    /// [`BoltWriter::put`] in ascending order, then [`BoltWriter::end_bucket`].
    /// Bucket names must be unique (they are sorted when the file is finished).
    pub fn begin_bucket(&mut self, name: &[u8]) -> io::Result<()> {
        if self.open.is_some() {
            return Err(invalid("a bucket is already open"));
        }
        self.open = Some((name.to_vec(), TreeBuilder::default()));
        Ok(())
    }

    /// Adds `key` with `value` to the open bucket; keys must come in strictly
    /// ascending order.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let (name, mut tree) = self.open.take().ok_or_else(|| invalid("no bucket is open"))?;
        let done = tree.push(self, 0, key, value);
        self.open = Some((name, tree));
        done
    }

    /// Ends the open bucket: inline if small, else on its own pages.
    pub fn end_bucket(&mut self) -> io::Result<()> {
        let (name, tree) = self.open.take().ok_or_else(|| invalid("no bucket is open"))?;
        let value = match tree.inline_page() {
            Some(page) => {
                let mut value = vec![0u8; BUCKET_HEADER_BYTES];
                value.extend_from_slice(&page);
                value
            }
            None => {
                let root = tree.finish_on_pages(self)?;
                let mut value = root.to_le_bytes().to_vec();
                value.extend_from_slice(&0u64.to_le_bytes());
                value
            }
        };
        self.buckets.push((name, value));
        Ok(())
    }

    /// Writes a whole bucket from `(key, value)` pairs in ascending key order.
    pub fn bucket<'k>(
        &mut self,
        name: &[u8],
        keys: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
    ) -> io::Result<()> {
        self.begin_bucket(name)?;
        for (k, v) in keys {
            self.put(k, v)?;
        }
        self.end_bucket()
    }

    /// Bytes of pages written so far.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Writes the root bucket, the freelist and both meta pages; returns the
    /// output and the file's size in bytes.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.open.is_some() {
            return Err(invalid("a bucket is still open"));
        }
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        if buckets.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bucket written twice",
            ));
        }
        let mut root = TreeBuilder::default();
        for (name, value) in &buckets {
            root.push(&mut self, LEAF_FLAG_BUCKET, name, value)?;
        }
        let root_page = root.finish_on_pages(&mut self)?;
        let pages = self.next_page;
        let mut freelist = vec![0u8; PAGE_BYTES];
        put_page_header(&mut freelist, FREELIST_PAGE, FLAG_FREELIST, 0, 0);
        self.out.seek(SeekFrom::Start(0))?;
        for txid in [0u64, 1] {
            let meta = Meta {
                page_bytes: PAGE_BYTES as u32,
                root: root_page,
                root_sequence: 0,
                freelist: FREELIST_PAGE,
                pages,
                txid,
            };
            self.out.write_all(&meta.to_page(txid))?;
        }
        self.out.write_all(&freelist)?;
        self.out.seek(SeekFrom::Start(pages * PAGE_BYTES as u64))?;
        self.out.flush()?;
        Ok((self.out, pages * PAGE_BYTES as u64))
    }

    /// Writes `page` (whole pages, header in place) at the next page id.
    fn write_page(&mut self, page: &mut Vec<u8>) -> io::Result<u64> {
        let id = self.next_page;
        let pages = page.len().div_ceil(PAGE_BYTES).max(1);
        page.resize(pages * PAGE_BYTES, 0);
        page[0..8].copy_from_slice(&id.to_le_bytes());
        page[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        self.out.write_all(page)?;
        self.next_page += pages as u64;
        self.written_bytes += page.len() as u64;
        Ok(id)
    }
}

/// One B+tree being bulk loaded: the leaf being filled and, per level, the first
/// key and page id of each page written (the next level's elements).
#[derive(Debug, Default)]
struct TreeBuilder {
    leaf: Vec<(u32, Vec<u8>, Vec<u8>)>,
    leaf_bytes: usize,
    children: Vec<(Vec<u8>, u64)>,
    last_key: Option<Vec<u8>>,
}

impl TreeBuilder {
    fn push<W: Write + Seek>(
        &mut self,
        writer: &mut BoltWriter<W>,
        flags: u32,
        key: &[u8],
        value: &[u8],
    ) -> io::Result<()> {
        if key.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty key"));
        }
        if self.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "keys out of order"));
        }
        self.last_key = Some(key.to_vec());
        let bytes = ELEMENT_HEADER_BYTES + key.len() + value.len();
        if !self.leaf.is_empty()
            && (PAGE_HEADER_BYTES + self.leaf_bytes + bytes > PAGE_BYTES
                || self.leaf.len() == usize::from(u16::MAX))
        {
            self.flush_leaf(writer)?;
        }
        self.leaf.push((flags, key.to_vec(), value.to_vec()));
        self.leaf_bytes += bytes;
        Ok(())
    }

    fn flush_leaf<W: Write + Seek>(&mut self, writer: &mut BoltWriter<W>) -> io::Result<()> {
        let mut page = leaf_page(&self.leaf);
        let first = self.leaf[0].1.clone();
        let id = writer.write_page(&mut page)?;
        self.children.push((first, id));
        self.leaf.clear();
        self.leaf_bytes = 0;
        Ok(())
    }

    /// The tree as one inline leaf page, if nothing went to pages and it is small.
    fn inline_page(&self) -> Option<Vec<u8>> {
        if !self.children.is_empty() || PAGE_HEADER_BYTES + self.leaf_bytes > INLINE_BYTES_MAX {
            return None;
        }
        let mut page = leaf_page(&self.leaf);
        page.truncate(PAGE_HEADER_BYTES + self.leaf_bytes);
        Some(page)
    }

    /// Writes what is left and the branch levels; returns the root page id.
    fn finish_on_pages<W: Write + Seek>(mut self, writer: &mut BoltWriter<W>) -> io::Result<u64> {
        if !self.leaf.is_empty() || self.children.is_empty() {
            if self.leaf.is_empty() {
                let mut page = leaf_page(&[]);
                let id = writer.write_page(&mut page)?;
                return Ok(id);
            }
            self.flush_leaf(writer)?;
        }
        let mut level = self.children;
        while level.len() > 1 {
            let mut next = Vec::new();
            let mut start = 0;
            while start < level.len() {
                let mut end = start;
                let mut bytes = PAGE_HEADER_BYTES;
                while end < level.len() {
                    let b = ELEMENT_HEADER_BYTES + level[end].0.len();
                    if end > start && (bytes + b > PAGE_BYTES || end - start == usize::from(u16::MAX)) {
                        break;
                    }
                    bytes += b;
                    end += 1;
                }
                let mut page = branch_page(&level[start..end]);
                let id = writer.write_page(&mut page)?;
                next.push((level[start].0.clone(), id));
                start = end;
            }
            level = next;
        }
        Ok(level[0].1)
    }
}

/// A leaf page image (id and overflow filled in when written).
fn leaf_page(elements: &[(u32, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let data: usize = elements.iter().map(|(_, k, v)| k.len() + v.len()).sum();
    let headers = PAGE_HEADER_BYTES + elements.len() * ELEMENT_HEADER_BYTES;
    let mut page = vec![0u8; headers + data];
    put_page_header(&mut page, 0, FLAG_LEAF, elements.len() as u16, 0);
    let mut at = headers;
    for (i, (flags, k, v)) in elements.iter().enumerate() {
        let h = PAGE_HEADER_BYTES + i * ELEMENT_HEADER_BYTES;
        page[h..h + 4].copy_from_slice(&flags.to_le_bytes());
        page[h + 4..h + 8].copy_from_slice(&((at - h) as u32).to_le_bytes());
        page[h + 8..h + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
        page[h + 12..h + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
        page[at..at + k.len()].copy_from_slice(k);
        at += k.len();
        page[at..at + v.len()].copy_from_slice(v);
        at += v.len();
    }
    page
}

/// A branch page image over children (first key, page id).
fn branch_page(children: &[(Vec<u8>, u64)]) -> Vec<u8> {
    let data: usize = children.iter().map(|(k, _)| k.len()).sum();
    let headers = PAGE_HEADER_BYTES + children.len() * ELEMENT_HEADER_BYTES;
    let mut page = vec![0u8; headers + data];
    put_page_header(&mut page, 0, FLAG_BRANCH, children.len() as u16, 0);
    let mut at = headers;
    for (i, (k, id)) in children.iter().enumerate() {
        let h = PAGE_HEADER_BYTES + i * ELEMENT_HEADER_BYTES;
        page[h..h + 4].copy_from_slice(&((at - h) as u32).to_le_bytes());
        page[h + 4..h + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
        page[h + 8..h + 16].copy_from_slice(&id.to_le_bytes());
        page[at..at + k.len()].copy_from_slice(k);
        at += k.len();
    }
    page
}
