//! The log_file writer against a real filesystem: rotation at 1 MiB, two generations,
//! file mode, and surviving an outside logrotate (rename or copytruncate).

mod common;

use cloudeye_agent::logging::{RotatingFile, LOG_FILE_MAX_BYTES};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

const LINE: &[u8] =
    b"2026-01-01T00:00:00Z WARN send failed: connection refused, batch kept in spool.\n";

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rotation_keeps_exactly_two_capped_generations() {
    let dir = common::temp_dir("logrotate");
    let path = dir.join("agent.log");
    let mut w = RotatingFile::open(&path, LOG_FILE_MAX_BYTES).unwrap();
    // 80-byte lines; 2.5 MiB = 2621440 bytes = 32768 lines: forces at least two rotations
    assert_eq!(LINE.len(), 80);
    let lines = 2_621_440 / LINE.len();
    for _ in 0..lines {
        w.write_all(LINE).unwrap();
        w.flush().unwrap();
    }
    assert_eq!(files_in(&dir), vec!["agent.log", "agent.log.1"]);
    let cap = LOG_FILE_MAX_BYTES + LINE.len() as u64;
    let current = std::fs::metadata(&path).unwrap().len();
    let previous = std::fs::metadata(dir.join("agent.log.1")).unwrap().len();
    assert!(current <= cap && previous <= cap, "{current} {previous}");
    // 1 MiB / 80 = 13107.2 -> a full generation holds 13107 lines = 1048560 bytes
    assert_eq!(previous, 13_107 * 80);
    // 32768 lines = 2 full generations (26214) + 6554 in the current file
    assert_eq!(current, (32_768 - 2 * 13_107) * 80);
    // every line is whole: rotation never splits an event
    let text = std::fs::read_to_string(dir.join("agent.log.1")).unwrap();
    assert!(text
        .lines()
        .all(|l| l.as_bytes() == &LINE[..LINE.len() - 1]));
}

#[test]
fn created_with_mode_0640() {
    let dir = common::temp_dir("logmode");
    let path = dir.join("agent.log");
    let mut w = RotatingFile::open(&path, 200).unwrap();
    w.write_all(LINE).unwrap();
    w.write_all(LINE).unwrap();
    w.write_all(LINE).unwrap(); // 240 > 200: rotates, the new file is created too
    for p in [&path, &dir.join("agent.log.1")] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o027, 0, "{} has mode {mode:o}", p.display());
    }
}

#[test]
fn an_oversized_event_goes_whole_into_an_empty_file() {
    let dir = common::temp_dir("logbig");
    let path = dir.join("agent.log");
    let mut w = RotatingFile::open(&path, 100).unwrap();
    let big = vec![b'x'; 300];
    w.write_all(&big).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 300);
    assert!(!dir.join("agent.log.1").exists());
    w.write_all(LINE).unwrap();
    assert_eq!(
        std::fs::metadata(dir.join("agent.log.1")).unwrap().len(),
        300
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
}

#[test]
fn outside_rename_is_followed_by_a_fresh_file() {
    let dir = common::temp_dir("logmoved");
    let path = dir.join("agent.log");
    let mut w = RotatingFile::open(&path, LOG_FILE_MAX_BYTES).unwrap();
    w.write_all(LINE).unwrap();
    std::fs::rename(&path, dir.join("agent.log-20260101")).unwrap();
    w.write_all(LINE).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
    assert_eq!(
        std::fs::metadata(dir.join("agent.log-20260101"))
            .unwrap()
            .len(),
        80
    );
}

#[test]
fn copytruncate_resets_the_size_count() {
    let dir = common::temp_dir("logtrunc");
    let path = dir.join("agent.log");
    let mut w = RotatingFile::open(&path, 200).unwrap();
    w.write_all(LINE).unwrap();
    w.write_all(LINE).unwrap(); // 160 bytes
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    w.write_all(LINE).unwrap(); // 0 + 80: no rotation after the truncate
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
    assert!(!dir.join("agent.log.1").exists());
}
