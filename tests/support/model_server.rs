//! A scripted model server: the real CLI agents (claude, codex, gemini) talk to it over
//! HTTP instead of a hosted model, so tests drive them end to end, offline.
//!
//! ```ignore
//! let server = ModelServer::start(vec![Turn::Shell("echo hi".into()), Turn::Text("done".into())]);
//! // run the agent with its base URL set to server.url() …
//! assert!(server.tool_results().iter().any(|r| r.contains("hi")));
//! ```
//!
//! Plain std: a listener on 127.0.0.1, one thread per connection, hand-written HTTP/1.1
//! (Content-Length and chunked request bodies, keep-alive). The request path picks the
//! wire protocol: Anthropic Messages (`/v1/messages`), OpenAI Responses (`/v1/responses`),
//! OpenAI Chat Completions (`/v1/chat/completions`, aider's) or Gemini
//! (`/v1beta/models/M:streamGenerateContent`). Every *model request* (the agent
//! asking what to do next) consumes the next scripted [`Turn`]; side requests (token
//! counts, title or quota probes, Gemini's JSON checks) get a neutral answer and leave
//! the script alone. Every response reports token usage, so agents report tokens and cost.

use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the model "says" on one model request, independent of the wire protocol.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Run a shell command: claude `Bash{command}`, codex `exec_command{cmd}` (or `shell`),
    /// gemini `run_shell_command{command}`.
    Shell(String),
    /// Write a file, relative to the agent's working directory (an absolute path is kept):
    /// claude `Write{file_path}` (made absolute from the working directory its system
    /// prompt names), codex `apply_patch` (an `*** Add File` patch), gemini `write_file`.
    Write { path: String, content: String },
    /// Any tool by its exact name (an MCP tool, `Read`, …) with this input.
    Tool { name: String, input: Value },
    /// A final answer: ends the agent's turn.
    Text(String),
    /// An HTTP error in the protocol's error format, marked as not worth a retry.
    Fail { status: u16, message: String },
}

/// One HTTP request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target, query included (`/v1/messages?beta=true`).
    pub path: String,
    /// The headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub raw_body: String,
    /// Whether this request consumed (or, past the script, would have consumed) a turn.
    pub scripted: bool,
}

impl Recorded {
    /// The value of a header (by lowercase name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The wire protocol of a request, decided by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Anthropic,
    OpenAi,
    /// OpenAI Chat Completions, as aider (through litellm) speaks it: no tools, the
    /// edits are in the text.
    Chat,
    Gemini,
}

/// What the connection threads share with the test.
struct State {
    script: Mutex<VecDeque<Turn>>,
    requests: Mutex<Vec<Recorded>>,
    input_tokens: u64,
    output_tokens: u64,
    stopping: AtomicBool,
    /// The conversation of the last request answered with a `Fail`, and that turn: a
    /// retry of the same conversation gets the same failure without consuming a turn.
    last_failure: Mutex<Option<(String, Turn)>>,
}

/// The scripted model server; dropping it stops accepting connections.
pub struct ModelServer {
    state: Arc<State>,
    port: u16,
}

impl ModelServer {
    /// Starts a server on 127.0.0.1 (a free port) that plays `script`, one turn per model
    /// request, then answers `Text("done")`. Usage: 1000 input and 100 output tokens.
    pub fn start(script: Vec<Turn>) -> ModelServer {
        ModelServer::with_usage(script, 1000, 100)
    }

    /// Like `start`, reporting these token counts on every response (claude computes
    /// `total_cost_usd` from them, so large counts exceed a `--max-budget-usd`).
    pub fn with_usage(script: Vec<Turn>, input_tokens: u64, output_tokens: u64) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the model server");
        let port = listener.local_addr().expect("a bound address").port();
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            requests: Mutex::new(Vec::new()),
            input_tokens,
            output_tokens,
            stopping: AtomicBool::new(false),
            last_failure: Mutex::new(None),
        });
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accepting);
                std::thread::spawn(move || serve_connection(stream, &state));
            }
        });
        ModelServer { state, port }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// The model requests: those that consumed (or would consume) a scripted turn.
    pub fn model_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.scripted).collect()
    }

    /// The scripted turns not played yet.
    pub fn remaining_turns(&self) -> usize {
        self.state.script.lock().expect("script lock").len()
    }

    /// The tool names offered in the model requests, first appearance first, normalised
    /// across protocols (a codex MCP namespace `mcp__fs` yields `mcp__fs__read_file`).
    pub fn offered_tools(&self) -> Vec<String> {
        let mut names = Vec::new();
        for request in self.model_requests() {
            for name in tool_names(&request.body) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// The text of every tool result the agent sent back (claude `tool_result`, codex
    /// `function_call_output`, gemini `functionResponse`), each once, oldest first.
    pub fn tool_results(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        let mut results = Vec::new();
        for request in self.model_requests() {
            for (index, (id, text)) in tool_results_of(&request.body).into_iter().enumerate() {
                // Each request repeats the conversation so far: a result is new once.
                let key = id.unwrap_or_else(|| format!("#{index}"));
                if !seen.contains(&key) {
                    seen.push(key);
                    results.push(text);
                }
            }
        }
        results
    }

    /// Every request as one line each (method, path, body), for failure messages.
    pub fn transcript(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let mark = if r.scripted { "*" } else { " " };
                format!(
                    "{mark} {} {} {}\n",
                    r.method,
                    r.path,
                    truncate(&r.raw_body, 300)
                )
            })
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag; connection threads end with their
        // clients (or their read timeout) and are never joined.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1

/// A parsed request before it is recorded.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, content type and the whole body (SSE included: the script is
/// known up front, so a stream is sent at once with a Content-Length).
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    no_retry: bool,
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.to_string(),
            no_retry: status >= 400,
        }
    }

    fn sse(body: String) -> Response {
        Response {
            status: 200,
            content_type: "text/event-stream",
            body,
            no_retry: false,
        }
    }
}

fn serve_connection(stream: TcpStream, state: &State) {
    // A stuck client must not keep a thread forever; agents reconnect when needed.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    loop {
        if state.stopping.load(Ordering::SeqCst) {
            break;
        }
        let request = match read_request(&mut reader, &mut writer) {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(message) => {
                let _ = write_response(
                    &mut writer,
                    &Response::json(400, json!({ "error": { "message": message } })),
                    false,
                );
                break;
            }
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handle(state, request);
        if write_response(&mut writer, &response, close).is_err() || close {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
) -> Result<Option<Request>, String> {
    let mut line = String::new();
    // Skip blank lines between requests (tolerated by RFC 9112).
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => break,
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut request = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("short body: {e}"))?;
        request.body = body;
    }
    if let Some(encoding) = request.header("content-encoding") {
        if !encoding.eq_ignore_ascii_case("identity") {
            return Err(format!(
                "the scripted model server cannot decode Content-Encoding {encoding}"
            ));
        }
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader
            .read_line(&mut size_line)
            .map_err(|e| format!("chunk size: {e}"))?;
        let size = size_line.trim().split(';').next().unwrap_or_default();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut trailer = String::new();
                match reader.read_line(&mut trailer) {
                    Ok(0) => return Ok(body),
                    Ok(_) if trailer.trim().is_empty() => return Ok(body),
                    Ok(_) => {}
                    Err(e) => return Err(format!("chunk trailer: {e}")),
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| format!("chunk: {e}"))?;
        let mut crlf = [0; 2];
        reader
            .read_exact(&mut crlf)
            .map_err(|e| format!("chunk end: {e}"))?;
    }
}

fn write_response(writer: &mut TcpStream, response: &Response, close: bool) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\nrequest-id: req_scripted\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if response.no_retry {
        head.push_str("x-should-retry: false\r\n");
    }
    head.push_str(if close {
        "connection: close\r\n\r\n"
    } else {
        "connection: keep-alive\r\n\r\n"
    });
    writer.write_all(head.as_bytes())?;
    writer.write_all(response.body.as_bytes())?;
    writer.flush()
}

// ---------------------------------------------------------------------------------------
// Routing

fn protocol_of(path: &str) -> Option<Protocol> {
    let path = path.split('?').next().unwrap_or_default();
    if path.starts_with("/v1/messages") {
        Some(Protocol::Anthropic)
    } else if path.starts_with("/v1/responses") {
        Some(Protocol::OpenAi)
    } else if path.ends_with("/chat/completions") {
        Some(Protocol::Chat)
    } else if path.contains("/models/") && path.starts_with("/v1") {
        Some(Protocol::Gemini)
    } else {
        None
    }
}

/// Whether a request asks the model for the agent's next move (and so plays a turn).
fn is_model_request(protocol: Protocol, path: &str, body: &Value) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    match protocol {
        // count_tokens, and the quota/title probes (no tools, often not streamed).
        Protocol::Anthropic => path == "/v1/messages" && body["stream"] == true && has_tools,
        Protocol::OpenAi => path == "/v1/responses" && has_tools,
        // Every completion is the model's move: aider has no side calls.
        Protocol::Chat => true,
        // generateContent (no stream) is Gemini's JSON side calls: next speaker, routing,
        // loop detection; countTokens and the rest are side calls too.
        Protocol::Gemini => path.ends_with(":streamGenerateContent") && has_tools,
    }
}

fn handle(state: &State, request: Request) -> Response {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let protocol = protocol_of(&request.path);
    let scripted = protocol.is_some_and(|p| is_model_request(p, &request.path, &body));
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(Recorded {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: body.clone(),
            raw_body: String::from_utf8_lossy(&request.body).into_owned(),
            scripted,
        });
    let usage = Usage {
        input: state.input_tokens,
        output: state.output_tokens,
    };
    let Some(protocol) = protocol else {
        // Claude's connectivity probe.
        if request.path == "/api/hello" {
            return Response::json(200, json!({ "message": "hello" }));
        }
        return Response::json(
            404,
            json!({ "error": { "message": format!("no such endpoint: {}", request.path) } }),
        );
    };
    if !scripted {
        return side_answer(protocol, &request.path, &body, usage);
    }
    let turn = next_turn(state, &body);
    let serial = state
        .requests
        .lock()
        .expect("requests lock")
        .iter()
        .filter(|r| r.scripted)
        .count();
    match protocol {
        Protocol::Anthropic => anthropic_turn(&turn, &body, serial, usage),
        Protocol::OpenAi => openai_turn(&turn, &body, serial, usage),
        Protocol::Chat => chat_turn(&turn, &body, serial, usage),
        Protocol::Gemini => gemini_turn(&turn, &body, serial, usage),
    }
}

/// The turn that answers a model request: the failure again when the request retries
/// the conversation a `Fail` answered (claude retries a 400 with fewer beta headers,
/// every agent retries a 5xx), else the next scripted turn, else `Text("done")`.
fn next_turn(state: &State, body: &Value) -> Turn {
    let conversation = [&body["messages"], &body["input"], &body["contents"]]
        .iter()
        .map(|v| v.to_string())
        .collect::<String>();
    let mut last_failure = state.last_failure.lock().expect("failure lock");
    if let Some((failed, turn)) = last_failure.as_ref() {
        if *failed == conversation {
            return turn.clone();
        }
    }
    let turn = state
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(|| Turn::Text("done".into()));
    *last_failure = match turn {
        Turn::Fail { .. } => Some((conversation, turn.clone())),
        _ => None,
    };
    turn
}

#[derive(Clone, Copy)]
struct Usage {
    input: u64,
    output: u64,
}

/// A neutral answer to a request that does not play the script.
fn side_answer(protocol: Protocol, path: &str, body: &Value, usage: Usage) -> Response {
    let route = path.split('?').next().unwrap_or_default();
    match protocol {
        Protocol::Anthropic if route.ends_with("/count_tokens") => {
            Response::json(200, json!({ "input_tokens": usage.input }))
        }
        Protocol::Anthropic if body["stream"] == true => {
            anthropic_turn(&Turn::Text("ok".into()), body, 0, usage)
        }
        Protocol::Anthropic => Response::json(
            200,
            json!({
                "id": "msg_side", "type": "message", "role": "assistant",
                "model": body["model"],
                "content": [{ "type": "text", "text": "ok" }],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": anthropic_usage(usage),
            }),
        ),
        Protocol::OpenAi => openai_turn(&Turn::Text("ok".into()), body, 0, usage),
        Protocol::Chat => chat_turn(&Turn::Text("ok".into()), body, 0, usage),
        Protocol::Gemini if route.ends_with(":countTokens") => {
            Response::json(200, json!({ "totalTokens": usage.input }))
        }
        Protocol::Gemini => {
            let text = gemini_side_text(body);
            let chunk = gemini_chunk(vec![json!({ "text": text })], usage);
            if route.ends_with(":streamGenerateContent") {
                Response::sse(format!("data: {chunk}\r\n\r\n"))
            } else {
                Response::json(200, chunk)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Anthropic Messages

fn anthropic_usage(usage: Usage) -> Value {
    json!({
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

fn anthropic_turn(turn: &Turn, body: &Value, serial: usize, usage: Usage) -> Response {
    let (name, input) = match turn {
        Turn::Fail { status, message } => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            return Response::json(
                *status,
                json!({ "type": "error", "error": { "type": kind, "message": message } }),
            );
        }
        Turn::Text(text) => {
            let block = json!({ "type": "text", "text": "" });
            let delta = json!({ "type": "text_delta", "text": text });
            return Response::sse(anthropic_stream(body, block, delta, "end_turn", usage));
        }
        Turn::Shell(command) => ("Bash".to_string(), json!({ "command": command })),
        Turn::Write { path, content } => {
            let path = absolute(path, anthropic_cwd(body).as_deref());
            if offers(body, "Write") {
                let input = json!({ "file_path": path, "content": content });
                ("Write".to_string(), input)
            } else {
                // `--bare` offers no Write: an Edit of nothing creates the file.
                let input = json!({ "file_path": path, "old_string": "", "new_string": content });
                ("Edit".to_string(), input)
            }
        }
        Turn::Tool { name, input } => (name.clone(), input.clone()),
    };
    let block = json!({
        "type": "tool_use", "id": format!("toolu_scripted_{serial}"), "name": name, "input": {},
    });
    let delta = json!({ "type": "input_json_delta", "partial_json": input.to_string() });
    Response::sse(anthropic_stream(body, block, delta, "tool_use", usage))
}

/// Whether a request offers a tool of this name (Anthropic and OpenAI: `tools[].name`).
fn offers(body: &Value, name: &str) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == name))
}

fn anthropic_stream(body: &Value, block: Value, delta: Value, stop: &str, usage: Usage) -> String {
    let events = [
        json!({
            "type": "message_start",
            "message": {
                "id": "msg_scripted", "type": "message", "role": "assistant",
                "model": body["model"], "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": usage.input, "output_tokens": 1,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
            },
        }),
        json!({ "type": "content_block_start", "index": 0, "content_block": block }),
        json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop, "stop_sequence": null },
            "usage": anthropic_usage(usage),
        }),
        json!({ "type": "message_stop" }),
    ];
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}

/// The working directory claude names in its system prompt (`CWD: /path` under `--bare`,
/// else "Primary working directory: /path").
fn anthropic_cwd(body: &Value) -> Option<String> {
    let system = match &body["system"] {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    system.lines().find_map(|line| {
        let rest = line
            .strip_prefix("CWD:")
            .or_else(|| line.split_once("orking directory:").map(|(_, rest)| rest))?;
        Some(rest.trim().to_string())
    })
}

fn absolute(path: &str, cwd: Option<&str>) -> String {
    match cwd {
        Some(cwd) if !path.starts_with('/') => format!("{}/{path}", cwd.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// OpenAI Responses

fn openai_turn(turn: &Turn, body: &Value, serial: usize, usage: Usage) -> Response {
    let call_id = format!("call_scripted_{serial}");
    let item = match turn {
        Turn::Fail { status, message } => {
            return Response::json(
                *status,
                json!({ "error": { "message": message, "type": "invalid_request_error",
                                   "code": null, "param": null } }),
            );
        }
        Turn::Text(text) => json!({
            "type": "message", "id": format!("msg_scripted_{serial}"), "role": "assistant",
            "status": "completed",
            "content": [{ "type": "output_text", "text": text, "annotations": [] }],
        }),
        Turn::Shell(command) => openai_shell(body, command, &call_id),
        Turn::Write { path, content } => openai_write(body, path, content, &call_id),
        Turn::Tool { name, input } => openai_function(name, input, &call_id),
    };
    let response_id = format!("resp_scripted_{serial}");
    let events = [
        json!({ "type": "response.created", "response": { "id": response_id } }),
        json!({ "type": "response.output_item.added", "output_index": 0, "item": item }),
        json!({ "type": "response.output_item.done", "output_index": 0, "item": item }),
        json!({
            "type": "response.completed",
            "response": {
                "id": response_id,
                "usage": {
                    "input_tokens": usage.input,
                    "input_tokens_details": { "cached_tokens": 0 },
                    "output_tokens": usage.output,
                    "output_tokens_details": { "reasoning_tokens": 0 },
                    "total_tokens": usage.input + usage.output,
                },
            },
        }),
    ];
    Response::sse(
        events
            .iter()
            .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// OpenAI Chat Completions

/// A chat completion: the turn as text, a `Write` in aider's "whole" edit format (the
/// path on a line, then the file's whole content fenced). Tool turns have no form here.
fn chat_turn(turn: &Turn, body: &Value, serial: usize, usage: Usage) -> Response {
    let text = match turn {
        Turn::Fail { status, message } => {
            return Response::json(
                *status,
                json!({ "error": { "message": message, "type": "invalid_request_error",
                                   "code": null, "param": null } }),
            );
        }
        Turn::Text(text) => text.clone(),
        Turn::Write { path, content } => {
            let newline = if content.ends_with('\n') { "" } else { "\n" };
            format!("{path}\n```\n{content}{newline}```\n")
        }
        Turn::Shell(_) | Turn::Tool { .. } => {
            panic!("the chat protocol has no tool calls: script {turn:?} for another agent")
        }
    };
    let usage = json!({
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
    });
    let id = format!("chatcmpl-scripted-{serial}");
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value, usage: Value| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": 0,
                "model": body["model"],
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
                "usage": usage,
            })
        };
        let events = [
            chunk(
                json!({ "role": "assistant", "content": text }),
                Value::Null,
                Value::Null,
            ),
            chunk(json!({}), json!("stop"), usage),
        ];
        let mut stream: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        stream.push_str("data: [DONE]\n\n");
        return Response::sse(stream);
    }
    Response::json(
        200,
        json!({
            "id": id, "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": "stop",
            }],
            "usage": usage,
        }),
    )
}

/// The tool of this name the request offers, if any.
fn openai_tool<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body["tools"].as_array()?.iter().find(|t| t["name"] == name)
}

fn openai_function(name: &str, input: &Value, call_id: &str) -> Value {
    json!({
        "type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
        "name": name, "arguments": input.to_string(), "status": "completed",
    })
}

/// A shell call in whichever shell tool codex offers.
fn openai_shell(body: &Value, command: &str, call_id: &str) -> Value {
    if openai_tool(body, "exec_command").is_some() {
        openai_function("exec_command", &json!({ "cmd": command }), call_id)
    } else if openai_tool(body, "shell_command").is_some() {
        openai_function("shell_command", &json!({ "command": command }), call_id)
    } else {
        openai_function(
            "shell",
            &json!({ "command": ["bash", "-lc", command] }),
            call_id,
        )
    }
}

/// A file write as codex does it: an `apply_patch` that adds the file, through the
/// `apply_patch` tool (custom or function) when offered, else through the shell.
fn openai_write(body: &Value, path: &str, content: &str, call_id: &str) -> Value {
    let mut patch = format!("*** Begin Patch\n*** Add File: {path}\n");
    for line in content.lines() {
        patch.push('+');
        patch.push_str(line);
        patch.push('\n');
    }
    patch.push_str("*** End Patch\n");
    match openai_tool(body, "apply_patch") {
        Some(tool) if tool["type"] == "custom" => json!({
            "type": "custom_tool_call", "id": format!("ctc_{call_id}"), "call_id": call_id,
            "name": "apply_patch", "input": patch, "status": "completed",
        }),
        Some(_) => openai_function("apply_patch", &json!({ "input": patch }), call_id),
        None => openai_shell(body, &format!("apply_patch <<'EOF'\n{patch}EOF\n"), call_id),
    }
}

// ---------------------------------------------------------------------------------------
// Gemini

fn gemini_chunk(parts: Vec<Value>, usage: Usage) -> Value {
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {
            "promptTokenCount": usage.input,
            "candidatesTokenCount": usage.output,
            "totalTokenCount": usage.input + usage.output,
        },
        "modelVersion": "scripted",
    })
}

fn gemini_turn(turn: &Turn, _body: &Value, serial: usize, usage: Usage) -> Response {
    let call = |name: &str, args: Value| json!({ "functionCall": { "id": format!("call_scripted_{serial}"), "name": name, "args": args } });
    let part = match turn {
        Turn::Fail { status, message } => {
            let kind = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                _ => "INTERNAL",
            };
            return Response::json(
                *status,
                json!([{ "error": { "code": status, "message": message, "status": kind } }]),
            );
        }
        Turn::Text(text) => json!({ "text": text }),
        Turn::Shell(command) => call("run_shell_command", json!({ "command": command })),
        Turn::Write { path, content } => call(
            "write_file",
            json!({ "file_path": path, "content": content }),
        ),
        Turn::Tool { name, input } => call(name, input.clone()),
    };
    Response::sse(format!("data: {}\r\n\r\n", gemini_chunk(vec![part], usage)))
}

/// The answer to one of Gemini's JSON side calls (next speaker, routing, loop check):
/// an object that fills the requested schema with neutral values, saying the user
/// speaks next.
fn gemini_side_text(body: &Value) -> String {
    let config = &body["generationConfig"];
    let schema = if config["responseJsonSchema"].is_object() {
        &config["responseJsonSchema"]
    } else {
        &config["responseSchema"]
    };
    if !schema.is_object() {
        return "ok".into();
    }
    neutral_value(schema, "").to_string()
}

fn neutral_value(schema: &Value, key: &str) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        if key == "next_speaker" {
            return json!("user");
        }
        return first.clone();
    }
    let kind = schema["type"].as_str().unwrap_or("").to_ascii_lowercase();
    match kind.as_str() {
        "object" => {
            let mut object = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    object.insert(name.clone(), neutral_value(property, name));
                }
            }
            Value::Object(object)
        }
        "array" => json!([]),
        "number" | "integer" => json!(0),
        "boolean" => json!(false),
        _ if key == "next_speaker" => json!("user"),
        _ => json!("scripted"),
    }
}

// ---------------------------------------------------------------------------------------
// Reading requests back

/// The tool names a model request offers, normalised across the three protocols.
fn tool_names(body: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for tool in body["tools"].as_array().into_iter().flatten() {
        // Gemini: groups of function declarations.
        for declaration in tool["functionDeclarations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(name) = declaration["name"].as_str() {
                names.push(name.to_string());
            }
        }
        let Some(name) = tool["name"].as_str() else {
            continue;
        };
        // Codex: an MCP server is one namespace entry whose nested tools are its tools.
        let nested: Vec<&str> = tool["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        if nested.is_empty() {
            names.push(name.to_string());
        } else {
            names.extend(nested.iter().map(|n| format!("{name}__{n}")));
        }
    }
    names
}

/// The tool results in a model request's conversation: (call id, text).
fn tool_results_of(body: &Value) -> Vec<(Option<String>, String)> {
    let mut results = Vec::new();
    // Anthropic: user messages with tool_result blocks.
    for message in body["messages"].as_array().into_iter().flatten() {
        for block in message["content"].as_array().into_iter().flatten() {
            if block["type"] == "tool_result" {
                let id = block["tool_use_id"].as_str().map(str::to_string);
                results.push((id, content_text(&block["content"])));
            }
        }
    }
    // OpenAI Responses: function_call_output / custom_tool_call_output input items.
    for item in body["input"].as_array().into_iter().flatten() {
        let kind = item["type"].as_str().unwrap_or("");
        if kind.ends_with("_call_output") {
            let id = item["call_id"].as_str().map(str::to_string);
            results.push((id, content_text(&item["output"])));
        }
    }
    // Gemini: functionResponse parts.
    for content in body["contents"].as_array().into_iter().flatten() {
        for part in content["parts"].as_array().into_iter().flatten() {
            let response = &part["functionResponse"];
            if response.is_object() {
                let id = response["id"].as_str().map(str::to_string);
                results.push((id, content_text(&response["response"])));
            }
        }
    }
    results
}

/// The text of a tool result, whatever shape it has: a string, content blocks, or an
/// object (its `output`/`content`/`error` text, else the JSON).
fn content_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["text"].as_str() {
                Some(text) => text.to_string(),
                None => content_text(b),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(object) => {
            for key in ["output", "content", "error", "text"] {
                if let Some(inner) = object.get(key) {
                    return content_text(inner);
                }
            }
            value.to_string()
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The binaries `tests/agents/package.json` pins (and `.ci/run` installs).
const AGENT_BINARIES: [&str; 4] = ["claude", "codex", "gemini", "mcp-server-filesystem"];

/// tests/agents, where the pinned agents are installed.
fn agents_project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents")
}

/// Runs `program args` in tests/agents, panicking with its stderr and `needs` (what the
/// tests need, for the reader) when it fails.
fn install_step(program: &str, args: &[&str], needs: &str) {
    let project = agents_project();
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(&project)
        .output()
        .unwrap_or_else(|e| panic!("{needs}: cannot run `{program}`: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` in {} failed ({needs}):\n{}",
        args.join(" "),
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `install` unless `complete()` holds, one installer at a time across test threads
/// and test processes; panics unless `complete()` holds afterwards.
fn install_once(complete: impl Fn() -> bool, install: impl FnOnce(), what: &str) {
    if complete() {
        return;
    }
    let project = agents_project();
    let lock =
        std::fs::File::create(project.join(".install.lock")).expect("create the install lock");
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; released when `lock` drops.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "cannot lock {}", project.display());
    if !complete() {
        install();
        assert!(complete(), "installing {what} left it incomplete");
    }
}

/// The directory holding the real agents' binaries: `RUNBOOK_AGENT_BIN`, or
/// tests/agents/node_modules/.bin, installed there with `npm ci` (pinned by the
/// lockfile) the first time a test needs it, so that `cargo test` alone runs every test
/// on a fresh machine. Panics when they cannot be had: these tests never skip.
pub fn agent_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNBOOK_AGENT_BIN") {
        return PathBuf::from(dir);
    }
    let bin = agents_project().join("node_modules/.bin");
    install_once(
        || AGENT_BINARIES.iter().all(|b| bin.join(b).exists()),
        || {
            install_step(
                "npm",
                &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
                "the agent tests need claude, codex and gemini from the npm registry",
            )
        },
        "the npm agents",
    );
    bin
}

/// The directory holding aider: `RUNBOOK_AIDER_BIN`, or the `bin` of the virtual
/// environment tests/agents/.venv, made there with `pip` from tests/agents/requirements.txt
/// (every package pinned) the first time a test needs it. Panics when it cannot be had.
pub fn aider_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNBOOK_AIDER_BIN") {
        return PathBuf::from(dir);
    }
    let bin = agents_project().join(".venv/bin");
    let needs = "the aider tests need python3 with venv, and PyPI";
    install_once(
        || bin.join("aider").exists(),
        || {
            install_step("python3", &["-m", "venv", ".venv"], needs);
            install_step(
                ".venv/bin/pip",
                &["install", "--quiet", "--no-input", "-r", "requirements.txt"],
                needs,
            );
        },
        "aider",
    );
    bin
}
