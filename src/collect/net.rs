//! STUB: to be implemented (see collect/mod.rs for the contract).

use super::{reader::Reader, Settings};
use crate::metric::Metric;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetSample {}

pub fn read(_r: &mut Reader, _s: &Settings) -> Option<NetSample> {
    None
}

pub fn rates(_a: &NetSample, _b: &NetSample, _dt: f64, _out: &mut Vec<Metric>) {}
