//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<CpuSample> {
    None
}

pub fn rates(_a: &CpuSample, _b: &CpuSample, _out: &mut Vec<Metric>) {}
