//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<DiskSample> {
    None
}

pub fn rates(_a: &DiskSample, _b: &DiskSample, _dt: f64, _out: &mut Vec<Metric>) {}
