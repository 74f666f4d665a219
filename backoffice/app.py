"""The FastAPI application: routers from every domain, one error envelope, a pool per process."""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from backoffice.deps import get_current_user, route_roles
from backoffice.errors import install_error_handlers
from fleetcore.db import make_pool
from fleetcore.settings import Settings, get_settings

# Every module here exposes `router`; order only affects the OpenAPI listing.
ROUTER_MODULES = (
    "backoffice.auth.views",
    "backoffice.telemetry.views",
    "backoffice.fleet.views",
    "backoffice.customers.views",
    "backoffice.orders.views",
    "backoffice.finance.views",
    "backoffice.hr.views",
    "monitor.views",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = make_pool(settings.require_database_url(), min_size=1, max_size=10, name="api")
        hooks = getattr(app.state, "startup_hooks", [])
        for hook in hooks:
            await hook(app)
        try:
            yield
        finally:
            for hook in getattr(app.state, "shutdown_hooks", []):
                await hook(app)
            app.state.pool.close()

    app = FastAPI(
        title="Fleet platform API",
        version="1.0",
        description="Vehicle telematics and rental operations. Authenticate with POST /api/v1/auth/token.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        with app.state.pool.connection() as conn:
            conn.execute("SELECT 1")
        return {"status": "ok"}

    for name in ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # domain not built yet
                continue
            raise
        _document_roles(module.router.routes)
        app.include_router(module.router)
        if hasattr(module, "setup"):
            module.setup(app)
    return app


def _document_roles(routes: list) -> None:
    """State in each operation's OpenAPI description which roles may call it (from its require_roles dependency)."""
    for route in routes:
        if isinstance(route, APIRoute):
            roles = route_roles(route.dependant)
            who = ", ".join(roles) if roles else "any signed-in staff user"
            if roles is not None or any(d.call is get_current_user for d in route.dependant.dependencies):
                route.description = f"{route.description or ''}\n\n**Roles:** {who}".strip()
