"""Second reference echo server, on Debian's python3-websockets, with the same flags and
listening line as `switchboard serve`. Used to cross-check the protocol cases of the
conformance suite against a stack that validates UTF-8 fragment by fragment (fail-fast),
which node `ws` does not. Only /echo is served; handshake rejections are websockets' own.
"""

import argparse
import asyncio
import re
import signal
import sys

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


def size(s: str) -> int:
    m = re.fullmatch(r"(\d+)(B|KiB|MiB|GiB)?", s)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {s}")
    return int(m.group(1)) * {None: 1, "B": 1, "KiB": 1024, "MiB": 1 << 20,
                              "GiB": 1 << 30}[m.group(2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--threads")
    ap.add_argument("--log-level")
    ap.add_argument("--max-message-size", type=size, default=16 << 20)
    ap.add_argument("--no-compression", action="store_true")
    ap.add_argument("--subprotocols", default="echo")
    ap.add_argument("--allowed-origins")
    ap.add_argument("--handshake-timeout")
    args = ap.parse_args()

    async def echo(ws, path=None):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def run():
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        exts = None if args.no_compression else [ServerPerMessageDeflateFactory()]
        async with websockets.serve(
                echo, args.host, args.port, max_size=args.max_message_size, max_queue=None,
                read_limit=1 << 20, write_limit=1 << 20, compression=None,
                extensions=exts, subprotocols=args.subprotocols.split(","),
                ping_interval=None, origins=(args.allowed_origins.split(",")
                                             if args.allowed_origins else None)) as server:
            host, port = server.sockets[0].getsockname()[:2]
            print(f"switchboard listening on {host}:{port}", flush=True)
            await stop
            for ws in list(server.websockets):
                await ws.close(1001, "server shutting down")

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
