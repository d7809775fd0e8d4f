"""A controllable upstream for gateway tests (real aiohttp server on loopback)."""

from __future__ import annotations

import asyncio

from aiohttp import web

SEEN = web.AppKey("seen", list)


def create_upstream() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SEEN] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        app[SEEN].append(request.path_qs)
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": [
                    [k.decode("latin-1").lower(), v.decode("latin-1")]
                    for k, v in request.raw_headers
                ],
                "body_len": len(body),
                "body": body.decode("latin-1")[:2048],
            },
            headers={"Set-Cookie": "upstream=1", "Connection": "x-secret-hop", "X-Secret-Hop": "1"},
        )

    async def catch_all(request: web.Request) -> web.Response:
        app[SEEN].append(request.path_qs)
        return web.json_response({"shadow": True, "path": request.raw_path})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.json_response({"slow": True})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": int(request.match_info["code"])}, status=int(request.match_info["code"])
        )

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"part-{i};".encode())
        await resp.write_eof()
        return resp

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("n", "1000000")))

    async def upload(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        return web.json_response({"received": size})

    async def crash(request: web.Request) -> web.Response:
        return web.Response(
            status=500, text="Traceback (most recent call last):\n  File app.py\nKeyError"
        )

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"y" * 1000)
        assert request.transport is not None
        request.transport.close()
        return resp

    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/e/{tail:.*}", echo)  # echo under any path (prefix /e)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/big", big)
    app.router.add_post("/upload", upload)
    app.router.add_get("/crash", crash)
    app.router.add_get("/cut", cut)
    app.router.add_route("*", "/{tail:.*}", catch_all)
    return app
