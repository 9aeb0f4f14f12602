"""A FastAPI service beside tessera, as the services of the original Python system run.

Two things it shows, both tested end to end by `tests/integration/fastapi.rs`:

* **tessera verifies for it.** The `principal` dependency sends the caller's `Authorization`
  and `Cookie` headers to tessera's `GET /auth/verify` over one pooled HTTP client, and turns
  the answer into FastAPI's: 200 gives the principal (`X-Auth-User-Id`, `X-Auth-Username`),
  401 a 401 with tessera's `WWW-Authenticate`, and anything else — a 503 from tessera, or
  tessera unreachable — a 503 with `Retry-After`. It never lets a request through that
  tessera did not answer 200 for (fail closed).
* **the same key space.** `POST /login` issues a session the original system's way, writing
  `token:{token}` (JSON, with a TTL) and `token_list:{user_id}` in Redis directly; tessera
  verifies such tokens as its own, and this app verifies tessera's tokens through tessera.

Settings, from the environment: `TESSERA_URL` (default `http://127.0.0.1:8080`), `REDIS_URL`
(default `redis://127.0.0.1:6379/0`), `ACCESS_TOKEN_EXPIRE_MINUTES` (default 30).

Run it: `uvicorn app:app --app-dir examples/fastapi --port 8000`.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import redis.asyncio as redis
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

TESSERA_URL = os.environ.get("TESSERA_URL", "http://127.0.0.1:8080")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN_TTL_SECONDS = int(os.environ.get("ACCESS_TOKEN_EXPIRE_MINUTES", "30")) * 60

# The headers tessera reads a token from; nothing else of the caller's request is sent.
FORWARDED = ("authorization", "cookie")


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One pool of keep-alive connections to tessera for the whole process: a verification
    # costs one request on an open connection, not a TCP handshake.
    app.state.tessera = httpx.AsyncClient(
        base_url=TESSERA_URL,
        timeout=httpx.Timeout(2.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
    )
    app.state.redis = redis.Redis.from_url(REDIS_URL)
    try:
        yield
    finally:
        await app.state.tessera.aclose()
        await app.state.redis.aclose()


app = FastAPI(title="tessera FastAPI example", lifespan=lifespan)


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str | None


async def principal(request: Request) -> Principal:
    """The caller, as tessera says; 401 or 503 otherwise (never a pass)."""
    headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    try:
        answer = await request.app.state.tessera.get("/auth/verify", headers=headers)
    except httpx.HTTPError:
        raise HTTPException(503, "the session service cannot answer", headers={"Retry-After": "1"})
    if answer.status_code == 200:
        return Principal(answer.headers["x-auth-user-id"], answer.headers.get("x-auth-username"))
    if answer.status_code == 401:
        challenge = answer.headers.get("www-authenticate", "Bearer")
        raise HTTPException(401, "a valid session is required", headers={"WWW-Authenticate": challenge})
    retry_after = answer.headers.get("retry-after", "1")
    raise HTTPException(503, "the session service cannot answer", headers={"Retry-After": retry_after})


@app.get("/me")
async def me(caller: Principal = Depends(principal)) -> dict:
    return {"user_id": caller.user_id, "username": caller.username}


class Login(BaseModel):
    user_id: int
    username: str


@app.post("/login", status_code=201)
async def login(body: Login) -> dict:
    """A session written as the original system writes one (the key space tessera shares)."""
    token = secrets.token_urlsafe(32)
    metadata = json.dumps({"user_id": body.user_id, "username": body.username}, separators=(",", ":"))
    store = app.state.redis
    await store.set(f"token:{token}", metadata, ex=TOKEN_TTL_SECONDS)
    await store.lpush(f"token_list:{body.user_id}", token)
    await store.expire(f"token_list:{body.user_id}", TOKEN_TTL_SECONDS)
    return {"token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECONDS}
