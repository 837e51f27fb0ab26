#!/usr/bin/env python3
# A minimal model server for bench/agents.sh: every model request gets one short text
# answer (Anthropic Messages SSE, OpenAI Responses SSE, Gemini streamGenerateContent SSE),
# so an agent run costs the agent and the interpreter, not a model. The scripted server
# the tests use (tool calls, recording) is tests/support/model_server.rs.
# Usage: bench/model_server.py PORT
import json, sys, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version="HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(404); self.send_header("Content-Length","0"); self.end_headers()
    def do_POST(self):
        n=int(self.headers.get("Content-Length") or 0); body=self.rfile.read(n)
        p=self.path
        if "/v1/messages" in p and "count_tokens" not in p:
            ev=[("message_start",{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":None,"usage":{"input_tokens":10,"output_tokens":1}}}),
                ("content_block_start",{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                ("content_block_delta",{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hello from model"}}),
                ("content_block_stop",{"type":"content_block_stop","index":0}),
                ("message_delta",{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}),
                ("message_stop",{"type":"message_stop"})]
            data="".join("event: %s\ndata: %s\n\n"%(e,json.dumps(d)) for e,d in ev)
        elif "/responses" in p:
            msg={"type":"message","id":"msg1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hello from model","annotations":[]}]}
            ev=[("response.created",{"type":"response.created","response":{"id":"r1"}}),
                ("response.output_item.added",{"type":"response.output_item.added","output_index":0,"item":msg}),
                ("response.output_item.done",{"type":"response.output_item.done","output_index":0,"item":msg}),
                ("response.completed",{"type":"response.completed","response":{"id":"r1","usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}})]
            data="".join("event: %s\ndata: %s\n\n"%(e,json.dumps(d)) for e,d in ev)
        elif "streamGenerateContent" in p:
            d={"candidates":[{"content":{"role":"model","parts":[{"text":"hello from model"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}
            data="data: %s\n\n"%json.dumps(d)
        elif "generateContent" in p:
            d={"candidates":[{"content":{"role":"model","parts":[{"text":"{\"reasoning\":\"x\",\"next_speaker\":\"user\"}"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}
            b=json.dumps(d).encode(); self.send_response(200); self.send_header("Content-Type","application/json"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b); return
        else:
            b=b'{"input_tokens":10}'; self.send_response(200); self.send_header("Content-Type","application/json"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b); return
        b=data.encode()
        self.send_response(200); self.send_header("Content-Type","text/event-stream"); self.send_header("Content-Length",str(len(b))); self.end_headers(); self.wfile.write(b)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads=True
S(("127.0.0.1",int(sys.argv[1])),H).serve_forever()
