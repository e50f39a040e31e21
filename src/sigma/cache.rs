//! A cache of parsed rule files: a start-up or a reload decodes the rules
//! that did not change instead of parsing their YAML again.
//!
//! Scanning YAML is about half of loading the SigmaHQ corpus (3,700 files),
//! the largest part of a start-up. The cache stores each file's parse
//! result under its path and a 128-bit hash of its text. A file is always
//! read; when its text hashes as stored, its result is decoded, else it is
//! parsed. What follows the parse (ids, filters, compiling) runs as without
//! a cache, so a cached load and a parse give the same rules, problems and
//! warnings.
//!
//! A cache belongs to one build of tocsin (its version and the size and
//! modification time of its executable) and one set of rule limits, which
//! shape parse results. There is one cache file per set of rule paths and
//! limits; another build finds it stale and replaces it, so upgrades do not
//! pile up caches. A missing, unreadable, corrupt or stale cache, or entry,
//! is a miss: the file is parsed. Nothing in it is trusted beyond what a
//! parse would give.
//!
//! The framing is written by hand (length-prefixed fields), so that each
//! entry decodes on its own, in parallel, and a damaged entry only misses
//! itself; each entry's content is `postcard`.

use super::limits::RuleLimits;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The first bytes of a cache file; the number is the framing's version.
const MAGIC: &[u8; 8] = b"tocsinR1";

/// A cache file larger than this is not read (it is not one of ours).
const MAX_CACHE_BYTES: u64 = 1 << 30;

/// A rule file's text hash: two 64-bit hashes under different seeds.
pub(crate) type TextHash = [u64; 2];

/// The hash of a rule file's text, as the cache keys it.
pub(crate) fn text_hash(text: &str) -> TextHash {
    text_hash_bytes(text.as_bytes())
}

/// Where a rule file's entry is, and what it must match.
#[derive(Debug)]
struct Stored {
    text: TextHash,
    /// The entry's own hash: a damaged entry is a miss, never a different result.
    checksum: u64,
    range: Range<usize>,
}

/// The parse results a previous load stored, for one set of rule paths.
#[derive(Debug)]
pub(crate) struct RuleCache {
    /// The cache file.
    file: PathBuf,
    /// What identifies this build and these limits; a file with another
    /// header is not read.
    header: Vec<u8>,
    /// The file as read (empty when there was none or it did not match).
    data: Vec<u8>,
    /// Rule file -> its text hash, its entry's checksum and where the
    /// entry is in `data`.
    entries: HashMap<PathBuf, Stored>,
}

impl RuleCache {
    /// The cache in `dir` for loading `roots` with `limits`; empty when there
    /// is none yet, or it cannot be used. `None` when this build cannot be
    /// identified (its executable is unknown), so no cache is safe to use.
    pub(crate) fn open(dir: &Path, roots: &[&Path], limits: &RuleLimits) -> Option<RuleCache> {
        let header = header(limits)?;
        // Named by what it is for (rule paths and limits), not by the build:
        // a new build replaces its predecessor's cache instead of adding one.
        let mut key = postcard::to_stdvec(limits).ok()?;
        for root in roots {
            key.extend_from_slice(root.as_os_str().as_encoded_bytes());
            key.push(0);
        }
        let [a, b] = text_hash_bytes(&key);
        let file = dir.join(format!("rules-{a:016x}{b:016x}.bin"));
        let mut cache = RuleCache {
            file,
            header,
            data: Vec::new(),
            entries: HashMap::new(),
        };
        match read_limited(&cache.file) {
            Ok(Some(data)) => {
                cache.data = data;
                if let Some(entries) = parse_frame(&cache.data, &cache.header) {
                    cache.entries = entries;
                } else {
                    tracing::debug!(file = %cache.file.display(), "rule cache is stale or damaged; rules are parsed");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(file = %cache.file.display(), error = %e, "rule cache not read; rules are parsed")
            }
        }
        Some(cache)
    }

    /// The stored entry for `file` when its text hashed as `hash`.
    pub(crate) fn entry(&self, file: &Path, hash: TextHash) -> Option<&[u8]> {
        let stored = self.entries.get(file)?;
        let entry = self.data.get(stored.range.clone())?;
        (stored.text == hash && checksum(entry) == stored.checksum).then_some(entry)
    }

    /// How many rule files the cache holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Replaces the cache with `entries` (file, text hash, encoded result).
    /// Written to a temporary file and renamed, so a reader never sees half
    /// of it and concurrent writers leave one whole cache.
    pub(crate) fn store<'a>(
        &self,
        entries: impl Iterator<Item = (&'a Path, TextHash, &'a [u8])>,
    ) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(self.data.len().max(1 << 20));
        out.extend_from_slice(MAGIC);
        push_field(&mut out, &self.header)?;
        for (file, [a, b], entry) in entries {
            push_field(&mut out, file.as_os_str().as_encoded_bytes())?;
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&checksum(entry).to_le_bytes());
            push_field(&mut out, entry)?;
        }
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .file
            .with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, &self.file).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The cache file.
    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

/// What a cache written by this build with `limits` starts with; `None`
/// when the executable cannot be looked at.
fn header(limits: &RuleLimits) -> Option<Vec<u8>> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(exe).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let build = (
        env!("CARGO_PKG_VERSION"),
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos(),
    );
    postcard::to_stdvec(&(build, limits)).ok()
}

/// Fixed seeds: the hash must be the same in the next process. The cache
/// belongs to one build, so the hasher cannot change under it.
fn text_hash_bytes(bytes: &[u8]) -> TextHash {
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344]
        .map(|seed| foldhash::quality::FixedState::with_seed(seed).hash_one(bytes))
}

fn checksum(entry: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(0xa409_3822_299f_31d0).hash_one(entry)
}

/// The file's bytes, `None` when it does not exist.
fn read_limited(file: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(meta) if meta.len() > MAX_CACHE_BYTES => Err(std::io::Error::other(format!(
            "{} bytes, more than a rule cache holds",
            meta.len()
        ))),
        Ok(_) => std::fs::read(file).map(Some),
    }
}

/// Appends a length (u32, little-endian) and the bytes.
fn push_field(out: &mut Vec<u8>, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::other("a rule cache entry over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reads a cache file's entries; `None` when it is damaged or its header
/// is not `header`.
fn parse_frame(data: &[u8], header: &[u8]) -> Option<HashMap<PathBuf, Stored>> {
    let mut at = MAGIC.len();
    if data.get(..at)? != MAGIC {
        return None;
    }
    if data.get(field(data, &mut at)?)? != header {
        return None;
    }
    let mut entries = HashMap::new();
    while at < data.len() {
        let name = data.get(field(data, &mut at)?)?;
        let file = PathBuf::from(std::str::from_utf8(name).ok()?);
        let a = u64::from_le_bytes(data.get(at..at.checked_add(8)?)?.try_into().ok()?);
        let b = u64::from_le_bytes(data.get(at + 8..at.checked_add(16)?)?.try_into().ok()?);
        let checksum = u64::from_le_bytes(data.get(at + 16..at.checked_add(24)?)?.try_into().ok()?);
        at += 24;
        let range = field(data, &mut at)?;
        let text = [a, b];
        entries.insert(
            file,
            Stored {
                text,
                checksum,
                range,
            },
        );
    }
    Some(entries)
}

/// The range of the length-prefixed field at `*at`, moving `*at` past it;
/// `None` when it runs past the end.
fn field(data: &[u8], at: &mut usize) -> Option<Range<usize>> {
    let len_end = at.checked_add(4)?;
    let len = u32::from_le_bytes(data.get(*at..len_end)?.try_into().ok()?) as usize;
    let end = len_end.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    *at = end;
    Some(len_end..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_in(dir: &Path) -> RuleCache {
        RuleCache::open(dir, &[Path::new("rules")], &RuleLimits::default())
            .expect("a test binary has an executable")
    }

    #[test]
    fn stored_entries_are_found_by_path_and_text_hash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        assert!(cache.entry(Path::new("a.yml"), text_hash("x")).is_none());
        let entries = [(Path::new("a.yml"), text_hash("x"), &b"parsed a"[..])];
        cache.store(entries.into_iter()).unwrap();
        let cache = cache_in(dir.path());
        assert_eq!(
            cache.entry(Path::new("a.yml"), text_hash("x")),
            Some(&b"parsed a"[..])
        );
        // Another text of the same file, or another file, is a miss.
        assert!(cache.entry(Path::new("a.yml"), text_hash("y")).is_none());
        assert!(cache.entry(Path::new("b.yml"), text_hash("x")).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn other_limits_or_roots_use_another_cache_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = cache_in(dir.path());
        let strict = RuleLimits {
            max_rule_file_bytes: 10,
            ..RuleLimits::default()
        };
        let b = RuleCache::open(dir.path(), &[Path::new("rules")], &strict).unwrap();
        let c = RuleCache::open(dir.path(), &[Path::new("other")], &RuleLimits::default()).unwrap();
        assert_ne!(a.path(), b.path());
        assert_ne!(a.path(), c.path());
    }

    #[test]
    fn a_damaged_cache_file_is_a_miss_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        let entries = [
            (Path::new("a.yml"), text_hash("x"), &b"parsed a"[..]),
            (Path::new("b.yml"), text_hash("y"), &b"parsed b"[..]),
        ];
        cache.store(entries.into_iter()).unwrap();
        let whole = std::fs::read(cache.path()).unwrap();
        // Every truncation, and a flipped byte at every position, either
        // misses or finds exactly what was stored.
        let stored = [
            ("a.yml", "x", &b"parsed a"[..]),
            ("b.yml", "y", &b"parsed b"[..]),
        ];
        let check = |what: &str| {
            let read = cache_in(dir.path());
            for (file, text, entry) in stored {
                if let Some(found) = read.entry(Path::new(file), text_hash(text)) {
                    assert_eq!(found, entry, "{what}");
                }
            }
        };
        for cut in 0..whole.len() {
            std::fs::write(cache.path(), &whole[..cut]).unwrap();
            check(&format!("cut at {cut}"));
        }
        for at in 0..whole.len() {
            let mut damaged = whole.clone();
            damaged[at] ^= 0x5a;
            std::fs::write(cache.path(), &damaged).unwrap();
            check(&format!("flip at {at}"));
        }
    }
}
