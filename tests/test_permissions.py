"""Role-permission matrix over EVERY route of create_app(settings), including routes other domains add later.

For each HTTP route under /api/v1 (except the token route): no token -> 401; a token of each role the route's
`require_roles` dependency does not allow -> 403; every allowed role -> neither 401 nor the role 403 (404/422 are
fine: path params are well-formed but point at nothing). WebSocket routes must reject a client without a token.
No route may lack a role dependency except the public ones listed below.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field

import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

from backoffice.auth.security import create_access_token, hash_password
from fleetapp.api import create_app
from fleetcore.api.deps import ALL_ROLES, require_roles
from fleetcore.db import connect
from fleetcore.settings import Settings
from tests import factories

# (method, path) pairs reachable without a token; "*" = any method.
PUBLIC = {
    ("*", "/healthz"),
    ("*", "/docs"),
    ("*", "/docs/oauth2-redirect"),
    ("*", "/redoc"),
    ("*", "/openapi.json"),
    ("POST", "/api/v1/auth/token"),
    ("*", "/console"),  # the console's static page and assets: no data without a token
}
ROLE_DENIED = "may not use this route"  # require_roles' 403 message (fleetcore/api/deps.py)
SAMPLE_VIN = factories.vin()


@dataclass
class RouteInfo:
    kind: str  # "http" | "ws" | "other"
    path: str
    methods: tuple[str, ...]
    allowed: frozenset[str] | None  # None: no require_roles dependency found
    path_params: dict[str, type] = field(default_factory=dict)

    def label(self, method: str | None = None) -> str:
        return f"{method or '/'.join(self.methods) or self.kind.upper()} {self.path}"


def _iter_routes(app: FastAPI):
    """(original route, effective path) for every route, through included routers (FastAPI >= 0.16x is lazy)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        for r in app.routes:
            yield r, getattr(r, "path", "")
        return
    for rc in iter_route_contexts(app.routes):
        yield rc, rc.path


def _allowed_roles(dependant) -> frozenset[str] | None:
    """Intersection of the allowed_roles of every require_roles dependency, searched recursively."""
    found: list[frozenset[str]] = []

    def walk(d) -> None:
        for sub in d.dependencies:
            roles = getattr(sub.call, "allowed_roles", None)
            if roles is not None:
                found.append(frozenset(roles))
            walk(sub)

    walk(dependant)
    if not found:
        return None
    return frozenset.intersection(*found)


def _path_param_types(dependant) -> dict[str, type]:
    out: dict[str, type] = {}

    def walk(d) -> None:
        for p in d.path_params:
            out[p.name] = getattr(p.field_info, "annotation", None) or str
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    return out


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every route of the app with its allowed roles."""
    table = []
    for r, path in _iter_routes(app):
        original = getattr(r, "original_route", r)
        dependant = getattr(r, "dependant", None)
        if isinstance(original, APIRoute):
            methods = tuple(sorted(m for m in (r.methods or ()) if m != "HEAD"))
            table.append(
                RouteInfo("http", path, methods, _allowed_roles(dependant), _path_param_types(dependant))
            )
        elif isinstance(original, APIWebSocketRoute):
            table.append(RouteInfo("ws", path, (), _allowed_roles(dependant), _path_param_types(dependant)))
        elif isinstance(original, Mount):
            table.append(RouteInfo("other", path, ("*",), None))
        else:
            methods = tuple(sorted(m for m in (getattr(r, "methods", None) or ("*",)) if m != "HEAD"))
            table.append(RouteInfo("other", path, methods, None))
    return table


def is_public(info: RouteInfo, method: str) -> bool:
    return ("*", info.path) in PUBLIC or (method, info.path) in PUBLIC


def sample_value(name: str, annotation: type) -> str:
    """A syntactically valid path value that refers to nothing."""
    if annotation is int:
        return "987654"
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is dt.date:
        return "2031-01-02"
    if "vin" in name.lower():
        return SAMPLE_VIN
    return "zz-unknown-1"


def concrete_path(info: RouteInfo) -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        return sample_value(name, info.path_params.get(name, str))

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}", sub, info.path)


def problems_without_role_dependency(table: list[RouteInfo]) -> list[str]:
    """Routes that are neither public nor guarded by require_roles (WebSocket routes authenticate themselves)."""
    bad = []
    for info in table:
        if info.kind == "ws":
            continue
        for method in info.methods:
            if info.allowed is None and not is_public(info, method):
                bad.append(info.label(method))
    return bad


# ---- the discovery itself is checked on a small app with known holes --------------------------------------


def test_route_discovery_finds_roles_and_holes():
    router = APIRouter(prefix="/api/v1")

    def nested(user: dict = Depends(require_roles("finance"))) -> dict:
        return user

    @router.get("/guarded/{item_id}", dependencies=[Depends(require_roles("dispatcher"))])
    def guarded(item_id: int) -> dict:
        return {}

    @router.get("/nested")
    def nested_route(user: dict = Depends(nested)) -> dict:
        return {}

    @router.post("/open")
    def open_route() -> dict:
        return {}

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()

    app = FastAPI()
    app.include_router(router)
    table = {(i.kind, i.path): i for i in route_table(app)}
    assert table[("http", "/api/v1/guarded/{item_id}")].allowed == {"admin", "dispatcher"}
    assert table[("http", "/api/v1/guarded/{item_id}")].path_params == {"item_id": int}
    assert concrete_path(table[("http", "/api/v1/guarded/{item_id}")]) == "/api/v1/guarded/987654"
    assert table[("http", "/api/v1/nested")].allowed == {"admin", "finance"}
    assert ("ws", "/api/v1/ws") in table
    assert problems_without_role_dependency(list(table.values())) == ["POST /api/v1/open"]


# ---- the real application ------------------------------------------------------------------------------


@pytest.fixture
def app_client(settings, db_url):
    password_hash = hash_password("correct-horse-9")
    tokens = {}
    with connect(db_url, autocommit=True) as conn:
        for role in ALL_ROLES:
            name = f"perm-{role}".replace("_", "-")
            conn.execute(
                "INSERT INTO staff_users (username, role, password_hash) VALUES (%s, %s, %s)",
                (name, role, password_hash),
            )
            tokens[role] = create_access_token(
                subject=name, role=role, secret=settings.secret_key, minutes=10
            )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client, tokens


def test_every_route_is_public_or_role_guarded():
    app = create_app(
        Settings(
            environment="test",
            database_url="postgresql://nobody@127.0.0.1:1/none",
            secret_key="permissions-test-secret-0123456789-abcdefgh",
        )
    )
    table = route_table(app)
    assert any(i.path == "/api/v1/fleet/stations" for i in table), "route discovery found no fleet routes"
    unguarded = problems_without_role_dependency(table)
    assert unguarded == [], f"routes without require_roles (add one, or list them in PUBLIC): {unguarded}"
    # The OpenAPI document lists the same HTTP operations we test (nothing hidden from the matrix).
    documented = {
        (m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops if m.upper() != "HEAD"
    }
    tested = {(m, i.path) for i in table if i.kind == "http" for m in i.methods}
    assert documented <= tested, documented - tested


def _error_message(r) -> str:
    try:
        body = r.json()
    except ValueError:
        return ""
    return body.get("error", {}).get("message", "") if isinstance(body, dict) else ""


def test_role_matrix_over_all_routes(app_client):
    app, client, tokens = app_client
    table = [i for i in route_table(app) if i.kind == "http"]
    failures: list[str] = []
    checked = 0
    for info in table:
        path = concrete_path(info)
        for method in info.methods:
            if is_public(info, method):
                continue
            checked += 1
            label = info.label(method)
            r = client.request(method, path)
            if r.status_code != 401:
                failures.append(f"{label}: no token -> {r.status_code}, want 401")
            elif r.json().get("error", {}).get("code") != "unauthorized" or "Bearer" not in r.headers.get(
                "www-authenticate", ""
            ):
                failures.append(f"{label}: 401 without the error envelope or WWW-Authenticate header")
            r = client.request(method, path, headers={"Authorization": "Bearer not-a-jwt"})
            if r.status_code != 401:
                failures.append(f"{label}: garbage token -> {r.status_code}, want 401")
            for role in ALL_ROLES:
                r = client.request(method, path, headers={"Authorization": f"Bearer {tokens[role]}"})
                message = _error_message(r)
                if r.status_code >= 500:
                    failures.append(f"{label} as {role}: {r.status_code} {r.text[:200]}")
                elif role in info.allowed:  # type: ignore[operator]
                    if r.status_code == 401 or (r.status_code == 403 and ROLE_DENIED in message):
                        failures.append(f"{label} as allowed role {role}: {r.status_code} {message}")
                elif r.status_code != 403:
                    failures.append(
                        f"{label} as {role} (allowed {sorted(info.allowed)}): {r.status_code}, want 403"
                    )
    assert checked >= 40, f"only {checked} protected operations found; route discovery is broken"
    assert failures == [], "\n".join(failures)


def test_websocket_routes_reject_without_token(app_client):
    app, client, tokens = app_client
    for info in (i for i in route_table(app) if i.kind == "ws"):
        path = concrete_path(info)
        for suffix in ("", "?token=not-a-jwt"):
            with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(path + suffix) as ws:
                ws.receive_text()
            assert getattr(exc.value, "code", 1008) != 1000, f"{path}{suffix} closed normally without auth"


def test_garbage_input_never_500(app_client):
    """Every write route, as admin, with malformed bodies and query values: always a 4xx envelope, never a 500."""
    app, client, tokens = app_client
    h = {"Authorization": f"Bearer {tokens['admin']}"}
    bodies = [
        {"content": b"{not json", "headers": {**h, "Content-Type": "application/json"}},
        {"json": []},
        {"json": "text"},
        {"json": {"unexpected": {"deeply": [1, 2, 3]}}},
        {"json": {"limit": -1, "from": "yesterday", "vin": "X" * 500}},
    ]
    failures = []
    for info in (i for i in route_table(app) if i.kind == "http"):
        path = concrete_path(info)
        for method in info.methods:
            if is_public(info, method):
                continue
            if method == "GET":
                r = client.get(
                    path, headers=h, params={"limit": "lots", "offset": "-5", "from": "soon", "to": "x"}
                )
                if r.status_code >= 500:
                    failures.append(f"GET {info.path} bad query: {r.status_code}")
                continue
            for kw in bodies:
                r = client.request(method, path, **({"headers": h} | kw))
                if r.status_code >= 500:
                    failures.append(f"{method} {info.path} {kw}: {r.status_code} {r.text[:120]}")
                elif r.status_code >= 400 and "error" not in r.json():
                    failures.append(f"{method} {info.path}: {r.status_code} without the error envelope")
    assert failures == [], "\n".join(failures)


def test_openapi_states_the_roles_of_every_protected_operation(settings):
    from fleetapp.api import create_app

    schema = create_app(settings).openapi()
    missing = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if (method.upper(), path) in PUBLIC or ("*", path) in PUBLIC:
                continue
            if "**Roles:**" not in (op.get("description") or ""):
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing
