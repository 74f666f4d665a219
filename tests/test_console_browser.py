"""The dispatcher console in a real browser (Debian's headless Chromium) against the real system: API, ingest,
monitor, PostgreSQL/TimescaleDB, Mosquitto and 150 simulated vehicles.

One dispatcher and one administrator work side by side: the dispatcher signs in and sees the fleet move, a crash
published over MQTT reaches the feed within 2 s with a sound and a banner, the dispatcher acknowledges and resolves
it (the API then has it resolved, and the administrator's console shows each step at once), the dispatcher cannot
reach the administrator's audit trail (the API refuses it, the page says so), the console switches to Chinese,
and screenshots of both languages are saved (build/console/).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import httpx
import pytest

from fleetcore.contract import topic_for
from fleetcore.db import connect
from fleetcore.settings import Settings
from tests import factories
from tests.browser import chromium
from tests.conftest import MQTT_URL, _new_db
from tests.console_stack import SCREENSHOTS, console_stack, sign_in
from tests.ingest_helpers import publish_raw
from tests.waiting import wait_until

# Latency bounds: run after the rest of the suite, alone on the machine (Makefile `make test`).
pytestmark = [pytest.mark.serial, pytest.mark.slow, pytest.mark.mqtt, pytest.mark.db]

VEHICLES = 150  # ~40 % drive at any moment after the warm-up: comfortably over 50 moving
MIN_MOVING = 50
CRASH_IN_FEED_S = 2.0


@pytest.fixture(scope="module")
def stack(templates):
    for url in _new_db(templates, "timescale"):
        tag = uuid.uuid4().hex[:8]
        settings = Settings(
            environment="test", database_url=url, mqtt_url=MQTT_URL, topic_root=f"test-{tag}/fleet/v1",
            secret_key="console-browser-test-secret-0123456789abcdef", ingest_client_id=f"ingest-{tag}",
            monitor_client_id=f"monitor-{tag}", api_pool_size=4, ingest_writers=1,  # the PostgreSQL server is shared
        )  # fmt: skip
        with console_stack(settings, vehicles=VEHICLES) as s:
            yield s


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def wait_js(page, expr: str, timeout: float = 10.0):  # noqa: ANN001, ANN201
    """Poll a JavaScript expression until it is truthy (Playwright's wait_for_function evaluates strings, which
    the console's CSP forbids: the page runs without 'unsafe-eval', as in production)."""
    return wait_until(lambda: page.evaluate(f"() => ({expr})"), timeout=timeout, message=f"page: {expr}")


def _moving(page) -> dict:  # noqa: ANN001
    """Positions of the vehicles the page believes are driving, by id."""
    return page.evaluate(
        """() => Object.fromEntries([...window.fleetConsole.map.vehicles.values()]
              .filter((v) => v.online && v.speed >= 3).map((v) => [v.id, [v.lat, v.lon]]))"""
    )


def _crash(stack, device_id: str) -> float:  # noqa: ANN001
    event = {
        "ts": dt.datetime.now(dt.UTC).isoformat(),
        "seq": 900_000_000 + int(time.time()) % 1_000_000,
        "type": "crash",
    }
    t0 = time.monotonic()
    publish_raw(
        1883, [(topic_for(stack.settings.topic_root, device_id, "event"), json.dumps(event).encode())]
    )
    return t0


def test_a_dispatcher_shift(stack, browser):
    disp_ctx = browser.new_context(viewport={"width": 1600, "height": 900})
    admin_ctx = browser.new_context(viewport={"width": 1400, "height": 800})
    page, admin = disp_ctx.new_page(), admin_ctx.new_page()
    problems: list[str] = []
    for p in (page, admin):
        p.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        # (a refused request, e.g. 404 from routes not there yet, is logged by Chromium as an error: not a problem)
        p.on(
            "console",
            lambda m: (
                problems.append(f"console: {m.text}")
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        p.on(
            "request",
            lambda r: (
                problems.append(f"off-site request {r.url}") if not r.url.startswith(stack.url) else None
            ),
        )
    # A wrong password, then a role that may not use the console, are both refused with a message.
    page.goto(f"{stack.url}/console/")
    page.fill("#login-user", stack.dispatcher["username"])
    page.fill("#login-pass", "wrong-password-1")
    page.click("#login-form button[type=submit]")
    wait_js(page, "document.querySelector('#login-error').textContent.includes('Wrong')")

    sign_in(page, stack, stack.dispatcher)
    sign_in(admin, stack, stack.admin)
    for p in (page, admin):
        p.wait_for_selector("#conn[data-state=live]")
    # The fleet on the map, moving: at least 50 driving vehicles whose positions change on the page.
    wait_js(page, f"Number(document.body.dataset.moving) >= {MIN_MOVING}", 60)
    before = _moving(page)
    wait_until(
        lambda: sum(1 for k, v in _moving(page).items() if k in before and v != before[k]) >= MIN_MOVING,
        timeout=15, message="50 vehicles moving on the page",
    )  # fmt: skip
    assert page.evaluate("window.fleetConsole.stats.polls") >= 2

    # A crash over MQTT: in the feed within 2 s, with the banner and the sound.
    driving = set(
        page.evaluate(
            "[...window.fleetConsole.map.vehicles.values()].filter((v) => v.speed >= 3).map((v) => v.vin)"
        )
    )
    victim = next(v for v in stack.fleet if v["vin"] in driving and v["protocol"] == "json")
    t0 = _crash(stack, victim["device_id"])
    item = f"li.alert[data-kind=crash]:has(button.plate:text-is('{victim['plate']}'))"
    page.wait_for_selector(item, timeout=10_000)
    in_feed_s = time.monotonic() - t0
    assert in_feed_s < CRASH_IN_FEED_S, f"crash reached the feed after {in_feed_s:.2f} s"
    print(f"crash published -> in the dispatcher's feed: {in_feed_s * 1000:.0f} ms")
    assert page.is_visible("#critical-banner") and victim["plate"] in page.inner_text("#critical-banner")
    assert int(page.get_attribute("body", "data-beeps") or 0) >= 1
    admin.wait_for_selector(item, timeout=5_000)  # every open console sees it

    # The crashed car's panel next to the feed: the screenshot of the README (docs/console.png).
    page.evaluate(f"window.fleetConsole.openVehicle(null, '{victim['vin']}')")
    page.wait_for_selector("#panel:not([hidden]) .mini-alerts")
    wait_js(page, "!document.querySelector('.vehicle-layer.zooming')")  # the panel's own zoom has ended
    page.evaluate(
        """() => { const m = window.fleetConsole.map; const v = m.vehicles.get(m.selected);
                   const c = m.map.unproject(m.map.project([v.lat, v.lon], 12).add([230, 0]), 12);
                   m.map.setView(c, 12, { animate: false }); }"""
    )
    wait_js(
        page, "!document.querySelector('.vehicle-layer.zooming') && window.fleetConsole.map.drawn.length > 0"
    )
    page.screenshot(path=str(SCREENSHOTS / "console-en.png"))
    page.click("#panel-close")

    # Acknowledge, then resolve with a note, in the UI; the other console follows; the API agrees.
    page.click(f"{item} [data-action=ack]")
    page.wait_for_selector(f"{item}[data-status=acknowledged]")
    admin.wait_for_selector(f"{item}[data-status=acknowledged]", timeout=5_000)
    page.click(f"{item} [data-action=resolve]")
    page.fill(f"{item} textarea", "Driver called: minor bump, car drivable")
    page.click(f"{item} [data-action=confirm-resolve]")
    page.wait_for_selector(item, state="detached")  # the default filter shows open and acknowledged only
    admin.wait_for_selector(item, state="detached", timeout=5_000)
    token = httpx.post(f"{stack.url}/api/v1/auth/token", data={"username": stack.dispatcher["username"], "password": stack.dispatcher["password"]}).json()["access_token"]  # fmt: skip
    h = {"Authorization": f"Bearer {token}"}
    alerts = httpx.get(
        f"{stack.url}/api/v1/alerts", params={"kind": "crash", "vehicle": victim["vin"]}, headers=h
    ).json()
    [crash] = alerts["items"]
    assert crash["status"] == "resolved" and crash["resolved_by"] == stack.dispatcher["username"]
    assert crash["resolution_note"] == "Driver called: minor bump, car drivable"

    # Admin-only: the audit trail. The admin has the button and sees who did what; the dispatcher has no such
    # button, and asking anyway is refused by the API (403), which the page reports.
    admin.select_option("#filter-status", "resolved")
    admin.click(f"{item} [data-action=audit]")
    admin.wait_for_selector("#audit-dialog[open] li")
    trail = admin.inner_text("#audit-body")
    assert "alert.ack" in trail and "alert.resolve" in trail and stack.dispatcher["username"] in trail
    page.select_option("#filter-status", "resolved")
    page.wait_for_selector(item)
    assert page.locator("[data-action=audit], .admin-only:visible").count() == 0
    page.evaluate(f"window.fleetConsole.openAudit({crash['id']})")
    page.wait_for_selector("#audit-dialog[open] .error")
    assert page.inner_text("#audit-body .error") == "You are not allowed to do this."
    page.click("#audit-close")
    page.select_option("#filter-status", "active")

    # Search from the keyboard: "/" jumps to the box, a plate typed without its spaces, arrow down, Enter.
    other = next(v for v in stack.fleet if v["vin"] != victim["vin"] and v["status"] == "available")
    page.focus("#map")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"
    page.keyboard.type(other["plate"].replace(" ", ""))
    page.wait_for_selector("#search-results li[role=option]")
    page.keyboard.press("ArrowDown")
    assert page.get_attribute("#search", "aria-activedescendant") == "search-opt-0"
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#panel:not([hidden]) #panel-title:text-matches('^{other['plate']} ')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#panel", state="hidden")

    # The vehicle panel of the crashed car: live state, order-free renter data, alerts, trail.
    page.evaluate(f"window.fleetConsole.openVehicle(null, '{victim['vin']}')")
    page.wait_for_selector("#panel:not([hidden]) .kv")
    assert victim["plate"] in page.inner_text("#panel-title")
    wait_js(page, "document.querySelector('#panel .mini-alerts')?.textContent.includes('crash')")

    # Chinese: every label switches; the alert kinds and statuses too.
    page.select_option("#lang", "zh-CN")
    wait_js(page, "document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("#tab-alerts") == "告警" and page.inner_text("#tab-board") == "运营看板"
    assert "碰撞" in page.inner_text("#panel") and "实时状态" in page.inner_text("#panel")
    untranslated = page.evaluate(
        """() => [...document.querySelectorAll('[data-i18n]')].filter((e) => !/[\\u4e00-\\u9fff—]/.test(e.textContent))
                 .map((e) => e.dataset.i18n)"""
    )
    assert untranslated == [], untranslated
    page.click("#tab-board")
    page.wait_for_selector("table.board tbody tr")
    assert "运营看板" in page.inner_text("#board-title")
    page.screenshot(path=str(SCREENSHOTS / "console-zh-CN.png"))
    page.select_option("#lang", "en")

    assert problems == [], problems
    disp_ctx.close()
    admin_ctx.close()


def test_only_dispatchers_and_admins_may_use_the_console(stack, browser):
    with connect(stack.settings.require_database_url(), autocommit=True) as conn:
        finance = factories.user(conn, role="finance")
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{stack.url}/console/")
    page.fill("#login-user", finance["username"])
    page.fill("#login-pass", finance["password"])
    page.click("#login-form button[type=submit]")
    wait_js(page, "document.querySelector('#login-error').textContent.length > 0")
    assert "dispatchers and administrators only" in page.inner_text("#login-error")
    assert page.is_hidden("#console")
    ctx.close()
