//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<ProcSample> {
    None
}

pub fn gauges(_s: &ProcSample, _out: &mut Vec<Metric>) {}

pub fn rates(_a: &ProcSample, _b: &ProcSample, _dt: f64, _out: &mut Vec<Metric>) {}
