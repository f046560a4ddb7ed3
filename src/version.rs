//! Build information stamped by build.rs.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("CLOUDEYE_GIT_COMMIT");
pub const TARGET: &str = env!("CLOUDEYE_TARGET");
pub const BUILD_DATE: &str = env!("CLOUDEYE_BUILD_DATE");

/// `User-Agent` for every HTTP request.
pub fn user_agent() -> String {
    format!("cloudeye-agent/{VERSION}")
}

/// What `cloudeye-agent version` prints.
pub fn long_version() -> String {
    format!(
        "cloudeye-agent {VERSION}\ncommit: {GIT_COMMIT}\ntarget: {TARGET}\nbuilt: {BUILD_DATE}\n"
    )
}
