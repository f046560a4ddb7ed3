//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<MemorySample> {
    None
}

pub fn gauges(_s: &MemorySample, _out: &mut Vec<Metric>) {}
