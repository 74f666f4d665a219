"""The FastAPI application: every domain's router, one error envelope, one pool per process, the auth hook."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from backoffice.admin import views as admin_views
from backoffice.auth import service as auth_service
from backoffice.auth import views as auth_views
from backoffice.broker import views as broker_views
from backoffice.console import views as console_views
from backoffice.customers import views as customers_views
from backoffice.devices import views as devices_views
from backoffice.finance import views as finance_views
from backoffice.hr import views as hr_views
from backoffice.maintenance import views as maintenance_views
from backoffice.notifications import views as notifications_views
from backoffice.orders import views as orders_views
from backoffice.payroll import views as payroll_views
from backoffice.performance import views as performance_views
from backoffice.privacy import views as privacy_views
from backoffice.procurement import views as procurement_views
from backoffice.stations import views as stations_views
from backoffice.support import views as support_views
from backoffice.telemetry import views as telemetry_views
from backoffice.training import views as training_views
from backoffice.vehicles import views as vehicles_views
from fleetapp import http_guard, wiring
from fleetcore import crypto
from fleetcore.api.deps import borrow, get_current_user, install_pool, route_roles
from fleetcore.api.errors import install_error_handlers
from fleetcore.db import Conn, make_pool
from fleetcore.settings import Settings, get_settings
from monitor import views as monitor_views

POOL_OPEN_TIMEOUT_S = 30.0
# Order only affects the OpenAPI listing.
ROUTERS = (
    auth_views.router,
    telemetry_views.router,
    stations_views.router,
    vehicles_views.router,
    devices_views.router,
    procurement_views.router,
    maintenance_views.router,
    customers_views.router,
    privacy_views.router,
    orders_views.router,
    finance_views.router,
    hr_views.router,
    training_views.router,
    performance_views.router,
    payroll_views.router,
    broker_views.router,
    notifications_views.router,
    support_views.router,
    admin_views.router,
    monitor_views.router,
    console_views.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    wiring.wire()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = make_pool(
            settings.require_database_url(),
            min_size=min(settings.api_pool_min, settings.api_pool_size),
            max_size=settings.api_pool_size,
            name="api",
        )
        # Serve once the pool holds its minimum, so the first requests do not wait for connections to open.
        await run_in_threadpool(pool.wait, POOL_OPEN_TIMEOUT_S)
        install_pool(app, pool, wait_s=settings.api_db_wait_s)
        for hook in app.state.startup_hooks:
            await hook(app)
        try:
            yield
        finally:
            for hook in app.state.shutdown_hooks:
                await hook(app)
            pool.close()

    app = FastAPI(
        title="Fleet platform API",
        version="1.0",
        description="Vehicle telematics and rental operations. Authenticate with POST /api/v1/auth/token.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []

    signing = auth_service.TokenSigning.from_settings(settings)  # no secret, no API (ConfigError)
    crypto.configure(settings)  # personal identifiers at rest: no keys in production, no API (ConfigError)

    def authenticate(conn: Conn, token: str) -> dict | None:
        return auth_service.user_for_token(conn, token, signing=signing)

    app.state.authenticate = authenticate
    app.state.token_signing = signing
    install_error_handlers(app)
    http_guard.install(app, settings)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        async with borrow(app) as conn:
            await run_in_threadpool(conn.execute, "SELECT 1")
        return {"status": "ok"}

    for router in ROUTERS:
        _document_roles(router.routes)
        app.include_router(router)
    monitor_views.setup(app)
    console_views.setup(app)
    return app


def _document_roles(routes: list) -> None:
    """State in each operation's OpenAPI description which roles may call it (from its require_roles dependency)."""
    for route in routes:
        if isinstance(route, APIRoute):
            roles = route_roles(route.dependant)
            who = ", ".join(roles) if roles else "any signed-in staff user"
            if roles is not None or any(d.call is get_current_user for d in route.dependant.dependencies):
                route.description = f"{route.description or ''}\n\n**Roles:** {who}".strip()
