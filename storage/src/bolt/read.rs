//! Reading a bbolt file: picks the newer valid meta page, then walks bucket trees
//! in key order. Every page id, element offset and length is checked against the
//! file before use, and tree depth is bounded, so damaged input is a
//! [`BoltError`], never a panic or a loop.

use super::{
    le_u16, le_u32, le_u64, BoltError, Meta, BUCKET_HEADER_BYTES, ELEMENT_HEADER_BYTES, FLAG_BRANCH,
    FLAG_LEAF, LEAF_FLAG_BUCKET, PAGE_BYTES, PAGE_HEADER_BYTES,
};

/// Deeper trees than this are taken for a cycle (a real tree of 4 KiB pages
/// holding 2^64 keys is far shallower).
const TREE_DEPTH_MAX: usize = 64;

/// Called with each key and value of a bucket.
pub type KeyVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), BoltError> + 'a;
/// Called with each leaf element's flags, key and value.
type ElementVisitor<'a> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), BoltError> + 'a;

/// A bbolt database held in memory; see the module doc.
#[derive(Debug)]
pub struct BoltReader {
    data: Vec<u8>,
    meta: Meta,
}

/// Where a bucket's tree lives.
#[derive(Clone, Copy, Debug)]
enum Tree<'a> {
    Page(u64),
    /// An inline bucket's one leaf page.
    Inline(&'a [u8]),
}

impl BoltReader {
    /// Checks the meta pages of `data`, a whole bbolt file.
    pub fn open(data: Vec<u8>) -> Result<BoltReader, BoltError> {
        let first = super::Meta::from_page(&data);
        let page_bytes = match &first {
            Ok(m) => m.page_bytes as usize,
            Err(_) => PAGE_BYTES,
        };
        let second = data
            .get(page_bytes..)
            .ok_or_else(|| BoltError::InvalidDatabase("file too small".into()))
            .and_then(|p| Meta::from_page(p).map_err(BoltError::InvalidDatabase));
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(BoltError::InvalidDatabase(e)),
        };
        if !meta.page_bytes.is_power_of_two() || !(512..=65536).contains(&meta.page_bytes) {
            return Err(BoltError::InvalidDatabase(format!(
                "page size {}",
                meta.page_bytes
            )));
        }
        let needed = meta.pages.checked_mul(u64::from(meta.page_bytes));
        if needed.is_none_or(|n| n > data.len() as u64) {
            return Err(BoltError::InvalidDatabase(format!(
                "file size {} holds fewer than the meta's {} pages",
                data.len(),
                meta.pages
            )));
        }
        Ok(BoltReader { data, meta })
    }

    /// The meta page in use.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The database's size as bbolt's `Tx.Size` reports it.
    pub fn size_bytes(&self) -> u64 {
        self.meta.pages * u64::from(self.meta.page_bytes)
    }

    /// The names of the buckets in the root bucket, in order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>, BoltError> {
        let mut names = Vec::new();
        self.walk(Tree::Page(self.meta.root), 0, &mut |flags, k, _| {
            if flags & LEAF_FLAG_BUCKET != 0 {
                names.push(k.to_vec());
            }
            Ok(())
        })?;
        Ok(names)
    }

    /// Calls `f(key, value)` for each key of the top-level bucket `name`, in key
    /// order (nested buckets are skipped); false if there is no such bucket. Keys
    /// out of order (a damaged page) are an error.
    pub fn for_each(&self, name: &[u8], f: &mut KeyVisitor<'_>) -> Result<bool, BoltError> {
        let Some(value) = self.bucket_value(name)? else {
            return Ok(false);
        };
        let tree = self.bucket_tree(&value)?;
        let mut last: Option<Vec<u8>> = None;
        self.walk(tree, 0, &mut |flags, k, v| {
            if last.as_deref().is_some_and(|l| l >= k) {
                return Err(BoltError::Corrupt(format!(
                    "keys out of order in bucket {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            last = Some(k.to_vec());
            if flags & LEAF_FLAG_BUCKET != 0 {
                return Ok(());
            }
            f(k, v)
        })?;
        Ok(true)
    }

    /// The value of `key` in bucket `name`, if both exist (a linear walk: for the
    /// small buckets such as `meta`).
    pub fn get(&self, name: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, BoltError> {
        let mut found = None;
        self.for_each(name, &mut |k, v| {
            if k == key {
                found = Some(v.to_vec());
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn bucket_value(&self, name: &[u8]) -> Result<Option<Vec<u8>>, BoltError> {
        let mut found = None;
        self.walk(Tree::Page(self.meta.root), 0, &mut |flags, k, v| {
            if flags & LEAF_FLAG_BUCKET != 0 && k == name {
                found = Some(v.to_vec());
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn bucket_tree<'a>(&self, value: &'a [u8]) -> Result<Tree<'a>, BoltError> {
        if value.len() < BUCKET_HEADER_BYTES {
            return Err(BoltError::Corrupt("bucket header too short".into()));
        }
        match le_u64(value, 0) {
            0 => Ok(Tree::Inline(&value[BUCKET_HEADER_BYTES..])),
            root => Ok(Tree::Page(root)),
        }
    }

    /// The bytes of page `id`, overflow pages included.
    fn page(&self, id: u64) -> Result<&[u8], BoltError> {
        let corrupt = |why: &str| BoltError::Corrupt(format!("page {id}: {why}"));
        if id < 2 || id >= self.meta.pages {
            return Err(corrupt("id outside the file"));
        }
        let size = u64::from(self.meta.page_bytes);
        let start = (id * size) as usize;
        let header = self
            .data
            .get(start..start + PAGE_HEADER_BYTES)
            .ok_or_else(|| corrupt("past the end"))?;
        let overflow = u64::from(le_u32(header, 12));
        if id + overflow >= self.meta.pages {
            return Err(corrupt("overflow past the end"));
        }
        let end = start + ((1 + overflow) * size) as usize;
        self.data.get(start..end).ok_or_else(|| corrupt("past the end"))
    }

    fn walk(&self, tree: Tree<'_>, depth: usize, f: &mut ElementVisitor<'_>) -> Result<(), BoltError> {
        if depth > TREE_DEPTH_MAX {
            return Err(BoltError::Corrupt("tree too deep (a cycle?)".into()));
        }
        let page = match tree {
            Tree::Page(id) => self.page(id)?,
            Tree::Inline(p) => p,
        };
        let corrupt = |why: String| BoltError::Corrupt(why);
        if page.len() < PAGE_HEADER_BYTES {
            return Err(corrupt("page header cut short".into()));
        }
        let flags = le_u16(page, 8);
        let count = usize::from(le_u16(page, 10));
        if PAGE_HEADER_BYTES + count * ELEMENT_HEADER_BYTES > page.len() {
            return Err(corrupt(format!("{count} elements do not fit their page")));
        }
        let slice = |h: usize, pos: u32, len: u32| -> Result<&[u8], BoltError> {
            let start = h.checked_add(pos as usize);
            let end = start.and_then(|s| s.checked_add(len as usize));
            match (start, end) {
                (Some(s), Some(e)) if e <= page.len() => Ok(&page[s..e]),
                _ => Err(BoltError::Corrupt("element outside its page".into())),
            }
        };
        for i in 0..count {
            let h = PAGE_HEADER_BYTES + i * ELEMENT_HEADER_BYTES;
            if flags & FLAG_LEAF != 0 {
                let eflags = le_u32(page, h);
                let pos = le_u32(page, h + 4);
                let ksize = le_u32(page, h + 8);
                let vsize = le_u32(page, h + 12);
                let key = slice(h, pos, ksize)?;
                let value = slice(h, pos.saturating_add(ksize), vsize)?;
                f(eflags, key, value)?;
            } else if flags & FLAG_BRANCH != 0 {
                if matches!(tree, Tree::Inline(_)) {
                    return Err(corrupt("branch page inline".into()));
                }
                let child = le_u64(page, h + 8);
                self.walk(Tree::Page(child), depth + 1, f)?;
            } else {
                return Err(corrupt(format!("unexpected page flags {flags:#x} in a tree")));
            }
        }
        Ok(())
    }
}
