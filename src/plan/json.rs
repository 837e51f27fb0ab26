//! The plan as one JSON document (`--format json`). Its shape is the [`Plan`] type's,
//! versioned by [`SCHEMA`](super::SCHEMA) and documented in `docs/cli.md`.

use super::Plan;

/// The plan as pretty-printed JSON, with a final newline.
pub fn render(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_else(|e| {
        // Serializing plain data to a string cannot fail; say so if it ever does.
        format!("{{\"error\": \"cannot serialize the plan: {e}\"}}")
    });
    text.push('\n');
    text
}
