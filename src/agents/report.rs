//! What a CLI coding agent reports about an attempt, read from its machine-readable
//! output: success or failure and why, the final message (the step's `output`), turns,
//! tokens, cost, tool calls and the calls its own permissions denied.

use crate::ir::Tool;
use serde_json::Value;

/// One attempt of a tool agent, as the tool reported it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentReport {
    /// Whether the tool says it succeeded.
    pub ok: bool,
    /// Why not, in the tool's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The final message.
    #[serde(default)]
    pub message: String,
    /// Model turns (requests), where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// Input tokens, where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens, where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Cost in US dollars, where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Tool calls, where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<u64>,
    /// Calls the tool's own permissions refused (tool name and what it was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<String>,
    /// A budget the tool stopped at.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
}

/// Reads the report of `tool` from its stdout (and stderr, where Gemini puts its error
/// object) and exit code; `None` when the output holds nothing the tool would print
/// (it crashed before, or is not that tool).
pub fn parse(
    tool: Tool,
    stdout: &str,
    stderr: &str,
    exit_code: Option<i32>,
) -> Option<AgentReport> {
    match tool {
        Tool::Claude => claude(stdout),
        Tool::Codex => codex(stdout, exit_code),
        Tool::Gemini => gemini_stream(stdout, exit_code)
            .or_else(|| gemini(stdout, exit_code))
            .or_else(|| gemini(stderr, exit_code)),
        Tool::Aider => Some(aider(None, stdout, exit_code)),
    }
}

/// aider's report. It prints text only, so success is its exit code. With its chat
/// history (`--chat-history-file`: its own output quoted with `> `, the user's messages
/// as `#### ` lines, the model's replies as they are) the message is the model's last
/// reply and the tokens are the sums of its `Tokens: N sent, M received.` lines, one
/// per model request (aider rounds counts above 1,000 to hundreds: `1.2k`); without it,
/// the message is all it printed.
pub fn aider(history: Option<&str>, stdout: &str, exit_code: Option<i32>) -> AgentReport {
    let mut report = AgentReport {
        ok: exit_code == Some(0),
        message: stdout.trim().to_string(),
        ..Default::default()
    };
    let Some(history) = history else {
        return report;
    };
    let mut reply: Vec<&str> = Vec::new();
    let (mut sent, mut received, mut turns) = (0u64, 0u64, 0u64);
    for line in history.lines() {
        if line.starts_with("#### ") {
            reply.clear();
        } else if let Some(quoted) = line.strip_prefix('>') {
            if let Some((s, r)) = aider_tokens(quoted.trim()) {
                sent += s;
                received += r;
                turns += 1;
            }
        } else {
            reply.push(line);
        }
    }
    let reply = reply.join("\n");
    if !reply.trim().is_empty() {
        report.message = reply.trim().to_string();
    }
    if turns > 0 {
        report.turns = Some(turns);
        report.input_tokens = Some(sent);
        report.output_tokens = Some(received);
    }
    report
}

/// The counts of aider's `Tokens: 1.2k sent, 340 received.` (more may follow: cache
/// counts, cost).
fn aider_tokens(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("Tokens: ")?;
    let (sent, rest) = rest.split_once(" sent, ")?;
    let received = rest.split_whitespace().next()?;
    Some((aider_count(sent)?, aider_count(received)?))
}

/// `340`, `1.2k`, `15k` as a number.
fn aider_count(text: &str) -> Option<u64> {
    let text = text.trim_end_matches([',', '.']);
    match text.strip_suffix('k') {
        Some(thousands) => thousands
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| (n * 1000.0).round() as u64),
        None => text.parse().ok(),
    }
}

/// The last JSON object in `text` that satisfies `want`: tools print warnings and
/// progress before it, and Gemini prints its object over many lines.
fn last_object(text: &str, want: impl Fn(&Value) -> bool) -> Option<Value> {
    let mut found = None;
    // One object per line (Claude), or one spread over lines starting at a line that
    // is just `{` (Gemini): try both, keep the last that parses.
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if !t.starts_with('{') {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<Value>(t) {
            if want(&v) {
                found = Some((i, v));
                continue;
            }
        }
        if t.trim_end() == "{" {
            let rest: String = text.lines().skip(i).collect::<Vec<_>>().join("\n");
            let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Value>();
            if let Some(Ok(v)) = stream.next() {
                if want(&v) {
                    found = Some((i, v));
                }
            }
        }
    }
    found.map(|(_, v)| v)
}

/// The deepest `message` string inside `text`, when `text` is JSON.
fn innermost_message(text: &str) -> Option<String> {
    fn dig(v: &Value) -> Option<String> {
        match v {
            Value::Object(map) => map.values().find_map(dig).or_else(|| {
                map.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }),
            Value::Array(items) => items.iter().find_map(dig),
            Value::String(s) => innermost_message(s),
            _ => None,
        }
    }
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    dig(&v)
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_u64()
}

fn claude(stdout: &str) -> Option<AgentReport> {
    let v = last_object(stdout, |v| {
        v.get("type").and_then(Value::as_str) == Some("result")
    })?;
    let subtype = v.get("subtype").and_then(Value::as_str).unwrap_or("");
    let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(true);
    let message = v
        .get("result")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ok = !is_error && subtype == "success";
    let over_budget = subtype == "error_max_budget_usd";
    let reason = (!ok).then(|| match subtype {
        "error_max_turns" => "claude stopped at its turn limit (`max_turns`)".to_string(),
        "error_max_budget_usd" => "claude stopped at its budget (`budget`)".to_string(),
        "success" | "" if !message.is_empty() => format!("claude reported an error: {message}"),
        other => {
            let errors: Vec<String> = v
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if errors.is_empty() {
                format!("claude failed ({other})")
            } else {
                format!("claude failed ({other}): {}", errors.join("; "))
            }
        }
    });
    let denials = v
        .get("permission_denials")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|d| {
                    let tool = d.get("tool_name").and_then(Value::as_str).unwrap_or("?");
                    let input = d.get("tool_input").cloned().unwrap_or(Value::Null);
                    let what = input
                        .get("command")
                        .or_else(|| input.get("file_path"))
                        .or_else(|| input.get("url"))
                        .and_then(Value::as_str)
                        .map_or_else(|| input.to_string(), str::to_string);
                    format!("{tool}: {what}")
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = v.get("usage").cloned().unwrap_or(Value::Null);
    let input_tokens = [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| u64_at(&usage, &[k]))
    .reduce(|a, b| a + b);
    Some(AgentReport {
        ok,
        reason,
        message,
        turns: u64_at(&v, &["num_turns"]),
        input_tokens,
        output_tokens: u64_at(&usage, &["output_tokens"]),
        cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
        tool_calls: None,
        denials,
        over_budget,
    })
}

fn codex(stdout: &str, exit_code: Option<i32>) -> Option<AgentReport> {
    let mut seen = false;
    let mut r = AgentReport::default();
    let mut failure: Option<String> = None;
    let mut errors: Vec<String> = Vec::new();
    let (mut input, mut output, mut turns, mut calls) = (0u64, 0u64, 0u64, 0u64);
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            continue;
        };
        seen = true;
        match kind {
            "turn.completed" => {
                turns += 1;
                let u = v.get("usage").cloned().unwrap_or(Value::Null);
                input += u64_at(&u, &["input_tokens"]).unwrap_or(0);
                output += u64_at(&u, &["output_tokens"]).unwrap_or(0);
            }
            "turn.failed" => {
                turns += 1;
                failure = Some(
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("the turn failed")
                        .to_string(),
                );
            }
            "error" => {
                if let Some(m) = v.get("message").and_then(Value::as_str) {
                    errors.push(m.to_string());
                }
            }
            "item.completed" => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                match item.get("type").and_then(Value::as_str).unwrap_or("") {
                    "agent_message" => {
                        r.message = item
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                    }
                    "command_execution" => {
                        calls += 1;
                        if item.get("status").and_then(Value::as_str) == Some("declined") {
                            let cmd = item.get("command").and_then(Value::as_str).unwrap_or("?");
                            r.denials.push(format!("command: {cmd}"));
                        }
                    }
                    "file_change" | "mcp_tool_call" | "web_search" => calls += 1,
                    "error" => {
                        if let Some(m) = item.get("message").and_then(Value::as_str) {
                            errors.push(m.to_string());
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !seen {
        return None;
    }
    r.ok = failure.is_none() && exit_code == Some(0);
    if !r.ok {
        r.reason = Some(match (failure, errors.last()) {
            (Some(f), _) => format!("codex: {f}"),
            (None, Some(e)) => format!("codex: {e}"),
            (None, None) => "codex exited with a failure".to_string(),
        });
    }
    r.turns = Some(turns);
    r.input_tokens = Some(input);
    r.output_tokens = Some(output);
    r.tool_calls = Some(calls);
    Some(r)
}

/// Gemini's `stream-json` events: `tool_use` (name, parameters), `tool_result` (a
/// `policy_violation` error is a denial), assistant `message` deltas, and a final
/// `result` with its status and stats. `None` without a `result` event: Gemini then
/// died before it, and printed its error object (on stderr) instead.
fn gemini_stream(stdout: &str, exit_code: Option<i32>) -> Option<AgentReport> {
    let mut r = AgentReport::default();
    let mut calls: std::collections::HashMap<String, String> = Default::default();
    let mut message = String::new();
    let mut result = None;
    let mut errors = Vec::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "tool_use" => {
                message.clear();
                let name = v.get("tool_name").and_then(Value::as_str).unwrap_or("?");
                let params = v.get("parameters").cloned().unwrap_or(Value::Null);
                let what = params
                    .get("command")
                    .or_else(|| params.get("file_path"))
                    .or_else(|| params.get("url"))
                    .and_then(Value::as_str)
                    .map_or_else(|| params.to_string(), str::to_string);
                if let Some(id) = v.get("tool_id").and_then(Value::as_str) {
                    calls.insert(id.to_string(), format!("{name}: {what}"));
                }
            }
            "tool_result" => {
                message.clear();
                let kind = v.pointer("/error/type").and_then(Value::as_str);
                if kind == Some("policy_violation") {
                    let id = v.get("tool_id").and_then(Value::as_str).unwrap_or("");
                    r.denials
                        .push(calls.get(id).cloned().unwrap_or_else(|| id.to_string()));
                }
            }
            "message" if v.get("role").and_then(Value::as_str) == Some("assistant") => {
                message.push_str(v.get("content").and_then(Value::as_str).unwrap_or(""));
            }
            "error" => {
                if let Some(m) = v.get("message").and_then(Value::as_str) {
                    errors.push(m.to_string());
                }
            }
            "result" => result = Some(v),
            _ => {}
        }
    }
    let result = result?;
    let status = result.get("status").and_then(Value::as_str).unwrap_or("");
    r.ok = status == "success" && exit_code == Some(0);
    if !r.ok {
        let what = result
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| innermost_message(m).unwrap_or_else(|| m.to_string()))
            .or_else(|| errors.last().cloned());
        r.reason = Some(match (exit_code, what) {
            (Some(53), _) => "gemini stopped at its turn limit (`max_turns`)".to_string(),
            (_, Some(m)) => format!("gemini: {m}"),
            (c, None) => format!("gemini ended with status `{status}` (exit {c:?})"),
        });
    }
    let stats = result.get("stats").cloned().unwrap_or(Value::Null);
    r.input_tokens = u64_at(&stats, &["input_tokens"]);
    r.output_tokens = u64_at(&stats, &["output_tokens"]);
    r.tool_calls = u64_at(&stats, &["tool_calls"]).or(Some(calls.len() as u64));
    r.message = message;
    Some(r)
}

fn gemini(stdout: &str, exit_code: Option<i32>) -> Option<AgentReport> {
    let v = last_object(stdout, |v| {
        v.get("response").is_some() || v.get("error").is_some() || v.get("stats").is_some()
    })?;
    let error = v.get("error").filter(|e| !e.is_null());
    let message = v
        .get("response")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ok = error.is_none() && exit_code == Some(0);
    let reason = (!ok).then(|| {
        // The message can be the server's error body, JSON in a string: its innermost
        // `message` is the readable part.
        let what = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(|m| innermost_message(m).unwrap_or_else(|| m.to_string()));
        match (exit_code, what) {
            (Some(53), _) => "gemini stopped at its turn limit (`max_turns`)".to_string(),
            (_, Some(m)) => format!("gemini: {m}"),
            (Some(c), None) => format!("gemini exited with code {c}"),
            (None, None) => "gemini failed".to_string(),
        }
    });
    let (mut input, mut output, mut turns) = (None::<u64>, None::<u64>, None::<u64>);
    if let Some(models) = v.pointer("/stats/models").and_then(Value::as_object) {
        for m in models.values() {
            let add = |acc: &mut Option<u64>, x: Option<u64>| {
                if let Some(x) = x {
                    *acc = Some(acc.unwrap_or(0) + x);
                }
            };
            add(&mut input, u64_at(m, &["tokens", "prompt"]));
            add(&mut output, u64_at(m, &["tokens", "candidates"]));
            add(&mut turns, u64_at(m, &["api", "totalRequests"]));
        }
    }
    let tools = v.pointer("/stats/tools").cloned().unwrap_or(Value::Null);
    let mut denials = Vec::new();
    if let Some(by) = tools.get("byName").and_then(Value::as_object) {
        for (name, t) in by {
            let rejected = u64_at(t, &["decisions", "reject"]).unwrap_or(0);
            for _ in 0..rejected {
                denials.push(format!("{name}: denied"));
            }
        }
    }
    Some(AgentReport {
        ok,
        reason,
        message,
        turns,
        input_tokens: input,
        output_tokens: output,
        cost_usd: None,
        tool_calls: u64_at(&tools, &["totalCalls"]),
        denials,
        over_budget: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_success_and_denials() {
        let out = "warning: something\n{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"all done\",\"num_turns\":3,\"total_cost_usd\":0.0123,\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":7},\"permission_denials\":[{\"tool_name\":\"Bash\",\"tool_use_id\":\"t1\",\"tool_input\":{\"command\":\"rm -rf x\"}}]}\n";
        let r = parse(Tool::Claude, out, "", Some(0)).unwrap();
        assert!(r.ok);
        assert_eq!(r.message, "all done");
        assert_eq!(r.turns, Some(3));
        assert_eq!(r.input_tokens, Some(15));
        assert_eq!(r.output_tokens, Some(7));
        assert_eq!(r.cost_usd, Some(0.0123));
        assert_eq!(r.denials, vec!["Bash: rm -rf x"]);
    }

    #[test]
    fn claude_budget_and_turn_limits() {
        let out = r#"{"type":"result","subtype":"error_max_budget_usd","is_error":true,"num_turns":2,"total_cost_usd":0.5}"#;
        let r = parse(Tool::Claude, out, "", Some(1)).unwrap();
        assert!(!r.ok && r.over_budget);
        assert!(r.reason.unwrap().contains("budget"));
        let out = r#"{"type":"result","subtype":"error_max_turns","is_error":true}"#;
        let r = parse(Tool::Claude, out, "", Some(1)).unwrap();
        assert!(r.reason.unwrap().contains("turn limit"));
        assert!(parse(Tool::Claude, "not json\n", "", Some(1)).is_none());
    }

    #[test]
    fn codex_events() {
        let out = [
            r#"{"type":"thread.started","thread_id":"x"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":{"id":"1","type":"command_execution","command":"echo hi","exit_code":0,"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"2","type":"agent_message","text":"all done"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"output_tokens":20}}"#,
        ]
        .join("\n");
        let r = parse(Tool::Codex, &out, "", Some(0)).unwrap();
        assert!(r.ok);
        assert_eq!(r.message, "all done");
        assert_eq!(
            (r.turns, r.input_tokens, r.output_tokens, r.tool_calls),
            (Some(1), Some(100), Some(20), Some(1))
        );
        let failed = r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#;
        let r = parse(Tool::Codex, failed, "", Some(1)).unwrap();
        assert!(!r.ok);
        assert_eq!(r.reason.as_deref(), Some("codex: stream disconnected"));
    }

    #[test]
    fn gemini_stream_events() {
        let out = [
            r#"{"type":"init","session_id":"s","model":"auto"}"#,
            r#"{"type":"message","role":"user","content":"do it"}"#,
            r#"{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1","parameters":{"command":"rm -f README.md"}}"#,
            r#"{"type":"tool_result","tool_id":"t1","status":"error","output":"Tool execution denied by policy.","error":{"type":"policy_violation","message":"Tool execution denied by policy."}}"#,
            r#"{"type":"message","role":"assistant","content":"tried to ","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"remove it","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{"input_tokens":3000,"output_tokens":300,"tool_calls":1}}"#,
        ]
        .join("\n");
        let r = parse(Tool::Gemini, &out, "", Some(0)).unwrap();
        assert!(r.ok);
        assert_eq!(r.message, "tried to remove it");
        assert_eq!(r.denials, vec!["run_shell_command: rm -f README.md"]);
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.tool_calls),
            (Some(3000), Some(300), Some(1))
        );
    }

    #[test]
    fn gemini_pretty_json() {
        let out = "Ripgrep is not available.\n{\n  \"session_id\": \"s\",\n  \"response\": \"all done\",\n  \"stats\": {\"models\": {\"m\": {\"api\": {\"totalRequests\": 2}, \"tokens\": {\"prompt\": 50, \"candidates\": 9}}}, \"tools\": {\"totalCalls\": 2, \"byName\": {\"run_shell_command\": {\"decisions\": {\"reject\": 1}}}}}\n}\n";
        let r = parse(Tool::Gemini, out, "", Some(0)).unwrap();
        assert!(r.ok);
        assert_eq!(r.message, "all done");
        assert_eq!(
            (r.turns, r.input_tokens, r.output_tokens),
            (Some(2), Some(50), Some(9))
        );
        assert_eq!(r.tool_calls, Some(2));
        assert_eq!(r.denials, vec!["run_shell_command: denied"]);
        let err = "{\n  \"error\": {\"type\": \"FatalTurnLimitedError\", \"message\": \"limit\", \"code\": 53}\n}\n";
        let r = parse(Tool::Gemini, "", err, Some(53)).unwrap();
        assert!(!r.ok);
        assert!(r.reason.unwrap().contains("turn limit"));
        // A model error: exit 144 (400 & 0xff), the object on stderr after a trace.
        let err = "Error: at x (y.js:1)\n{\n  \"session_id\": \"s\",\n  \"error\": {\"type\": \"Error\", \"message\": \"[{\\\"error\\\":{\\\"code\\\":400,\\\"message\\\":\\\"scripted failure\\\"}}]\", \"code\": 400}\n}\n";
        let r = parse(Tool::Gemini, "", err, Some(144)).unwrap();
        assert_eq!(r.reason.as_deref(), Some("gemini: scripted failure"));
    }

    #[test]
    fn aider_reply_and_tokens_come_from_its_chat_history() {
        let history = "\n# aider chat started at 2026-12-03 19:23:12\n\n> Aider v0.86.2  \n> Model: openai/m with whole edit format  \n\n#### Create hello.txt  \n#### saying hello  \n\nhello.txt\n```\nhello\n```\n\n> Tokens: 1.2k sent, 340 received.  \n> Applied edit to hello.txt  \n\n#### And bye.txt  \n\nbye.txt\n```\nbye\n```\n\n> Tokens: 15k sent, 1.0k received. Cost: $0.01 message, $0.02 session.  \n";
        let r = aider(Some(history), "banner\nhello.txt\n", Some(0));
        assert!(r.ok);
        assert_eq!(r.message, "bye.txt\n```\nbye\n```");
        assert_eq!(r.turns, Some(2));
        assert_eq!(r.input_tokens, Some(16_200));
        assert_eq!(r.output_tokens, Some(1_340));
        assert_eq!(r.cost_usd, None);

        // No history (or nothing in it): what it printed, and its exit code.
        let r = aider(None, "  printed\n", Some(1));
        assert!(!r.ok);
        assert_eq!(r.message, "printed");
        assert_eq!(r.turns, None);
        let r = aider(Some("> Aider v0.86.2\n"), "printed", Some(0));
        assert_eq!(r.message, "printed");
    }
}
