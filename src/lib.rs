//! cloudeye-agent: a small, static, single-threaded monitoring agent for Huawei Cloud Eye.
//!
//! Data flows one way: [`collect`] samples /proc and /sys into metrics, [`metric`] turns
//! them into request bodies, [`spool`] keeps what could not be delivered, [`reporter`]
//! signs ([`sign`]) and sends ([`ces`]) them with credentials from [`credentials`] and
//! [`metadata`]. [`agent`] runs the loop (`run` and `once`) with [`state`] (the lock and
//! the sample `once` keeps between runs) and [`custom`] (the drop directory); [`check`]
//! tests every step of that path for an operator. [`cli`] and `main.rs` only parse and
//! dispatch; [`config`] is the one place key names and defaults live.

pub mod agent;
pub mod backoff;
pub mod ces;
pub mod check;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod credentials;
pub mod custom;
pub mod error;
pub mod glob;
pub mod logging;
pub mod metadata;
pub mod metric;
pub mod print;
pub mod reporter;
pub mod sign;
pub mod signals;
pub mod spool;
pub mod state;
pub mod version;
