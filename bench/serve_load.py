#!/usr/bin/env python3
"""serve_load.py - load test of a running `smoe serve`: total generated tokens/s at several
numbers of concurrent clients.

Each client is a thread with its own HTTP connection that sends one streaming request at a
time (POST /v1/completions, or /v1/chat/completions with --chat), reads the server-sent
events to `data: [DONE]`, and sends the next. For each concurrency level, every client
first sends --warmup requests (not measured); then all clients start together and keep
sending requests for --duration seconds (each finishes the request it is in), or send
--requests each if that is given. The level's total tokens/s is the generated tokens of
all measured requests (the server's own count, from the usage chunk) over the wall time
from the start to the last client's end. Requests use ignore_eos (each generates exactly
--max-tokens tokens unless the context fills) and a different seed and prompt per request.

The server's /metrics before and after each level give the engine's share of the wall
time ("busy": forward passes, as smoe_prompt/generation_seconds_total count them) and its
tokens/s while busy; a busy share well under 100 % means the time went elsewhere (HTTP,
the client, other processes).

Several servers (--url NAME=URL, repeated) are measured interleaved: for each round and
each level, every server in turn, so that a machine whose load drifts (other jobs) treats
them alike; with --rounds R the summary gives each level's median over the rounds.

Prints a line per measurement, a summary table per server and, last, one line of JSON
(also written to --json FILE). Python 3 standard library only. The client takes CPU time
itself: on a small machine it competes with the server.

usage: bench/serve_load.py [--url [NAME=]URL ...] [--clients 1,2,4,8,16] [--rounds 1]
                           [--duration 10 | --requests N] [--warmup 1] [--max-tokens 64]
                           [--chat] [--api-key KEY] [--json FILE]
example: ./smoe serve -m models/kjv-moe.gguf --parallel 16 -t 2 --port 8080 &
         ./smoe serve -m models/kjv-moe.gguf --parallel 16 -t 2 --port 8081 --no-batch &
         bench/serve_load.py --url batched=http://127.0.0.1:8080 \\
                             --url unbatched=http://127.0.0.1:8081 --rounds 3
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "In the beginning",
    "And God said",
    "The LORD is my shepherd",
    "Blessed are the poor in spirit",
    "And it came to pass",
    "Now the serpent was more subtil",
    "Then Jesus said unto them",
    "And the king said",
]


class Result:
    def __init__(self):
        self.tokens = 0
        self.ttft = None      # seconds to the first text event
        self.seconds = 0.0
        self.error = None


def one_request(conn, path, headers, body):
    """Send one streaming request on conn, read it to [DONE]; returns a Result."""
    r = Result()
    t0 = time.perf_counter()
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            r.error = f"HTTP {resp.status}: {resp.read()[:200]!r}"
            return r
        done = False
        buf = b""
        while not done:
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data: "):
                    continue
                data = event[6:]
                if data == b"[DONE]":
                    done = True
                    break
                if r.ttft is not None and b'"usage":null' in data and b'"error"' not in data:
                    continue  # a text chunk after the first: nothing to learn, and parsing costs client CPU
                j = json.loads(data)
                if "error" in j:
                    r.error = j["error"].get("message", "error event")
                    continue
                if j.get("usage"):
                    r.tokens = j["usage"]["completion_tokens"]
                for ch in j.get("choices", []):
                    text = ch.get("text") if "text" in ch else (ch.get("delta") or {}).get("content")
                    if text and r.ttft is None:
                        r.ttft = time.perf_counter() - t0
        resp.read()  # the rest (nothing after [DONE]); keeps the connection reusable
        if not done and r.error is None:
            r.error = "stream ended without [DONE]"
    except (OSError, http.client.HTTPException, ValueError) as ex:
        r.error = f"{type(ex).__name__}: {ex}"
    r.seconds = time.perf_counter() - t0
    return r


def client(url, args, cid, barrier, start, results, seed0):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = "Bearer " + args.api_key
    path = "/v1/chat/completions" if args.chat else "/v1/completions"

    def body(k):
        prompt = PROMPTS[(cid + k) % len(PROMPTS)]
        b = {"max_tokens": args.max_tokens, "stream": True, "stream_options": {"include_usage": True},
             "temperature": 0.8, "seed": seed0 + 1000 * cid + k, "ignore_eos": True}
        if args.chat:
            b["messages"] = [{"role": "user", "content": prompt}]
        else:
            b["prompt"] = prompt
        return b

    def send(k):
        nonlocal conn
        r = one_request(conn, path, headers, body(k))
        if r.error:  # a fresh connection for the next request
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
        return r

    for k in range(args.warmup):
        send(k)
    barrier.wait()
    k = args.warmup
    while (k - args.warmup < args.requests) if args.requests else (time.perf_counter() - start[0] < args.duration):
        results.append(send(k))
        k += 1
    conn.close()


def metrics(args, url):
    """The server's counters that matter here, from GET /metrics ({} if unreachable)."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + args.api_key} if args.api_key else {})
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("smoe_prompt_seconds_total", "smoe_generation_seconds_total"):
            out[parts[0]] = float(parts[1])
    return out


def run_level(args, url, n_clients, seed0):
    """One measurement: n_clients clients against url."""
    results = []
    start = [0.0]
    # the last party to arrive (after every warm-up) sets the start time for all
    barrier = threading.Barrier(n_clients + 1, action=lambda: start.__setitem__(0, time.perf_counter()))
    threads = [threading.Thread(target=client, args=(url, args, c, barrier, start, results, seed0))
               for c in range(n_clients)]
    for t in threads:
        t.start()
    m0 = metrics(args, url)  # read during the warm-up: "busy" may include a little of it
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start[0]
    m1 = metrics(args, url)
    ok = [r for r in results if not r.error]
    tokens = sum(r.tokens for r in ok)
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    per_req = [r.tokens / r.seconds for r in ok if r.seconds > 0 and r.tokens]
    keys = ("smoe_prompt_seconds_total", "smoe_generation_seconds_total")
    busy = sum(m1[k] - m0[k] for k in keys) if all(k in m0 and k in m1 for k in keys) else None
    return {
        "clients": n_clients,
        "requests": len(results),
        "failed": len(results) - len(ok),
        "errors": sorted({r.error for r in results if r.error})[:3],
        "tokens": tokens,
        "seconds": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2) if wall > 0 else 0.0,
        "per_request_tokens_per_s": round(statistics.median(per_req), 2) if per_req else 0.0,
        "ttft_median_ms": round(1000 * statistics.median(ttfts), 1) if ttfts else None,
        "engine_busy": round(min(busy / wall, 1.0), 3) if busy is not None and wall > 0 else None,
        "engine_tokens_per_s": round(tokens / busy, 1) if busy else None,
    }


def fmt(v, spec, scale=1.0):
    return "-" if v is None else format(v * scale, spec)


def load_avg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", action="append", help="[NAME=]server base URL, repeatable (default http://127.0.0.1:8080)")
    ap.add_argument("--clients", default="1,2,4,8,16", help="comma-separated concurrency levels (default 1,2,4,8,16)")
    ap.add_argument("--rounds", type=int, default=1, help="measure every level this many times (default 1)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds each measurement runs (default 10)")
    ap.add_argument("--requests", type=int, default=0, help="measured requests per client instead of --duration")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured requests per client first (default 1)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per request (default 64)")
    ap.add_argument("--chat", action="store_true", help="use /v1/chat/completions instead of /v1/completions")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--json", default=None, help="also write the JSON result to this file")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if not levels or min(levels) < 1 or args.rounds < 1 or args.requests < 0 or args.duration <= 0 \
            or args.warmup < 0 or args.max_tokens < 1:
        ap.error("bad --clients, --rounds, --duration, --requests, --warmup or --max-tokens")
    servers = []
    for i, spec in enumerate(args.url or ["http://127.0.0.1:8080"]):
        name, _, url = spec.partition("=") if "=" in spec.split("://")[0] else ("", "", spec)
        servers.append((name or (f"server{i + 1}" if len(args.url or []) > 1 else "server"), url.rstrip("/")))

    runs = {name: {n: [] for n in levels} for name, _ in servers}
    print(f"{'round':>5} {'server':>12} {'clients':>7} {'requests':>8} {'failed':>6} {'tok/s':>8} {'tok/s/req':>9} "
          f"{'TTFT ms':>8} {'busy':>5} {'load':>5}", flush=True)
    for rnd in range(args.rounds):
        for n in levels:
            for name, url in servers:
                row = run_level(args, url, n, seed0=100000 * n + 10000000 * rnd)
                row["round"] = rnd + 1
                row["load_avg"] = load_avg()
                runs[name][n].append(row)
                print(f"{rnd + 1:>5} {name:>12} {n:>7} {row['requests']:>8} {row['failed']:>6} "
                      f"{row['tokens_per_s']:>8.1f} {row['per_request_tokens_per_s']:>9.1f} "
                      f"{fmt(row['ttft_median_ms'], '.1f'):>8} {fmt(row['engine_busy'], '.0f', 100):>4}% "
                      f"{fmt(row['load_avg'], '.2f'):>5}", flush=True)
                for err in row["errors"]:
                    print(f"      error: {err}", flush=True)

    summary = {}
    for name, url in servers:
        med = {n: statistics.median(r["tokens_per_s"] for r in runs[name][n]) for n in levels}
        base = med.get(1)
        print(f"\n{name} ({url}): total generated tokens/s, median of {args.rounds} round(s)")
        print(f"{'clients':>7} {'tok/s':>8} {'min':>8} {'max':>8} {'x 1 client':>10} {'tok/s/req':>9} {'TTFT ms':>8}")
        summary[name] = {"url": url, "levels": []}
        for n in levels:
            rs = runs[name][n]
            ttft = [r["ttft_median_ms"] for r in rs if r["ttft_median_ms"] is not None]
            entry = {"clients": n, "tokens_per_s": round(med[n], 1),
                     "min": min(r["tokens_per_s"] for r in rs), "max": max(r["tokens_per_s"] for r in rs),
                     "speedup_vs_1": round(med[n] / base, 2) if base else None,
                     "per_request_tokens_per_s": round(statistics.median(r["per_request_tokens_per_s"] for r in rs), 1),
                     "ttft_median_ms": round(statistics.median(ttft), 1) if ttft else None}
            summary[name]["levels"].append(entry)
            print(f"{n:>7} {entry['tokens_per_s']:>8.1f} {entry['min']:>8.1f} {entry['max']:>8.1f} "
                  f"{fmt(entry['speedup_vs_1'], '.2f'):>10} {entry['per_request_tokens_per_s']:>9.1f} "
                  f"{fmt(entry['ttft_median_ms'], '.1f'):>8}")
    out = {"endpoint": "chat" if args.chat else "completions", "max_tokens": args.max_tokens,
           "duration": None if args.requests else args.duration, "requests_per_client": args.requests or None,
           "warmup": args.warmup, "rounds": args.rounds, "summary": summary,
           "runs": {name: [r for n in levels for r in runs[name][n]] for name, _ in servers}}
    line = json.dumps(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    failed = any(r["failed"] for name, _ in servers for n in levels for r in runs[name][n])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
