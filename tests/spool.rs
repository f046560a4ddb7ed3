//! The spool on disk: round trips, restarts, corruption, truncation, the size limit, the
//! 3-day limit, the in-memory fallback, and the real binary killed with SIGKILL or held
//! to a tiny file-size limit.

mod common;

use cloudeye_agent::agent::backlog::{Backlog, MEMORY_MAX_BYTES};
use cloudeye_agent::spool::{Record, Spool, HEADER_LEN, MAX_AGE_MS};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NOW: i64 = 1_750_000_000_000;

/// A body shaped like encode_batches output: `n` items at `t`, t+1, ...
fn record(t: i64, n: usize) -> Record {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"metric":{{"namespace":"AGT.ECS","metric_name":"m{i}","dimensions":[{{"name":"instance_id","value":"i-1"}}]}},"ttl":172800,"collect_time":{},"value":{i},"unit":"%","type":"int"}}"#,
                t + i as i64
            )
        })
        .collect();
    Record {
        body: format!("[{}]", items.join(",")).into_bytes(),
        oldest_ms: t,
        newest_ms: t + n as i64 - 1,
        items: n as u32,
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "cesq"));
    v.sort();
    v
}

fn drain(spool: &mut Spool) -> Vec<Record> {
    let mut out = Vec::new();
    while let Some(r) = spool.front(NOW) {
        out.push(r);
        spool.pop_front();
    }
    out
}

#[test]
fn records_survive_reopen_in_order_and_progress_is_kept() {
    let dir = common::temp_dir("spool-rt").join("spool");
    let recs: Vec<Record> = (0..3).map(|k| record(NOW - 1000 * k, 2)).rev().collect();
    {
        let mut s = Spool::open(&dir, 1 << 20);
        for r in &recs {
            s.push(r).unwrap();
        }
        assert_eq!(s.len(), 3);
        // 3 records, each a 32-byte header plus its body
        let want: u64 = recs
            .iter()
            .map(|r| (HEADER_LEN + r.body.len()) as u64)
            .sum();
        assert_eq!(s.pending_bytes(), want);
    }
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(s.front(NOW).as_ref(), Some(&recs[0]));
    s.pop_front();
    drop(s);
    // the delivered one stays delivered after a restart
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(drain(&mut s), recs[1..].to_vec());
    assert!(
        segments(&dir).is_empty(),
        "fully delivered segments are deleted"
    );
    // and new records after that start cleanly
    s.push(&recs[0]).unwrap();
    drop(s);
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(drain(&mut s), vec![recs[0].clone()]);
}

#[test]
fn a_corrupt_record_is_skipped_and_the_others_kept() {
    let dir = common::temp_dir("spool-corrupt").join("spool");
    let recs: Vec<Record> = (0..3).map(|k| record(NOW - 3000 + k, 3)).collect();
    let mut s = Spool::open(&dir, 1 << 20);
    for r in &recs {
        s.push(r).unwrap();
    }
    drop(s);
    let seg = &segments(&dir)[0];
    let mut bytes = std::fs::read(seg).unwrap();
    // flip one byte inside the second record's body
    let second_body = recs[0].framed_len() as usize + HEADER_LEN + 10;
    bytes[second_body] ^= 0xFF;
    std::fs::write(seg, &bytes).unwrap();
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(drain(&mut s), vec![recs[0].clone(), recs[2].clone()]);
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = common::temp_dir("spool-torn").join("spool");
    let recs: Vec<Record> = (0..3).map(|k| record(NOW - 3000 + k, 3)).collect();
    let mut s = Spool::open(&dir, 1 << 20);
    for r in &recs {
        s.push(r).unwrap();
    }
    drop(s);
    let seg = segments(&dir)[0].clone();
    let len = std::fs::metadata(&seg).unwrap().len();
    // a crash in the middle of the third write: its last 10 bytes never made it
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(s.len(), 2);
    let two = recs[0].framed_len() + recs[1].framed_len();
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        two,
        "torn bytes cut off"
    );
    s.push(&recs[2]).unwrap();
    drop(s);
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(drain(&mut s), recs);
}

#[test]
fn garbage_files_never_stop_the_spool() {
    let dir = common::temp_dir("spool-junk").join("spool");
    std::fs::create_dir_all(&dir).unwrap();
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(dir.join("seg-00000000000000000001.cesq"), &junk).unwrap();
    // a fake header with a huge length and a valid magic
    let mut fake = b"CESQ".to_vec();
    fake.extend_from_slice(&u32::MAX.to_le_bytes());
    fake.extend_from_slice(&[0; 24]);
    std::fs::write(dir.join("seg-00000000000000000002.cesq"), &fake).unwrap();
    std::fs::write(dir.join("cursor"), b"not a cursor").unwrap();
    std::fs::write(dir.join("README"), b"unrelated").unwrap();
    let mut s = Spool::open(&dir, 1 << 20);
    assert!(s.is_empty());
    let r = record(NOW, 1);
    s.push(&r).unwrap();
    drop(s);
    let mut s = Spool::open(&dir, 1 << 20);
    assert_eq!(drain(&mut s), vec![r]);
}

#[test]
fn the_size_limit_drops_the_oldest_and_counts_them() {
    let dir = common::temp_dir("spool-full").join("spool");
    let max = 4096u64;
    let mut s = Spool::open(&dir, max);
    let recs: Vec<Record> = (0..40).map(|k| record(NOW - 100_000 + k * 10, 1)).collect();
    let each = recs[0].framed_len();
    for r in &recs {
        s.push(r).unwrap();
        let on_disk: u64 = segments(&dir)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= max, "{on_disk} bytes on disk > {max}");
    }
    let kept = drain(&mut s);
    // at most 4096 / each records fit; whole segments (512 bytes each: max/8) go at once
    assert!(
        kept.len() as u64 <= max / each && kept.len() >= 10,
        "{} kept",
        kept.len()
    );
    assert_eq!(
        kept,
        recs[recs.len() - kept.len()..].to_vec(),
        "the newest are kept"
    );
    assert_eq!(s.take_dropped(), (recs.len() - kept.len()) as u64);
    // one record larger than the whole spool is refused (and counted), not written
    let huge = record(NOW, 40);
    assert!(huge.framed_len() > max);
    s.push(&huge).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.take_dropped(), 40);
}

#[test]
fn points_older_than_three_days_are_dropped_or_filtered_out() {
    let dir = common::temp_dir("spool-age").join("spool");
    let mut s = Spool::open(&dir, 1 << 20);
    let day = 86_400_000;
    let old = record(NOW - 4 * day, 3); // all 3 items 4 days old
                                        // 2 items straddling the limit: 3 days - 5 min (inside the 10 min margin) and 1 day
    let mut mixed = record(NOW - 3 * day + 300_000, 1);
    let fresh_part = record(NOW - day, 1);
    let body = format!(
        "[{},{}]",
        std::str::from_utf8(&mixed.body[1..mixed.body.len() - 1]).unwrap(),
        std::str::from_utf8(&fresh_part.body[1..fresh_part.body.len() - 1]).unwrap()
    );
    mixed = Record {
        body: body.into_bytes(),
        oldest_ms: NOW - 3 * day + 300_000,
        newest_ms: NOW - day,
        items: 2,
    };
    s.push(&old).unwrap();
    s.push(&mixed).unwrap();
    let front = s.front(NOW).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&front.body).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["collect_time"].as_i64(), Some(NOW - day));
    assert_eq!((front.items, front.oldest_ms), (1, NOW - day));
    // 3 expired + 1 filtered out
    assert_eq!(s.take_dropped(), 4);
    assert!(MAX_AGE_MS == 3 * day);
}

#[test]
fn memory_backlog_is_bounded_and_moves_to_disk_when_it_can() {
    let dir = common::temp_dir("backlog");
    let spool_dir = dir.join("spool");
    std::fs::write(&spool_dir, b"a file in the way").unwrap();
    let mut b = Backlog::new(Spool::open(&spool_dir, 64 << 20));
    let big = |t: i64| Record {
        body: vec![b' '; 1 << 20],
        oldest_ms: t,
        newest_ms: t,
        items: 7,
    };
    for k in 0..6 {
        b.push(big(NOW + k), k as u64);
    }
    // 6 bodies of 1 MiB against a 4 MiB memory budget: the 2 oldest are dropped
    assert_eq!(MEMORY_MAX_BYTES, 4 << 20);
    assert_eq!(b.memory_len(), 4);
    assert_eq!(b.take_dropped(), 2 * 7);
    std::fs::remove_file(&spool_dir).unwrap();
    b.push(big(NOW + 6), 7);
    assert_eq!(b.memory_len(), 0, "everything moved to disk");
    assert_eq!(b.len(), 5);
    assert_eq!(b.front(NOW).unwrap().oldest_ms, NOW + 2, "oldest first");
}

// ---------------------------------------------------------------- the real binary

fn fixture(dir: &Path, extra: &str) -> PathBuf {
    let proc_root = dir.join("proc");
    std::fs::create_dir_all(proc_root.join("sys/kernel/random")).unwrap();
    std::fs::write(proc_root.join("stat"), "cpu  1 2 3 4 5 6 7 0 0 0\n").unwrap();
    std::fs::write(
        proc_root.join("meminfo"),
        "MemTotal: 1000 kB\nMemFree: 500 kB\n",
    )
    .unwrap();
    std::fs::write(proc_root.join("loadavg"), "0.01 0.02 0.03 1/50 99\n").unwrap();
    std::fs::write(proc_root.join("sys/kernel/random/boot_id"), "boot-1\n").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"endpoint":"http://127.0.0.1:{port}","region":"r1","project_id":"p1","instance_id":"i-kill",
                "access_key":"AK","secret_key":"SK-TEST","metadata_url":"http://127.0.0.1:9",
                "collect_interval":1,"report_interval":1,"jitter":0,
                "state_dir":"{}","proc_root":"{}","sys_root":"{}"{extra}}}"#,
            dir.join("state").display(),
            proc_root.display(),
            dir.join("sys").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn check_records(recs: &[Record]) {
    for r in recs {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), r.items as usize);
    }
}

#[test]
fn kill_9_during_spooling_leaves_a_readable_spool() {
    let dir = common::temp_dir("kill9");
    let cfg = fixture(&dir, "");
    let spool_dir = dir.join("state/spool");
    let mut total = 0;
    for (round, ms) in [2300u64, 1700, 2900].into_iter().enumerate() {
        let mut child = common::spawn_run(&cfg);
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let s = Spool::open(&spool_dir, 16 << 20);
        assert!(
            s.len() > total,
            "round {round}: {} records, before {total}",
            s.len()
        );
        total = s.len();
    }
    // now a crash exactly mid-write: half a record at the end of the newest segment
    let last = segments(&spool_dir).pop().unwrap();
    let half = record(NOW, 5).frame();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&last, &bytes).unwrap();
    let out = common::agent_command()
        .arg("--config")
        .arg(&cfg)
        .arg("once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("torn or corrupt"), "{err}");
    let mut s = Spool::open(&spool_dir, 16 << 20);
    // every earlier record intact, plus the one `once` could not deliver
    let recs = drain(&mut s);
    assert_eq!(recs.len(), total + 1);
    check_records(&recs);
}

/// Room for a couple of one-second reports (a few KiB each), not for five.
const FSIZE_LIMIT: u64 = 6 * 1024;

#[test]
fn a_file_size_limit_degrades_to_memory_without_dying() {
    use std::os::unix::process::CommandExt;
    let dir = common::temp_dir("fsize");
    let cfg = fixture(&dir, "");
    let mut cmd = common::agent_command();
    cmd.arg("--config").arg(&cfg).arg("run");
    cmd.stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_FSIZE,
                FSIZE_LIMIT,
                FSIZE_LIMIT,
            )
            .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(5500));
    assert!(child.try_wait().unwrap().is_none(), "the agent died");
    common::sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    // ~5 reports hit the limit, but the problem is logged once a minute, not every cycle
    assert_eq!(err.matches("batches in memory").count(), 1, "{err}");
    let mut s = Spool::open(&dir.join("state/spool"), 16 << 20);
    let recs = drain(&mut s);
    assert!(!recs.is_empty());
    check_records(&recs);
    for seg in segments(&dir.join("state/spool")) {
        assert!(std::fs::metadata(seg).unwrap().len() <= FSIZE_LIMIT);
    }
}
