//! The on-disk spool of undelivered request bodies, in `state_dir/spool/`.
//!
//! Bodies are appended as framed records to segment files `seg-<20 digits>.cesq` (the
//! newest grows up to [`MAX_SEGMENT_BYTES`]). A record is a 32-byte header then the body:
//!
//! ```text
//! 0  magic "CESQ"      4 bytes
//! 4  body length       u32 LE
//! 8  oldest collect_time ms  i64 LE
//! 16 newest collect_time ms  i64 LE
//! 24 item count        u32 LE
//! 28 CRC-32 (IEEE) of bytes 4..28 and the body, u32 LE
//! ```
//!
//! A record counts as safe only after the file (and, for a new segment, the directory) is
//! fsync'd. Delivery progress is a small `cursor` file ("<segment> <offset>"), replaced by
//! rename; losing it only means re-sending (delivery is at-least-once). Fully delivered
//! segments are deleted. Opening never fails: torn or corrupt records are skipped with a
//! warning (a torn tail is cut off so appends continue cleanly), and an unusable directory
//! only makes [`Spool::push`] return an error.

use crate::error::{Error, Result};
use crate::metric::EncodedBatch;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const MAGIC: [u8; 4] = *b"CESQ";
pub const HEADER_LEN: usize = 32;
/// A segment stops growing at this size (one bigger record still gets its own segment).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 20;
/// Cloud Eye refuses collect times older than 3 days.
pub const MAX_AGE_MS: i64 = 3 * 86_400_000;
/// Items this close to the 3-day limit are dropped too: sending takes time, clocks differ.
pub const AGE_MARGIN_MS: i64 = 10 * 60_000;
/// No body is larger than this (encode_batches keeps under 500 KiB); a larger length is corrupt.
const MAX_BODY: u32 = 1 << 20;
const CURSOR: &str = "cursor";

/// The oldest collect time (ms) Cloud Eye will still accept at corrected time `now_ms`.
pub fn cutoff_ms(now_ms: i64) -> i64 {
    now_ms - MAX_AGE_MS + AGE_MARGIN_MS
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Incremental CRC-32 (IEEE 802.3, reflected, as zlib computes it).
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }
    pub fn update(mut self, data: &[u8]) -> Crc32 {
        for &b in data {
            self.0 = CRC_TABLE[((self.0 ^ b as u32) & 0xFF) as usize] ^ (self.0 >> 8);
        }
        self
    }
    pub fn finish(self) -> u32 {
        !self.0
    }
}

/// CRC-32 of `data` in one call.
pub fn crc32(data: &[u8]) -> u32 {
    Crc32::new().update(data).finish()
}

/// One spooled request body and what its header says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub body: Vec<u8>,
    pub oldest_ms: i64,
    pub newest_ms: i64,
    pub items: u32,
}

impl Record {
    pub fn from_batch(b: &EncodedBatch) -> Record {
        Record {
            body: b.body.clone(),
            oldest_ms: b.oldest_ms,
            newest_ms: b.newest_ms,
            items: b.items as u32,
        }
    }

    /// Bytes this record takes in a segment.
    pub fn framed_len(&self) -> u64 {
        (HEADER_LEN + self.body.len()) as u64
    }

    /// The header followed by the body, ready to append.
    pub fn frame(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.oldest_ms.to_le_bytes());
        out.extend_from_slice(&self.newest_ms.to_le_bytes());
        out.extend_from_slice(&self.items.to_le_bytes());
        let crc = Crc32::new().update(&out[4..28]).update(&self.body).finish();
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// What happened to a record whose items are (partly) too old for Cloud Eye.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aged {
    /// Every item is recent enough: send as is.
    Fresh,
    /// Some items were removed; send this instead (the u32 is how many were removed).
    Filtered(Record, u32),
    /// Nothing is left to send.
    Expired,
}

/// Apply the 3-day limit to `rec` at corrected time `now_ms`.
pub fn age_filter(rec: &Record, now_ms: i64) -> Aged {
    let cutoff = cutoff_ms(now_ms);
    if rec.oldest_ms >= cutoff {
        return Aged::Fresh;
    }
    if rec.newest_ms < cutoff {
        return Aged::Expired;
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(&rec.body) else {
        return Aged::Expired;
    };
    let before = items.len();
    let kept: Vec<serde_json::Value> = items
        .into_iter()
        .filter(|it| it["collect_time"].as_i64().is_some_and(|t| t >= cutoff))
        .collect();
    if kept.is_empty() {
        return Aged::Expired;
    }
    let times = kept.iter().filter_map(|it| it["collect_time"].as_i64());
    let oldest = times.clone().min().unwrap_or(cutoff);
    let newest = times.max().unwrap_or(cutoff);
    let removed = (before - kept.len()) as u32;
    match serde_json::to_vec(&kept) {
        Ok(body) => Aged::Filtered(
            Record {
                body,
                oldest_ms: oldest,
                newest_ms: newest,
                items: kept.len() as u32,
            },
            removed,
        ),
        Err(_) => Aged::Expired,
    }
}

#[derive(Debug, Clone)]
struct Meta {
    offset: u64,
    len: u32,
    oldest_ms: i64,
    newest_ms: i64,
    items: u32,
}

impl Meta {
    fn end(&self) -> u64 {
        self.offset + HEADER_LEN as u64 + self.len as u64
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// File size (delivered records at its start still take space until it is deleted).
    size: u64,
    /// Undelivered records, oldest first.
    records: VecDeque<Meta>,
}

/// The spool directory and an index of its undelivered records.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    next_seq: u64,
    /// Append handle for the newest segment, when it ends on a record boundary.
    tail: Option<File>,
    dropped: u64,
}

impl Spool {
    /// Open (creating if needed) the spool in `dir`. Never fails; problems are logged.
    pub fn open(dir: &Path, max_bytes: u64) -> Spool {
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            next_seq: 1,
            tail: None,
            dropped: 0,
        };
        if let Err(e) = crate::state::create_private_dir(dir) {
            log::warn!("spool: {e}");
            return spool;
        }
        spool.load();
        spool
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Change the size limit (config reload); the excess is dropped at the next push.
    pub fn set_max_bytes(&mut self, max_bytes: u64) {
        self.max_bytes = max_bytes;
    }

    /// Undelivered records.
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.records.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.records.is_empty())
    }

    /// Bytes of undelivered records (headers included).
    pub fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| s.records.iter())
            .map(|m| HEADER_LEN as u64 + m.len as u64)
            .sum()
    }

    /// Bytes the segment files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Items dropped (spool full, too old, corrupt) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn load(&mut self) {
        let (cur_seq, cur_off) = self.read_cursor();
        let mut seqs = self.list_segments();
        seqs.sort_unstable();
        let last = seqs.last().copied();
        for seq in seqs {
            let path = self.segment_path(seq);
            if seq < cur_seq {
                remove_file(&path);
                continue;
            }
            let skip_before = if seq == cur_seq { cur_off } else { 0 };
            let is_last = Some(seq) == last;
            if let Some(seg) = self.scan_segment(seq, path, skip_before, is_last) {
                self.segments.push_back(seg);
            }
        }
        self.next_seq = last.unwrap_or(0).max(cur_seq) + 1;
    }

    fn list_segments(&self) -> Vec<u64> {
        list_segments(&self.dir)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        segment_path(&self.dir, seq)
    }

    fn read_cursor(&self) -> (u64, u64) {
        read_cursor(&self.dir)
    }

    fn write_cursor(&self, seq: u64, offset: u64) {
        // No fsync: a stale cursor after a crash only re-sends (at-least-once).
        let tmp = self.dir.join("cursor.tmp");
        let result = std::fs::write(&tmp, format!("{seq} {offset}\n"))
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(CURSOR)));
        if let Err(e) = result {
            log::warn!(
                "spool: cannot save delivery progress in {}: {e}",
                self.dir.display()
            );
        }
    }

    /// Index one segment file; keeps records at or after `skip_before`.
    fn scan_segment(
        &mut self,
        seq: u64,
        path: PathBuf,
        skip_before: u64,
        is_last: bool,
    ) -> Option<Segment> {
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("spool: cannot read {}: {e}; skipping it", path.display());
                return None;
            }
        };
        let (metas, clean_end, skipped) = scan_records(&data);
        if skipped > 0 {
            log::warn!(
                "spool: {}: skipped {skipped} bytes of torn or corrupt data",
                path.display()
            );
        }
        let mut size = data.len() as u64;
        if is_last && clean_end < size {
            match OpenOptions::new().write(true).open(&path).and_then(|f| {
                f.set_len(clean_end)?;
                f.sync_all()
            }) {
                Ok(()) => size = clean_end,
                Err(e) => log::warn!("spool: cannot cut the torn tail of {}: {e}", path.display()),
            }
        }
        let records: VecDeque<Meta> = metas
            .into_iter()
            .filter(|m| m.offset >= skip_before)
            .collect();
        if records.is_empty() && !is_last {
            remove_file(&path);
            return None;
        }
        if is_last && size == clean_end {
            self.tail = OpenOptions::new().append(true).open(&path).ok();
        }
        Some(Segment {
            seq,
            path,
            size,
            records,
        })
    }

    /// Append `rec` durably. On error nothing is counted as spooled (the caller keeps it).
    pub fn push(&mut self, rec: &Record) -> Result<()> {
        let len = rec.framed_len();
        if len > self.max_bytes {
            log::warn!(
                "spool: a {len}-byte batch is larger than spool_max_bytes ({}); dropping its {} points",
                self.max_bytes,
                rec.items
            );
            self.dropped += rec.items as u64;
            return Ok(());
        }
        while self.disk_bytes() + len > self.max_bytes && !self.segments.is_empty() {
            self.drop_oldest_segment();
        }
        crate::state::create_private_dir(&self.dir)?;
        let segment_limit = (self.max_bytes / 8).clamp(1, MAX_SEGMENT_BYTES);
        let fits_tail = self
            .segments
            .back()
            .is_some_and(|s| s.size == 0 || s.size + len <= segment_limit);
        if self.tail.is_none() || !fits_tail {
            self.start_segment()?;
        }
        let frame = rec.frame();
        let (Some(file), Some(seg)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            return Err(Error::io("spool: no segment to append to"));
        };
        let offset = seg.size;
        let written = file.write_all(&frame).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Cut the partial record so the segment stays clean; if even that fails, start
            // a new segment next time (the scan on open skips the garbage).
            if file.set_len(offset).is_err() {
                self.tail = None;
            }
            return Err(Error::io_at("write", &seg.path, &e));
        }
        seg.size += len;
        seg.records.push_back(Meta {
            offset,
            len: rec.body.len() as u32,
            oldest_ms: rec.oldest_ms,
            newest_ms: rec.newest_ms,
            items: rec.items,
        });
        Ok(())
    }

    fn start_segment(&mut self) -> Result<()> {
        let seq = self.next_seq;
        let path = self.segment_path(seq);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io_at("create", &path, &e))?;
        self.next_seq += 1;
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            remove_file(&path);
            return Err(Error::io_at("fsync", &self.dir, &e));
        }
        self.segments.push_back(Segment {
            seq,
            path,
            size: 0,
            records: VecDeque::new(),
        });
        self.tail = Some(file);
        Ok(())
    }

    fn drop_oldest_segment(&mut self) {
        let Some(seg) = self.segments.pop_front() else {
            return;
        };
        let items: u64 = seg.records.iter().map(|m| m.items as u64).sum();
        if items > 0 {
            log::warn!(
                "spool: full (spool_max_bytes {}), dropping the oldest {items} points",
                self.max_bytes
            );
        }
        self.dropped += items;
        remove_file(&seg.path);
        if self.segments.is_empty() {
            self.tail = None;
        }
    }

    /// The oldest undelivered record, with the 3-day limit applied at corrected time
    /// `now_ms`. Unreadable, corrupt and expired records are dropped (and counted) on the way.
    pub fn front(&mut self, now_ms: i64) -> Option<Record> {
        loop {
            let (path, meta) = {
                let seg = self.segments.front()?;
                match seg.records.front() {
                    Some(m) => (seg.path.clone(), m.clone()),
                    None => {
                        if self.segments.len() == 1 {
                            return None;
                        }
                        self.finish_front_segment();
                        continue;
                    }
                }
            };
            let rec = match read_record(&path, &meta) {
                Ok(rec) => rec,
                Err(e) => {
                    log::warn!("spool: skipping a record of {}: {e}", path.display());
                    self.dropped += meta.items as u64;
                    self.pop_front();
                    continue;
                }
            };
            match age_filter(&rec, now_ms) {
                Aged::Fresh => return Some(rec),
                Aged::Filtered(r, removed) => {
                    self.dropped += removed as u64;
                    return Some(r);
                }
                Aged::Expired => {
                    log::warn!(
                        "spool: dropping {} points older than Cloud Eye accepts (3 days)",
                        rec.items
                    );
                    self.dropped += rec.items as u64;
                    self.pop_front();
                }
            }
        }
    }

    /// Mark the oldest record delivered (or abandoned).
    pub fn pop_front(&mut self) {
        let Some(seg) = self.segments.front_mut() else {
            return;
        };
        let Some(meta) = seg.records.pop_front() else {
            return;
        };
        let (seq, end, now_empty) = (seg.seq, meta.end(), seg.records.is_empty());
        self.write_cursor(seq, end);
        if now_empty {
            self.finish_front_segment();
        }
    }

    /// Delete the front segment once it holds nothing undelivered.
    fn finish_front_segment(&mut self) {
        if let Some(seg) = self.segments.pop_front() {
            remove_file(&seg.path);
            if self.segments.is_empty() {
                self.tail = None;
            }
        }
    }
}

/// What is waiting in a spool directory, for `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Undelivered records, and the points in them.
    pub records: u64,
    pub items: u64,
    /// Bytes of undelivered records (headers included).
    pub pending_bytes: u64,
    /// Bytes the segment files not yet fully delivered take on disk.
    pub disk_bytes: u64,
    /// The oldest collect_time among undelivered records.
    pub oldest_ms: Option<i64>,
}

/// Summarise the spool in `dir` without changing it ([`Spool::open`] repairs and deletes);
/// `Ok(None)` when `dir` does not exist.
pub fn summary(dir: &Path) -> std::io::Result<Option<Summary>> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let (cur_seq, cur_off) = read_cursor(dir);
    let mut s = Summary::default();
    for seq in list_segments(dir).into_iter().filter(|&q| q >= cur_seq) {
        let data = std::fs::read(segment_path(dir, seq))?;
        s.disk_bytes += data.len() as u64;
        let skip_before = if seq == cur_seq { cur_off } else { 0 };
        for m in scan_records(&data)
            .0
            .iter()
            .filter(|m| m.offset >= skip_before)
        {
            s.records += 1;
            s.items += u64::from(m.items);
            s.pending_bytes += HEADER_LEN as u64 + u64::from(m.len);
            s.oldest_ms = Some(s.oldest_ms.map_or(m.oldest_ms, |o| o.min(m.oldest_ms)));
        }
    }
    Ok(Some(s))
}

fn list_segments(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_name(&e.file_name().to_string_lossy()))
        .collect()
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.cesq"))
}

fn read_cursor(dir: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(dir.join(CURSOR)).unwrap_or_default();
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seq)), Some(Ok(off))) => (seq, off),
        _ => (0, 0),
    }
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("spool: cannot delete {}: {e}", path.display());
        }
    }
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".cesq")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parse a header at the start of `buf`; `None` if it is not a plausible one.
fn parse_header(buf: &[u8]) -> Option<(u32, i64, i64, u32, u32)> {
    if buf.len() < HEADER_LEN || buf[..4] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let i64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        i64::from_le_bytes(b)
    };
    let len = u32_at(4);
    if len > MAX_BODY {
        return None;
    }
    Some((len, i64_at(8), i64_at(16), u32_at(24), u32_at(28)))
}

/// Every valid record in `data`, the end of the last valid one, and bytes skipped.
/// After a bad spot the scan resynchronises on the next magic whose CRC checks out.
fn scan_records(data: &[u8]) -> (Vec<Meta>, u64, u64) {
    let mut metas = Vec::new();
    let (mut pos, mut clean_end, mut skipped) = (0usize, 0u64, 0u64);
    while pos < data.len() {
        match valid_record_at(data, pos) {
            Some(meta) => {
                pos = meta.end() as usize;
                clean_end = pos as u64;
                metas.push(meta);
            }
            None => {
                let next = find_magic(data, pos + 1).unwrap_or(data.len());
                skipped += (next - pos) as u64;
                pos = next;
            }
        }
    }
    (metas, clean_end, skipped)
}

fn valid_record_at(data: &[u8], pos: usize) -> Option<Meta> {
    let (len, oldest_ms, newest_ms, items, crc) = parse_header(&data[pos..])?;
    let body_start = pos + HEADER_LEN;
    let body = data.get(body_start..body_start + len as usize)?;
    let actual = Crc32::new()
        .update(&data[pos + 4..pos + 28])
        .update(body)
        .finish();
    (actual == crc).then_some(Meta {
        offset: pos as u64,
        len,
        oldest_ms,
        newest_ms,
        items,
    })
}

fn find_magic(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(MAGIC.len())
        .position(|w| w == MAGIC)
        .map(|i| i + from)
}

fn read_record(path: &Path, meta: &Meta) -> std::io::Result<Record> {
    let file = File::open(path)?;
    let mut buf = vec![0u8; HEADER_LEN + meta.len as usize];
    file.read_exact_at(&mut buf, meta.offset)?;
    match valid_record_at(&buf, 0) {
        Some(_) => Ok(Record {
            body: buf.split_off(HEADER_LEN),
            oldest_ms: meta.oldest_ms,
            newest_ms: meta.newest_ms,
            items: meta.items,
        }),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "checksum mismatch",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/IEEE for the ASCII string "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Incremental equals one-shot.
        assert_eq!(
            Crc32::new().update(b"1234").update(b"56789").finish(),
            0xCBF4_3926
        );
    }

    #[test]
    fn frame_layout() {
        let r = Record {
            body: b"[]".to_vec(),
            oldest_ms: 1,
            newest_ms: 2,
            items: 3,
        };
        let f = r.frame();
        assert_eq!(f.len(), 34); // 32-byte header + 2-byte body
        assert_eq!(&f[..4], b"CESQ");
        assert_eq!(&f[4..8], &2u32.to_le_bytes());
        let (metas, end, skipped) = scan_records(&f);
        assert_eq!((metas.len(), end, skipped), (1, 34, 0));
    }

    #[test]
    fn resync_after_garbage() {
        let r = Record {
            body: b"[1]".to_vec(),
            oldest_ms: 5,
            newest_ms: 5,
            items: 1,
        };
        let mut data = r.frame();
        data.extend_from_slice(b"CESQgarbage!");
        data.extend_from_slice(&r.frame());
        let (metas, end, skipped) = scan_records(&data);
        assert_eq!(metas.len(), 2);
        // 35 (record) + 12 garbage + 35 (record)
        assert_eq!(end, 82);
        assert_eq!(skipped, 12);
    }

    #[test]
    fn segment_names() {
        assert_eq!(
            parse_segment_name("seg-00000000000000000042.cesq"),
            Some(42)
        );
        assert_eq!(parse_segment_name("seg-42.cesq"), None);
        assert_eq!(parse_segment_name("cursor"), None);
    }
}
