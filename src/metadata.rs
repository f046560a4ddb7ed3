//! STUB (issue 4): instance metadata client (token flow, securitykey, meta_data.json)
//! and the identity it yields. Keep these public names.

/// Who this host is to Cloud Eye.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub project_id: String,
    pub region: String,
    /// `AGT.ECS`, `SERVICE.BMS` or the configured namespace.
    pub namespace: String,
}
