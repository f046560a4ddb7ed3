//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<TcpSample> {
    None
}

pub fn gauges(_s: &TcpSample, _out: &mut Vec<Metric>) {}

pub fn rates(_a: &TcpSample, _b: &TcpSample, _out: &mut Vec<Metric>) {}
