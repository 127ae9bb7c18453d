#!/usr/bin/env python3
"""SIGHUP reloads the config: a namespace added to the file becomes usable without a restart,
an invalid file is refused with a log line and the running configuration stays."""
import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
import harness  # noqa: E402
import websockets  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


async def subscribe(port, channel):
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws",
                                  subprotocols=["switchboard.v1.json"]) as ws:
        await ws.send(json.dumps({"type": "connect", "id": 1}))
        await asyncio.wait_for(ws.recv(), 5)
        await ws.send(json.dumps({"type": "subscribe", "id": 2, "channel": channel}))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def wait_reply(port, channel, want_type, seconds=10):
    deadline = asyncio.get_event_loop().time() + seconds
    reply = None
    while asyncio.get_event_loop().time() < deadline:
        reply = await subscribe(port, channel)
        if reply.get("type") == want_type:
            return reply
        await asyncio.sleep(0.05)  # polling the server's state after a signal, bounded
    return reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "sb.toml")
        with open(cfg, "w") as f:
            f.write("[namespaces.chat]\npresence = true\n")
        srv = harness.ServerProcess([args.server, "serve", "--config", cfg, "--host", "127.0.0.1",
                                     "--port", "0", "--threads", "1"], "switchboard")
        try:
            port = srv.port
            r = asyncio.run(subscribe(port, "news:today"))
            check(r.get("code") == "unknown_namespace", f"before reload: news is unknown ({r})")
            with open(cfg, "w") as f:
                f.write("[namespaces.chat]\npresence = true\n[namespaces.news]\nhistory_size = 10\n")
            srv.signal(signal.SIGHUP)
            r = asyncio.run(wait_reply(port, "news:today", "subscribed"))
            check(r.get("type") == "subscribed", f"after SIGHUP: news works ({r})")
            with open(cfg, "w") as f:
                f.write("[namespaces.news]\nhistory_size = \"lots\"\n")
            srv.signal(signal.SIGHUP)
            harness.wait_until(lambda: "reload failed" in srv.log_tail(), 10, "reload failure log")
            check("reload failed" in srv.log_tail(), "invalid file: reload refused with a log line")
            r = asyncio.run(subscribe(port, "news:other"))
            check(r.get("type") == "subscribed", "running configuration kept after a bad reload")
            check(srv.alive(), "server still running")
        finally:
            srv.close()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
