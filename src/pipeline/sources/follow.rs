//! Following files as `tail -F` and Vector's file source do: new lines are
//! read as they are written, rotation by rename-and-create and by
//! copy-truncate is handled, globs pick up new files, and each line
//! carries its file's position for the checkpoint ([`super::positions`]).
//!
//! Polling, not file-system notifications: a stat and a read per file
//! every [`POLL`] cost nothing next to detection, work the same on every
//! file system (NFS, overlay, bind mounts in containers), and cannot miss
//! an event the way an overflowing inotify queue can.
//!
//! - A file is known while running by its device and inode, and across
//!   restarts by the [`Fingerprint`] of its beginning.
//! - Rename-and-create: the old file, found under no watched path or
//!   another one, is read to its end, then closed after [`ROTATED_GRACE`]
//!   without new lines; the new file at the path is read from its start.
//! - Copy-truncate: a file shorter than its position, or whose beginning
//!   changed, is read again from its start; its copy, when a pattern
//!   matches it, resumes where the original had been read to.
//! - A line is read only once it is complete (ends with `\n`), except the
//!   last line of a rotated file, which is read as it is when closed.

use super::config::{Follow, ReadFrom};
use super::file::{read_line, LineRead};
use super::positions::{FileKey, FileMark, FilePosition, Fingerprint};
use super::{Batcher, Feed, Record, RecordFault, SourceError};
use crate::pipeline::Shutdown;
use flate2::read::MultiGzDecoder;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the reader sleeps when every file is at its end.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How often paths and globs are expanded again, for new and rotated files.
pub(crate) const RESCAN: Duration = Duration::from_secs(1);
/// A rotated file is closed once it has had no new line for this long: the
/// program writing it may add a few lines before it reopens its log.
pub(crate) const ROTATED_GRACE: Duration = Duration::from_secs(5);
/// Lines read from one file before the next file has its turn.
const LINES_PER_TURN: usize = 4096;

/// What a followed file source reads.
#[derive(Debug, Clone)]
pub struct FollowedFiles {
    /// Index of the source in the pipeline's source list.
    pub source: usize,
    /// The source's name: positions are saved under it.
    pub name: String,
    /// Paths and globs.
    pub patterns: Vec<String>,
    /// Where new files start, and whether positions are marked.
    pub follow: Follow,
    /// Positions saved by an earlier run, by fingerprint.
    pub saved: BTreeMap<Fingerprint, FilePosition>,
    /// Longest line held in memory.
    pub max_record_bytes: usize,
}

/// Follows the files until shutdown. Runs on a blocking thread. A file that
/// fails to be read is closed, logged and returned as an error; the others
/// are still followed.
pub fn follow_files(
    files: FollowedFiles,
    tx: mpsc::Sender<Feed>,
    shutdown: Shutdown,
) -> Vec<SourceError> {
    let mut out = Batcher::new(files.source, tx);
    let mut follower = Follower::new(files);
    let mut last_scan: Option<Instant> = None;
    loop {
        if shutdown.is_triggered() {
            out.send();
            return follower.errors;
        }
        if last_scan.is_none_or(|t| t.elapsed() >= RESCAN) {
            follower.discover(last_scan.is_none());
            last_scan = Some(Instant::now());
        }
        let Some(read) = follower.read_all(&mut out) else {
            return follower.errors;
        };
        if !out.send() {
            return follower.errors;
        }
        if read == 0 {
            std::thread::sleep(POLL);
        }
    }
}

/// A file being followed.
struct Tracked {
    /// Device and inode: who the file is while it is open.
    id: (u64, u64),
    path: PathBuf,
    /// The path as records name it.
    shown: Arc<str>,
    /// `None` until the file has a beginning to fingerprint (a new empty
    /// file, or one just truncated).
    key: Option<Arc<FileKey>>,
    reader: Reader,
    position: FilePosition,
    /// Its path now names another file, or nothing.
    rotated: bool,
    /// When it last gave a line (or was opened).
    last_line: Instant,
    /// A gzip file read to its end: it does not grow.
    finished: bool,
}

enum Reader {
    Plain(BufReader<File>),
    Gzip(Box<BufReader<MultiGzDecoder<File>>>),
}

impl Reader {
    fn buffered(&mut self) -> &mut dyn BufRead {
        match self {
            Reader::Plain(r) => r,
            Reader::Gzip(r) => r.as_mut(),
        }
    }
}

struct Follower {
    source: usize,
    name: String,
    patterns: Vec<String>,
    follow: Follow,
    max: usize,
    /// Positions by fingerprint of files not open now: saved by an earlier
    /// run, or let go by this one (rotated away, truncated, failed).
    known: BTreeMap<Fingerprint, FilePosition>,
    files: Vec<Tracked>,
    /// Patterns reported as matching nothing (said once, not every rescan).
    waiting: BTreeSet<String>,
    /// Windows event log files met and not followed (said once).
    evtx: BTreeSet<PathBuf>,
    errors: Vec<SourceError>,
    buf: Vec<u8>,
}

impl Follower {
    fn new(files: FollowedFiles) -> Follower {
        Follower {
            source: files.source,
            name: files.name,
            patterns: files.patterns,
            follow: files.follow,
            max: files.max_record_bytes,
            known: files.saved,
            files: Vec::new(),
            waiting: BTreeSet::new(),
            evtx: BTreeSet::new(),
            errors: Vec::new(),
            buf: Vec::with_capacity(256),
        }
    }

    /// Expands the patterns: opens new files, notes renamed and rotated
    /// ones, and checks open files for truncation.
    fn discover(&mut self, startup: bool) {
        let mut seen = HashSet::new();
        for path in self.expand() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            seen.insert(id);
            if let Some(t) = self.files.iter_mut().find(|t| t.id == id) {
                if t.path != path {
                    tracing::info!(source = %self.name, from = %t.path.display(), to = %path.display(), "followed file renamed; still reading it");
                    t.path = path;
                }
                t.rotated = false;
                continue;
            }
            if let Err(e) = self.open(&path, id, meta.len(), startup) {
                self.fail(&path, e);
            }
        }
        let mut let_go = Vec::new();
        for t in &mut self.files {
            if !seen.contains(&t.id) && !t.rotated {
                tracing::info!(source = %self.name, file = %t.path.display(), "followed file rotated or removed; reading it to its end");
                t.rotated = true;
            }
            let truncated = match (&t.reader, &t.key) {
                (Reader::Plain(reader), Some(key)) if !t.rotated => {
                    replaced(reader.get_ref(), &key.fingerprint, t.position.offset)
                        .then(|| key.fingerprint.clone())
                }
                _ => None,
            };
            if let Some(fingerprint) = truncated {
                tracing::info!(source = %self.name, file = %t.path.display(), "followed file truncated; reading it from its start");
                let_go.push((fingerprint, t.position));
                t.key = None;
                t.position = FilePosition::default();
                if let Err(e) = reader_seek(&mut t.reader, 0) {
                    tracing::warn!(file = %t.path.display(), error = %e, "seeking to the start failed");
                }
            }
        }
        self.known.extend(let_go);
    }

    /// Every existing file the patterns name, sorted, each once.
    fn expand(&mut self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for pattern in &self.patterns {
            let found: Vec<PathBuf> = if pattern.contains(['*', '?', '[']) {
                match glob::glob(pattern) {
                    Ok(paths) => paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect(),
                    Err(e) => {
                        if self.waiting.insert(pattern.clone()) {
                            tracing::error!(source = %self.name, pattern, error = %e, "invalid glob");
                        }
                        continue;
                    }
                }
            } else {
                let p = PathBuf::from(pattern);
                if p.is_file() {
                    vec![p]
                } else {
                    Vec::new()
                }
            };
            if found.is_empty() {
                if self.waiting.insert(pattern.clone()) {
                    tracing::warn!(source = %self.name, pattern, "no file yet; waiting for one to appear");
                }
            } else if self.waiting.remove(pattern) {
                tracing::info!(source = %self.name, pattern, "file appeared");
            }
            paths.extend(found);
        }
        paths.sort();
        paths.dedup();
        paths
    }

    /// Starts following a file found for the first time.
    fn open(
        &mut self,
        path: &Path,
        id: (u64, u64),
        len: u64,
        startup: bool,
    ) -> std::io::Result<()> {
        let file = File::open(path)?;
        // An .evtx file is a database of chunks, not lines: it is read by
        // `scan` or a source with `follow = false`, never as text.
        if crate::event::evtx::is_evtx(&read_prefix(&file, 8)?) {
            if self.evtx.insert(path.to_path_buf()) {
                tracing::warn!(source = %self.name, file = %path.display(), "a Windows event log (.evtx) is not followed: read it with `tocsin scan` or a file source with follow = false");
            }
            return Ok(());
        }
        let gzip = is_gzip(&file)?;
        let open_keys: Vec<Fingerprint> = self
            .files
            .iter()
            .filter_map(|t| t.key.as_ref().map(|k| k.fingerprint.clone()))
            .collect();
        let matched = self.match_known(&file, len, &open_keys)?;
        let (key, position) = match matched {
            Match::Open => return Ok(()), // a copy of a file being read: read once it differs
            Match::Known(fingerprint, saved) if saved.offset <= len => (Some(fingerprint), saved),
            Match::Known(fingerprint, saved) => {
                tracing::warn!(source = %self.name, file = %path.display(), saved = saved.offset, len, "file shorter than its saved position; reading it from its start");
                (Some(fingerprint), FilePosition::default())
            }
            Match::New(fingerprint) => {
                // Files there at startup start where configured; later ones
                // (a rotation's new file) are read whole.
                let start = match (startup, self.follow.read_from, gzip) {
                    (true, ReadFrom::End, false) => FilePosition {
                        offset: len,
                        line: 0,
                    },
                    _ => FilePosition::default(),
                };
                (fingerprint, start)
            }
        };
        let mut reader = if gzip {
            Reader::Gzip(Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(file),
            )))
        } else {
            Reader::Plain(BufReader::with_capacity(1 << 16, file))
        };
        reader_seek(&mut reader, position.offset)?;
        tracing::info!(source = %self.name, file = %path.display(), offset = position.offset, "following file");
        let key = key.map(|fingerprint| {
            Arc::new(FileKey {
                source: self.name.clone(),
                fingerprint,
            })
        });
        self.files.push(Tracked {
            id,
            path: path.to_path_buf(),
            shown: path.display().to_string().into(),
            key,
            reader,
            position,
            rotated: false,
            last_line: Instant::now(),
            finished: false,
        });
        Ok(())
    }

    /// Which known position, if any, a newly found file resumes from: the
    /// longest known fingerprint its beginning matches.
    fn match_known(&self, file: &File, len: u64, open: &[Fingerprint]) -> std::io::Result<Match> {
        let mut lengths: Vec<u64> = self
            .known
            .keys()
            .chain(open)
            .map(|f| f.bytes)
            .filter(|&b| b > 0 && b <= len)
            .collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        for bytes in lengths {
            let fingerprint = Fingerprint::of(&read_prefix(file, bytes)?);
            if open.contains(&fingerprint) {
                return Ok(Match::Open);
            }
            if let Some(position) = self.known.get(&fingerprint) {
                return Ok(Match::Known(fingerprint, *position));
            }
        }
        Ok(Match::New(new_fingerprint(file, len)?))
    }

    /// Reads every file's new lines, a turn each. `None` once the pipeline
    /// stopped taking records.
    fn read_all(&mut self, out: &mut Batcher) -> Option<usize> {
        let mut total = 0;
        let mut i = 0;
        while i < self.files.len() {
            let read = match self.read_turn(i, out) {
                Ok(Some(read)) => read,
                Ok(None) => return None,
                Err(e) => {
                    let t = self.files.swap_remove(i);
                    self.let_go(&t);
                    self.fail(&t.path, e);
                    continue;
                }
            };
            total += read;
            let t = &mut self.files[i];
            if read > 0 {
                t.last_line = Instant::now();
            } else if t.rotated && t.last_line.elapsed() >= ROTATED_GRACE {
                // One last read takes an unfinished final line as it is.
                let last = self.read_lines(i, out, true);
                let t = self.files.swap_remove(i);
                tracing::info!(source = %self.name, file = %t.path.display(), "rotated file read to its end; closed");
                self.let_go(&t);
                match last {
                    Ok(None) => return None,
                    Ok(Some(n)) => total += n,
                    Err(e) => self.fail(&t.path, e),
                }
                continue;
            }
            i += 1;
        }
        Some(total)
    }

    /// Reads up to [`LINES_PER_TURN`] complete lines of file `i`.
    fn read_turn(&mut self, i: usize, out: &mut Batcher) -> std::io::Result<Option<usize>> {
        let t = &mut self.files[i];
        if t.finished {
            return Ok(Some(0));
        }
        if t.key.is_none() {
            let Reader::Plain(reader) = &t.reader else {
                return Ok(Some(0));
            };
            let len = reader.get_ref().metadata()?.len();
            match new_fingerprint(reader.get_ref(), len)? {
                Some(fingerprint) => {
                    // A file found empty whose beginning was seen before.
                    if let Some(saved) = self
                        .known
                        .get(&fingerprint)
                        .filter(|_| t.position.offset == 0)
                    {
                        if saved.offset <= len {
                            t.position = *saved;
                            reader_seek(&mut t.reader, saved.offset)?;
                        }
                    }
                    t.key = Some(Arc::new(FileKey {
                        source: self.name.clone(),
                        fingerprint,
                    }));
                }
                None => return Ok(Some(0)),
            }
        }
        self.read_lines(i, out, false)
    }

    /// Reads lines of file `i` into `out`; with `take_unfinished`, a last
    /// line without its `\n` too.
    fn read_lines(
        &mut self,
        i: usize,
        out: &mut Batcher,
        take_unfinished: bool,
    ) -> std::io::Result<Option<usize>> {
        let (source, max, checkpoint) = (self.source, self.max, self.follow.checkpoint);
        let buf = &mut self.buf;
        let t = &mut self.files[i];
        let Some(key) = t.key.clone() else {
            return Ok(Some(0));
        };
        let gzip = matches!(t.reader, Reader::Gzip(_));
        let mut lines = 0;
        while lines < LINES_PER_TURN {
            let before = t.position.offset;
            let read = read_line(t.reader.buffered(), buf, max)?;
            let (consumed, fault) = match read {
                LineRead::End => {
                    t.finished = gzip;
                    break;
                }
                LineRead::Line => (buf.len() as u64, None),
                LineRead::TooLong { bytes, sha256 } => {
                    let consumed = match &mut t.reader {
                        Reader::Plain(r) => r.stream_position()?.saturating_sub(before),
                        // A gzip file is complete: its lines are complete.
                        Reader::Gzip(_) => bytes.saturating_add(1),
                    };
                    (consumed, Some(RecordFault::TooLong { bytes, sha256 }))
                }
            };
            let complete = match fault {
                None => buf.last() == Some(&b'\n'),
                Some(RecordFault::TooLong { bytes, .. }) => consumed > bytes,
                Some(RecordFault::Unfinished(_)) => true,
            };
            if !complete && !gzip && !take_unfinished {
                // The writer is inside this line: read it again when it ends.
                reader_seek(&mut t.reader, before)?;
                break;
            }
            t.position.offset = before.saturating_add(consumed);
            t.position.line = t.position.line.saturating_add(1);
            lines += 1;
            let payload = super::take_line(buf);
            let mut record = Record::line(source, payload, &t.shown, t.position.line);
            record.fault = fault;
            record.mark = checkpoint.then(|| FileMark {
                key: key.clone(),
                path: t.shown.clone(),
                position: t.position,
            });
            if !out.push(record, false) {
                return Ok(None);
            }
        }
        Ok(Some(lines))
    }

    /// Remembers where a file that is no longer open stood.
    fn let_go(&mut self, t: &Tracked) {
        if let Some(key) = &t.key {
            self.known.insert(key.fingerprint.clone(), t.position);
        }
    }

    fn fail(&mut self, path: &Path, source: std::io::Error) {
        tracing::error!(source = %self.name, file = %path.display(), error = %source, "followed file could not be read");
        self.errors.push(SourceError::Io {
            path: path.display().to_string(),
            source,
        });
    }
}

/// What a newly found file is.
enum Match {
    /// The same beginning as a file open now: a copy, left until it differs.
    Open,
    /// A file seen before (by an earlier run, or rotated away), with where it stood.
    Known(Fingerprint, FilePosition),
    /// A file never seen; its fingerprint once it has a beginning.
    New(Option<Fingerprint>),
}

/// The fingerprint of a file's beginning: its first [`Fingerprint::MAX_BYTES`]
/// bytes, or fewer if that is all there is and a line is complete among
/// them (the beginning of an unfinished first line is too likely shared).
fn new_fingerprint(file: &File, len: u64) -> std::io::Result<Option<Fingerprint>> {
    let prefix = read_prefix(file, len.min(Fingerprint::MAX_BYTES))?;
    let ready = prefix.len() as u64 == Fingerprint::MAX_BYTES
        || (!prefix.is_empty() && (prefix.contains(&b'\n') || is_gzip_magic(&prefix)));
    Ok(ready.then(|| Fingerprint::of(&prefix)))
}

/// Whether an open file no longer begins as it did, or is shorter than
/// what was read of it: it was truncated (and maybe written again).
fn replaced(file: &File, fingerprint: &Fingerprint, offset: u64) -> bool {
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if meta.len() < offset || meta.len() < fingerprint.bytes {
        return true;
    }
    read_prefix(file, fingerprint.bytes).is_ok_and(|p| Fingerprint::of(&p) != *fingerprint)
}

/// Up to `bytes` bytes from the start of `file`, without moving its cursor.
fn read_prefix(file: &File, bytes: u64) -> std::io::Result<Vec<u8>> {
    let want = usize::try_from(bytes.min(Fingerprint::MAX_BYTES)).unwrap_or(0);
    let mut prefix = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        let Some(rest) = prefix.get_mut(filled..) else {
            break;
        };
        match file.read_at(rest, filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    Ok(prefix)
}

fn is_gzip(file: &File) -> std::io::Result<bool> {
    Ok(is_gzip_magic(&read_prefix(file, 2)?))
}

fn is_gzip_magic(prefix: &[u8]) -> bool {
    prefix.starts_with(&[0x1f, 0x8b])
}

/// Moves a reader to `offset` (decompressed bytes, for gzip: they are read
/// past, as a gzip stream cannot seek).
fn reader_seek(reader: &mut Reader, offset: u64) -> std::io::Result<()> {
    match reader {
        Reader::Plain(r) => r.seek(SeekFrom::Start(offset)).map(drop),
        Reader::Gzip(r) => {
            let mut skip = r.as_mut().take(offset);
            std::io::copy(&mut skip, &mut std::io::sink()).map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::FileProgress;
    use super::*;
    use std::io::Write;

    /// A follower on its own thread, and what it sends.
    struct Running {
        rx: mpsc::Receiver<Feed>,
        shutdown: Shutdown,
        thread: Option<std::thread::JoinHandle<Vec<SourceError>>>,
        read: Vec<Record>,
    }

    impl Running {
        fn start(
            patterns: &[&Path],
            follow: Follow,
            saved: BTreeMap<Fingerprint, FilePosition>,
        ) -> Running {
            let (tx, rx) = mpsc::channel(64);
            let shutdown = Shutdown::new();
            let files = FollowedFiles {
                source: 0,
                name: "test".into(),
                patterns: patterns.iter().map(|p| p.display().to_string()).collect(),
                follow,
                saved,
                max_record_bytes: 1000,
            };
            let sd = shutdown.clone();
            let thread = std::thread::spawn(move || follow_files(files, tx, sd));
            Running {
                rx,
                shutdown,
                thread: Some(thread),
                read: Vec::new(),
            }
        }

        /// Waits until `n` lines in all have been read; they are returned.
        fn lines(&mut self, n: usize) -> Vec<String> {
            self.receive(Duration::from_secs(20), |read| read >= n)
        }

        /// Lines read within `wait`, however many.
        fn settle(&mut self, wait: Duration) -> Vec<String> {
            self.receive(wait, |_| false)
        }

        /// Takes batches until `done(lines read)` or `wait` is over.
        fn receive(&mut self, wait: Duration, done: impl Fn(usize) -> bool) -> Vec<String> {
            let deadline = Instant::now() + wait;
            while !done(self.read.len()) && Instant::now() < deadline {
                match self.rx.try_recv() {
                    Ok(Feed::Records(batch)) => self.read.extend(batch),
                    Ok(Feed::Barrier(_)) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            self.texts()
        }

        fn texts(&self) -> Vec<String> {
            self.read
                .iter()
                .map(|r| String::from_utf8_lossy(&r.payload).trim_end().to_string())
                .collect()
        }

        /// The positions the marks of everything read so far leave.
        fn progress(&self) -> FileProgress {
            let mut progress = FileProgress::default();
            for mark in self.read.iter().filter_map(|r| r.mark.as_ref()) {
                progress.advance(mark);
            }
            progress
        }

        fn stop(mut self) -> Vec<SourceError> {
            self.shutdown.trigger();
            // Keep taking batches so a blocked send sees the shutdown.
            while let Ok(_) | Err(mpsc::error::TryRecvError::Empty) = self.rx.try_recv() {
                if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            self.thread
                .take()
                .map(|t| t.join().unwrap())
                .unwrap_or_default()
        }
    }

    /// A folder with `app.log` holding `content`, followed with the default
    /// settings until its `lines` lines are read.
    fn following(content: &str, lines: usize) -> (tempfile::TempDir, PathBuf, Running) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, content);
        let mut run = Running::start(&[&log], Follow::default(), BTreeMap::new());
        assert_eq!(run.lines(lines).len(), lines);
        (dir, log, run)
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
        range.map(|i| format!("{prefix} {i}\n")).collect()
    }

    fn expected(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("{prefix} {i}")).collect()
    }

    #[test]
    fn appended_lines_are_read_and_an_unfinished_line_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "first\nsecond\nthird with no end yet");
        let mut run = Running::start(&[&log], Follow::default(), BTreeMap::new());
        assert_eq!(run.lines(2), ["first", "second"]);
        assert_eq!(
            run.settle(POLL * 3).len(),
            2,
            "the unfinished line is not read"
        );
        append(&log, ", now ended\nfourth\n");
        assert_eq!(
            run.lines(4),
            [
                "first",
                "second",
                "third with no end yet, now ended",
                "fourth"
            ]
        );
        let lines: Vec<u64> = run
            .read
            .iter()
            .map(|r| match r.origin.position {
                crate::event::Position::Line { line } => line,
                _ => 0,
            })
            .collect();
        assert_eq!(lines, [1, 2, 3, 4]);
        let end = run.read.last().and_then(|r| r.mark.clone()).unwrap();
        assert_eq!(end.position.offset, std::fs::metadata(&log).unwrap().len());
        assert!(run.stop().is_empty());
    }

    #[test]
    fn rename_and_create_rotation_reads_the_old_file_to_its_end_then_the_new_one() {
        let (dir, log, mut run) = following(&numbered("old", 0..100), 100);
        // The writer appends a little more, then the log is rotated while
        // the writer still holds the old file open.
        append(&log, &numbered("old", 100..110));
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), &numbered("old", 110..115));
        append(&log, &numbered("new", 0..50));
        let read = run.lines(165);
        let mut want = expected("old", 0..115);
        want.extend(expected("new", 0..50));
        let mut got = read.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "every line once");
        assert_eq!(run.settle(RESCAN * 2).len(), 165, "nothing read twice");
        assert!(run.stop().is_empty());
    }

    #[test]
    fn copy_truncate_rotation_reads_the_new_lines_once() {
        let (dir, log, mut run) = following(&numbered("before", 0..30), 30);
        std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        std::thread::sleep(RESCAN * 2);
        append(&log, &numbered("after", 0..5));
        let mut want = expected("before", 0..30);
        want.extend(expected("after", 0..5));
        assert_eq!(run.lines(35), want);
        assert_eq!(run.settle(RESCAN * 2).len(), 35, "nothing read twice");
        assert!(run.stop().is_empty());
    }

    #[test]
    fn a_windows_event_log_in_a_followed_glob_is_not_read_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut evtx = crate::event::evtx::MAGIC.to_vec();
        evtx.extend_from_slice(b"\nnot a line\n");
        std::fs::write(dir.path().join("Security.evtx"), evtx).unwrap();
        append(&dir.path().join("app.log"), "a line\n");
        let pattern = dir.path().join("*");
        let mut run = Running::start(&[&pattern], Follow::default(), BTreeMap::new());
        assert_eq!(run.lines(1), ["a line"]);
        assert_eq!(run.settle(RESCAN * 2).len(), 1, "nothing from the .evtx");
    }

    #[test]
    fn a_glob_picks_up_files_created_later_and_a_copy_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("*.log");
        let mut run = Running::start(&[&pattern], Follow::default(), BTreeMap::new());
        assert!(run.settle(POLL).is_empty());
        append(&dir.path().join("a.log"), "a1\n");
        assert_eq!(run.lines(1), ["a1"]);
        append(&dir.path().join("b.log"), "b1\nb2\n");
        assert_eq!(run.lines(3), ["a1", "b1", "b2"]);
        // A copy of b.log under another matching name is the same file.
        std::fs::copy(dir.path().join("b.log"), dir.path().join("c.log")).unwrap();
        assert_eq!(run.settle(RESCAN * 2).len(), 3);
        assert!(run.stop().is_empty());
    }

    #[test]
    fn a_restart_resumes_at_the_saved_position_under_a_new_name_too() {
        let (dir, log, run) = following(&numbered("line", 0..20), 20);
        let saved = run.progress().of_source("test");
        assert!(run.stop().is_empty());
        // While stopped: more lines, then a rotation.
        append(&log, &numbered("line", 20..25));
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, &numbered("fresh", 0..3));
        let pattern = dir.path().join("app.log*");
        let mut run = Running::start(&[&pattern], Follow::default(), saved);
        let mut got = run.lines(8);
        got.sort();
        let mut want = expected("line", 20..25);
        want.extend(expected("fresh", 0..3));
        want.sort();
        assert_eq!(got, want);
        let first_resumed = run
            .read
            .iter()
            .find(|r| r.payload.starts_with(b"line 20"))
            .unwrap();
        assert_eq!(
            first_resumed.origin.position,
            crate::event::Position::Line { line: 21 },
            "line numbers go on"
        );
        assert!(run.stop().is_empty());
    }

    #[test]
    fn read_from_end_skips_what_files_hold_at_startup_but_not_new_files() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a.log"), "old\n");
        let follow = Follow {
            read_from: ReadFrom::End,
            checkpoint: true,
        };
        let mut run = Running::start(&[&dir.path().join("*.log")], follow, BTreeMap::new());
        assert!(run.settle(RESCAN).is_empty());
        append(&dir.path().join("a.log"), "new\n");
        append(&dir.path().join("b.log"), "b from its start\n");
        let mut got = run.lines(2);
        got.sort();
        assert_eq!(got, ["b from its start", "new"]);
        assert!(run.stop().is_empty());
    }

    #[test]
    fn files_sharing_a_long_header_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let header = "#separator \\x09\n#fields\tts\tuid\n".repeat(20);
        append(
            &dir.path().join("conn.1.log"),
            &format!("{header}first file\n"),
        );
        append(
            &dir.path().join("conn.2.log"),
            &format!("{header}second file\n"),
        );
        let mut run = Running::start(
            &[&dir.path().join("*.log")],
            Follow::default(),
            BTreeMap::new(),
        );
        let got = run.lines(82);
        assert!(got.contains(&"first file".to_string()), "{}", got.len());
        assert!(got.contains(&"second file".to_string()));
        assert!(run.stop().is_empty());
    }

    #[test]
    fn without_checkpoints_records_carry_no_mark() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "x\n");
        let follow = Follow {
            read_from: ReadFrom::Beginning,
            checkpoint: false,
        };
        let mut run = Running::start(&[&log], follow, BTreeMap::new());
        assert_eq!(run.lines(1), ["x"]);
        assert!(run.read[0].mark.is_none());
        assert!(run.stop().is_empty());
    }
}
