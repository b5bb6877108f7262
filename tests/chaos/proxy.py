"""A small TCP proxy that can fail on command, run as its own process.

``python -m tests.chaos.proxy --listen PORT --target HOST:PORT``; signals switch its mode:

- SIGUSR1 **cut**: stop listening (new connections are refused) and reset every open one,
  as when a server or its host goes down;
- SIGUSR2 **blackhole**: new connections are accepted and never answered, open ones stop
  moving bytes, as when packets are silently dropped;
- SIGHUP **heal**: listen and forward again; connections made during a blackhole are reset.

A process of its own, so the load generator's CPU use never slows the proxied traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import struct


class Proxy:
    def __init__(self, listen: int, host: str, port: int) -> None:
        self.listen, self.host, self.port = listen, host, port
        self.mode = "pass"
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        self.flowing = asyncio.Event()
        self.flowing.set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.listen, reuse_address=True
        )

    def _reset_all(self) -> None:
        for w in list(self.open):
            _reset(w)
        self.open.clear()

    async def cut(self) -> None:
        self.mode = "cut"
        if self.server is not None:
            self.server.close()
            self.server = None
        self._reset_all()

    async def blackhole(self) -> None:
        self.mode = "blackhole"
        self.flowing.clear()
        if self.server is None:
            await self.start()

    async def heal(self) -> None:
        was = self.mode
        self.mode = "pass"
        if was == "blackhole":
            self._reset_all()  # the client's view: its stalled connections finally die
        self.flowing.set()
        if self.server is None:
            await self.start()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        if self.mode == "blackhole":
            return  # accepted, never answered; reset at heal
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            _reset(writer)
            self.open.discard(writer)
            return
        self.open.add(up_writer)
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self.open.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            await self.flowing.wait()  # a blackhole holds the bytes back
            if not data:
                with contextlib.suppress(Exception):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer would."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(Exception):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


async def serve(listen: int, target: str) -> None:
    host, _, port = target.rpartition(":")
    proxy = Proxy(listen, host, int(port))
    await proxy.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig, action in (
        (signal.SIGUSR1, proxy.cut),
        (signal.SIGUSR2, proxy.blackhole),
        (signal.SIGHUP, proxy.heal),
    ):
        loop.add_signal_handler(sig, lambda a=action: asyncio.ensure_future(a()))  # type: ignore[misc]
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="TCP proxy with cut / blackhole on signals")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.target))


if __name__ == "__main__":
    main()
