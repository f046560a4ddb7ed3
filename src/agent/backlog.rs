//! Undelivered batches: the on-disk [`Spool`], plus a bounded in-memory queue for when the
//! disk refuses writes (full, read-only). Memory items move to disk as soon as it works
//! again; disk trouble is logged at most once a minute.

use crate::spool::{self, Aged, Record, Spool};
use std::collections::VecDeque;

/// Bodies kept in memory while the spool cannot be written.
pub const MEMORY_MAX_BYTES: usize = 4 << 20;
const WARN_EVERY_NS: u64 = 60_000_000_000;

pub struct Backlog {
    spool: Spool,
    memory: VecDeque<Record>,
    memory_bytes: usize,
    dropped: u64,
    last_warn_ns: Option<u64>,
    suppressed: u32,
}

impl Backlog {
    pub fn new(spool: Spool) -> Backlog {
        Backlog {
            spool,
            memory: VecDeque::new(),
            memory_bytes: 0,
            dropped: 0,
            last_warn_ns: None,
            suppressed: 0,
        }
    }

    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.spool.is_empty()
    }

    /// Records waiting (disk and memory).
    pub fn len(&self) -> usize {
        self.spool.len() + self.memory.len()
    }

    pub fn memory_len(&self) -> usize {
        self.memory.len()
    }

    /// Bytes waiting on disk (the agent_spool_bytes metric).
    pub fn spool_bytes(&self) -> u64 {
        self.spool.pending_bytes()
    }

    /// Points dropped (spool full, too old, memory full, corrupt) since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped) + self.spool.take_dropped()
    }

    /// Keep `rec` until delivered: on disk if possible, else in memory.
    pub fn push(&mut self, rec: Record, now_ns: u64) {
        self.flush_memory(now_ns);
        if self.memory.is_empty() {
            match self.spool.push(&rec) {
                Ok(()) => return,
                Err(e) => self.disk_trouble(&e.to_string(), now_ns),
            }
        }
        self.push_memory(rec);
    }

    /// Move memory items to disk, oldest first, while the disk takes them.
    pub fn flush_memory(&mut self, now_ns: u64) -> bool {
        while let Some(rec) = self.memory.front() {
            if let Err(e) = self.spool.push(rec) {
                self.disk_trouble(&e.to_string(), now_ns);
                return false;
            }
            self.pop_memory();
            if self.memory.is_empty() {
                log::info!("spool: writable again; the in-memory backlog is on disk");
            }
        }
        true
    }

    fn push_memory(&mut self, rec: Record) {
        self.memory_bytes += rec.body.len();
        self.memory.push_back(rec);
        while self.memory_bytes > MEMORY_MAX_BYTES {
            match self.pop_memory() {
                Some(old) => {
                    log::warn!(
                        "in-memory backlog full: dropping the oldest {} points",
                        old.items
                    );
                    self.dropped += old.items as u64;
                }
                None => break,
            }
        }
    }

    fn pop_memory(&mut self) -> Option<Record> {
        let rec = self.memory.pop_front()?;
        self.memory_bytes -= rec.body.len();
        Some(rec)
    }

    fn disk_trouble(&mut self, what: &str, now_ns: u64) {
        let due = self
            .last_warn_ns
            .map_or(true, |t| now_ns.saturating_sub(t) >= WARN_EVERY_NS);
        if due {
            let more = match self.suppressed {
                0 => String::new(),
                n => format!(" ({n} similar failures since the last message)"),
            };
            log::error!(
                "spool: {what}; keeping up to {} MiB of batches in memory{more}",
                MEMORY_MAX_BYTES >> 20
            );
            self.last_warn_ns = Some(now_ns);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }

    /// The oldest waiting record (disk first: it is older), with the 3-day limit applied.
    pub fn front(&mut self, now_ms: i64) -> Option<Record> {
        if let Some(rec) = self.spool.front(now_ms) {
            return Some(rec);
        }
        while let Some(rec) = self.memory.front() {
            match spool::age_filter(rec, now_ms) {
                Aged::Fresh => return Some(rec.clone()),
                Aged::Filtered(r, removed) => {
                    self.dropped += removed as u64;
                    return Some(r);
                }
                Aged::Expired => {
                    self.dropped += rec.items as u64;
                    self.pop_memory();
                }
            }
        }
        None
    }

    /// The record [`Backlog::front`] returned was delivered (or abandoned).
    pub fn pop_front(&mut self) {
        if !self.spool.is_empty() {
            self.spool.pop_front();
        } else {
            self.pop_memory();
        }
    }
}
