//! Reading kernel files into one reused buffer.
//!
//! /proc files report a size of 0 or 4096, so they are read until EOF, never by stat().
//! Files the agent reads every cycle can be kept open ([`Reader::read_cached`]) and re-read
//! with `pread` at offset 0: procfs regenerates the content on a read from offset 0, so
//! this saves an open/close pair per file per cycle. Huge files (/proc/net/tcp on a busy
//! host) are streamed line by line through a fixed window ([`Reader::for_each_line`]) so
//! memory does not grow with the number of sockets. Small per-process files are opened
//! relative to a directory fd ([`Reader::read_in`]) and read with one `read` call.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of a file kept in memory at once by [`Reader::for_each_line`]. A line longer
/// than this (none of the streamed kernel files has one) is skipped.
pub const STREAM_WINDOW: usize = 64 * 1024;

/// A [`Reader::for_each_line`] read shorter than this ends the file (see there).
pub const SHORT_READ_EOF: usize = 2048;
/// ... provided every read of the file asked for at least this much.
pub const LARGE_ASK: usize = 16 * 1024;

/// Open files kept by [`Reader::read_cached`]; a guard against an unbounded cache if
/// callers pass ever-changing paths.
const MAX_CACHED_FILES: usize = 32;

const INITIAL_CAPACITY: usize = 16 * 1024;

/// A reusable read buffer plus the cache of kept-open files; one per [`super::Collector`].
///
/// `buf` is always fully initialised and only grows; `len` says how much of it the last
/// read filled, so a cycle re-zeroes nothing.
pub struct Reader {
    buf: Vec<u8>,
    len: usize,
    open: HashMap<PathBuf, File>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            buf: vec![0; INITIAL_CAPACITY],
            len: 0,
            open: HashMap::new(),
        }
    }

    /// The whole content of `path`, valid until the next call.
    pub fn read(&mut self, path: &Path) -> std::io::Result<&[u8]> {
        self.len = 0;
        let mut file = File::open(path)?;
        self.len = fill(&mut self.buf, |buf, _| file.read(buf))?;
        Ok(&self.buf[..self.len])
    }

    /// The whole content of `rel`, a path relative to the open directory `dir` (for
    /// example `"1234/stat"` under /proc), valid until the next call.
    ///
    /// `openat` spares the kernel the walk of the directory's own path for every file,
    /// which on a scan of 10,000 pids is most of the cost. A read that leaves room in the
    /// buffer is taken as the whole file: procfs produces a per-pid file (stat, statm,
    /// cmdline) in one read, and a regular file is not read short. Only a read that fills
    /// the buffer is followed by more, so a small file costs one `read` instead of two.
    pub fn read_in(&mut self, dir: impl AsFd, rel: &CStr) -> std::io::Result<&[u8]> {
        use nix::fcntl::{openat, OFlag};
        self.len = 0;
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let mut file = File::from(openat(dir, rel, flags, nix::sys::stat::Mode::empty())?);
        let mut len = 0usize;
        loop {
            if self.buf.len() < len + 4096 {
                let grown = (self.buf.len() * 2).max(INITIAL_CAPACITY);
                self.buf.resize(grown, 0);
            }
            match file.read(&mut self.buf[len..]) {
                Ok(n) => {
                    len += n;
                    if n == 0 || len < self.buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.len = len;
        Ok(&self.buf[..len])
    }

    /// Like [`Reader::read`] but logs a failure at debug level and gives `None`.
    pub fn read_or_log(&mut self, path: &Path) -> Option<&[u8]> {
        match self.read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log::debug!("cannot read {}: {e}", path.display());
                None
            }
        }
    }

    /// Like [`Reader::read`], but keeps the file open between calls and re-reads it with
    /// `pread` from offset 0. A failed re-read drops the kept file and retries once with
    /// a fresh open (the file may have been replaced).
    pub fn read_cached(&mut self, path: &Path) -> std::io::Result<&[u8]> {
        self.len = 0;
        if let Some(file) = self.open.get(path) {
            if let Ok(n) = fill(&mut self.buf, |buf, at| file.read_at(buf, at)) {
                self.len = n;
                return Ok(&self.buf[..n]);
            }
            self.open.remove(path);
        }
        let file = File::open(path)?;
        self.len = fill(&mut self.buf, |buf, at| file.read_at(buf, at))?;
        if self.open.len() >= MAX_CACHED_FILES {
            self.open.clear();
        }
        self.open.insert(path.to_path_buf(), file);
        Ok(&self.buf[..self.len])
    }

    /// Like [`Reader::read_cached`] but logs a failure at debug level and gives `None`.
    pub fn read_cached_or_log(&mut self, path: &Path) -> Option<&[u8]> {
        match self.read_cached(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log::debug!("cannot read {}: {e}", path.display());
                None
            }
        }
    }

    /// Call `f` with every line of `path` (without the newline), holding at most
    /// [`STREAM_WINDOW`] bytes of it in memory. Lines longer than the window are skipped.
    ///
    /// Meant for kernel tables with lines shorter than [`SHORT_READ_EOF`] (/proc/net/tcp)
    /// and for regular files: a read that asked for at least [`LARGE_ASK`] bytes and got
    /// fewer than [`SHORT_READ_EOF`] is taken as the end. A seq_file read stops early
    /// only at the end or when its buffer (at least a page) cannot take the next line, so
    /// it then returns at least a page minus one line. This matters: a read at the end of
    /// /proc/net/tcp walks the kernel's whole socket hash table again to find nothing,
    /// which costs as much as reading the table.
    pub fn for_each_line(&mut self, path: &Path, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
        let mut file = File::open(path)?;
        self.len = 0;
        if self.buf.len() < STREAM_WINDOW {
            self.buf.resize(STREAM_WINDOW, 0);
        }
        let window = &mut self.buf[..STREAM_WINDOW];
        let mut filled = 0usize;
        let mut skipping_long_line = false;
        // A small ask could leave part of the kernel's buffer for the next read, which
        // would then be short without being the end: the hint holds only while every
        // ask was large.
        let mut asks_all_large = true;
        loop {
            let asked = window.len() - filled;
            asks_all_large &= asked >= LARGE_ASK;
            let n = match file.read(&mut window[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let eof = n == 0 || (asks_all_large && n < SHORT_READ_EOF);
            filled += n;
            let mut start = 0usize;
            while let Some(pos) = memchr::memchr(b'\n', &window[start..filled]) {
                if !skipping_long_line {
                    f(&window[start..start + pos]);
                }
                skipping_long_line = false;
                start += pos + 1;
            }
            if eof {
                if start < filled && !skipping_long_line {
                    f(&window[start..filled]);
                }
                break;
            }
            if start == 0 && filled == window.len() {
                // A line fills the whole window: drop what we have and skip to its end.
                skipping_long_line = true;
                filled = 0;
                continue;
            }
            window.copy_within(start..filled, 0);
            filled -= start;
        }
        Ok(())
    }

    /// Bytes currently reserved by the read buffer (for tests of the memory bound).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Length of the last whole-file read (0 after a failed one).
    pub fn last_len(&self) -> usize {
        self.len
    }

    /// Number of files kept open by [`Reader::read_cached`].
    pub fn cached_files(&self) -> usize {
        self.open.len()
    }
}

/// Read from offset 0 to EOF into `buf` with `read(buf, offset)`, growing `buf` only when
/// it is nearly full; gives the number of bytes read.
fn fill(
    buf: &mut Vec<u8>,
    mut read: impl FnMut(&mut [u8], u64) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let mut len = 0usize;
    loop {
        if buf.len() < len + 4096 {
            let grown = (buf.len() * 2).max(INITIAL_CAPACITY);
            buf.resize(grown, 0);
        }
        match read(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("reader-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut f = File::create(&path).unwrap();
        f.write_all(content).unwrap();
        path
    }

    #[test]
    fn cached_read_sees_new_content_in_place() {
        let path = temp_file("cached", b"first");
        let mut r = Reader::new();
        assert_eq!(r.read_cached(&path).unwrap(), b"first");
        // Overwrite the same inode: the kept descriptor must see it.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(b"second, longer")
            .unwrap();
        assert_eq!(r.read_cached(&path).unwrap(), b"second, longer");
        assert_eq!(r.cached_files(), 1);
    }

    #[test]
    fn cached_read_of_real_proc_stat_changes() {
        let mut r = Reader::new();
        let p = Path::new("/proc/stat");
        if !p.exists() {
            return;
        }
        let a = r.read_cached(p).unwrap().to_vec();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = r.read_cached(p).unwrap().to_vec();
        assert!(a.starts_with(b"cpu ") && b.starts_with(b"cpu "));
        // Second read came from the kept descriptor, at offset 0, with full content.
        assert_eq!(r.cached_files(), 1);
        assert!(b.len() > 100);
    }

    #[test]
    fn missing_file_is_an_error() {
        let mut r = Reader::new();
        assert!(r.read_cached(Path::new("/nonexistent/x")).is_err());
        assert!(r.read_cached_or_log(Path::new("/nonexistent/x")).is_none());
        assert_eq!(r.cached_files(), 0);
    }

    #[test]
    fn large_file_read_fully() {
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let path = temp_file("large", &content);
        let mut r = Reader::new();
        assert_eq!(r.read_cached(&path).unwrap(), &content[..]);
        assert_eq!(r.read(&path).unwrap(), &content[..]);
    }

    #[test]
    fn read_in_relative_to_a_directory() {
        let small = temp_file("read-in-small", b"1 (x) S 0");
        // 100,000 bytes fill the 16 KiB buffer several times: the read must loop.
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let large = temp_file("read-in-large", &content);
        let open_dir = |p: &Path| File::open(p.parent().unwrap()).unwrap();
        let mut r = Reader::new();
        assert_eq!(r.read_in(open_dir(&small), c"f").unwrap(), b"1 (x) S 0");
        assert_eq!(r.read_in(open_dir(&large), c"f").unwrap(), &content[..]);
        assert!(r.read_in(open_dir(&large), c"missing").is_err());
        assert_eq!(r.last_len(), 0);
    }

    #[test]
    fn streams_lines_across_window_boundaries() {
        // 20,000 lines of 10 bytes ("line00000\n") = 200,000 bytes, about 3 windows.
        let mut content = Vec::new();
        for i in 0..20_000 {
            content.extend_from_slice(format!("line{i:05}\n").as_bytes());
        }
        content.extend_from_slice(b"tail-no-newline");
        let path = temp_file("stream", &content);
        let mut r = Reader::new();
        let mut n = 0usize;
        let mut last = Vec::new();
        r.for_each_line(&path, |l| {
            if n < 20_000 {
                assert_eq!(l, format!("line{n:05}").as_bytes());
            }
            n += 1;
            last = l.to_vec();
        })
        .unwrap();
        assert_eq!(n, 20_001);
        assert_eq!(last, b"tail-no-newline");
        assert!(r.buffer_capacity() <= 2 * STREAM_WINDOW);
    }

    #[test]
    fn short_last_chunk_ends_the_stream() {
        // 64 lines of 1,024 bytes fill the first read (65,536 bytes) exactly; the second
        // read gets the last line's 100 bytes, fewer than SHORT_READ_EOF, and is taken as
        // the end. Every line must still arrive.
        let mut content = Vec::new();
        for _ in 0..64 {
            content.extend(std::iter::repeat_n(b'x', 1023));
            content.push(b'\n');
        }
        content.extend(std::iter::repeat_n(b'y', 99));
        content.push(b'\n');
        let path = temp_file("short-tail", &content);
        let mut r = Reader::new();
        let mut lens = Vec::new();
        r.for_each_line(&path, |l| lens.push(l.len())).unwrap();
        let mut expected = vec![1023; 64];
        expected.push(99);
        assert_eq!(lens, expected);
        let path = temp_file("short-tail-2", b"a\nb\nc");
        let mut lines = Vec::new();
        r.for_each_line(&path, |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(lines, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn real_tcp_table_streams_whole() {
        let p = Path::new("/proc/self/net/tcp");
        if !p.exists() {
            return;
        }
        let mut r = Reader::new();
        let mut n = 0usize;
        let mut header = Vec::new();
        r.for_each_line(p, |l| {
            if n == 0 {
                header = l.to_vec();
            }
            n += 1;
        })
        .unwrap();
        assert!(header.trim_ascii_start().starts_with(b"sl"), "{header:?}");
        assert!(n >= 1);
    }

    #[test]
    fn over_long_line_is_skipped() {
        let mut content = b"a\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', STREAM_WINDOW * 2 + 5));
        content.extend_from_slice(b"\nb\n");
        let path = temp_file("longline", &content);
        let mut r = Reader::new();
        let mut lines = Vec::new();
        r.for_each_line(&path, |l| lines.push(l.to_vec())).unwrap();
        assert_eq!(lines, vec![b"a".to_vec(), b"b".to_vec()]);
    }
}
