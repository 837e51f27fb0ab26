//! The standard library: `.runbook` modules embedded in the binary, imported as `std/NAME`.

/// Every embedded module: its import name and its text.
pub const MODULES: &[(&str, &str)] = &[("agents", include_str!("../stdlib/agents.runbook"))];

/// The text of `std/NAME`, if it exists.
pub fn module(name: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| *text)
}
