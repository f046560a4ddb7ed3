//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<LoadSample> {
    None
}

pub fn gauges(_s: &LoadSample, _cpu: Option<&super::cpu::CpuSample>, _out: &mut Vec<Metric>) {}
