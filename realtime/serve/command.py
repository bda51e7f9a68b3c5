"""`dancenow serve`: start the server, say where to watch and perform, run until interrupted."""

from __future__ import annotations

import asyncio

from dancenow.realtime.serve.config import ServeConfig
from dancenow.realtime.serve.server import Server


def serve(cfg: ServeConfig) -> None:
    """Run the server until interrupted, printing where to watch and the token to perform."""

    async def main() -> None:
        server = Server(cfg)
        url = await server.start()
        print(f"dancenow: watch at {url}/ (OBS Browser Source: {url}/?view=bare)", flush=True)
        for p in server.publishers:
            print(f"dancenow: publishing over {p.kind.upper()} to {p.status()['url']} (state in {url}/api/status)",
                  flush=True)
        if server.virtual_camera is not None:
            print(f"dancenow: {server.virtual_camera.describe()}", flush=True)
        print(f"dancenow: perform at {url}/perform#token={server.token}", flush=True)
        if cfg.token is None:
            print(f"dancenow: token (to perform and switch targets): {server.token}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(main())
