#!/usr/bin/env python3
"""A tiny fake Cloud Eye + metadata service on 127.0.0.1, for bench/run.sh only.

    fake_ces.py PORT_FILE [MAX_SECONDS]

Binds 127.0.0.1 on a free port, writes the port to PORT_FILE, and answers:
  PUT  /meta-data/latest/api/token        -> 200, a token
  GET  /openstack/latest/meta_data.json   -> 200, uuid/project_id/region_id
  GET  /openstack/latest/securitykey      -> 200, temporary AK/SK/token valid for 1 day
  POST /V1.0/<project>/metric-data        -> 201, empty (the body is parsed to count items)
  anything else                           -> 404
On exit (SIGTERM, or after MAX_SECONDS, default 600, so it can never be left behind) it
prints "posts=N items=M bytes=B" to stdout.
"""

import datetime
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS = {"posts": 0, "items": 0, "bytes": 0}
LOCK = threading.Lock()
META = {"uuid": "bench-instance-0001", "project_id": "0123456789abcdef0123456789abcdef",
        "region_id": "xx-bench-1", "availability_zone": "xx-bench-1a",
        "meta": {"metering.resourcespeccode": "s6.large.2.linux"}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self):
        self.body()
        if self.path == "/meta-data/latest/api/token":
            return self.reply(200, b"bench-token", "text/plain")
        self.reply(404)

    def do_GET(self):
        if self.path == "/openstack/latest/meta_data.json":
            return self.reply(200, json.dumps(META).encode())
        if self.path == "/openstack/latest/securitykey":
            exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
            cred = {"credential": {"access": "BENCHAK", "secret": "benchsecret",
                                   "securitytoken": "benchtoken",
                                   "expires_at": exp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
            return self.reply(200, json.dumps(cred).encode())
        self.reply(404)

    def do_POST(self):
        data = self.body()
        if self.path.startswith("/V1.0/") and self.path.endswith("/metric-data"):
            try:
                items = len(json.loads(data))
            except ValueError:
                return self.reply(400, b'{"error_code":"ces.0014","error_msg":"bad body"}')
            with LOCK:
                STATS["posts"] += 1
                STATS["items"] += items
                STATS["bytes"] += len(data)
            return self.reply(201)
        self.reply(404)


def main():
    port_file = sys.argv[1]
    max_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 600.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    stop.wait(max_seconds)
    server.shutdown()
    print("posts=%(posts)d items=%(items)d bytes=%(bytes)d" % STATS, flush=True)


if __name__ == "__main__":
    main()
