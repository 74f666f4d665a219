"""The committed console bundle is what its sources build (no npm needed here: the sources' hash recorded by
console/build.mjs is recomputed), the base map is what the city model exports today, every string exists in
English and Chinese, and the page loads nothing from another origin. `make console-check` rebuilds with npm and
compares byte for byte."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from backoffice.console import basemap
from backoffice.console.views import STATIC_DIR
from monitor.models import KINDS, SEVERITIES, STATUSES

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "console"
INFO = json.loads((STATIC_DIR / "build-info.json").read_text())
# Licences we accept in the shipped bundle (permissive, no attribution beyond the kept licence comments).
LICENCES = {"MIT", "ISC", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0"}
VEHICLE_STATUSES = ("available", "reserved", "rented", "maintenance", "out_of_service", "retired")
ORDER_STATUSES = ("pending", "confirmed", "assigned", "active", "returned", "completed")


def _sources_hash(files: list[str]) -> str:
    """The same digest as build.mjs sourcesHash(): path NUL content NUL, in sorted path order."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (SRC / f).read_bytes() + b"\0")
    return h.hexdigest()


def test_bundle_was_built_from_these_sources():
    files = sorted(
        [p.relative_to(SRC).as_posix() for p in (SRC / "src").rglob("*") if p.is_file()]
        + ["build.mjs", "package.json", "package-lock.json"]
    )
    assert INFO["sources"] == files, (
        "console sources added or removed since the last build: run `make console`"
    )
    assert INFO["sources_sha256"] == _sources_hash(files), (
        "console/ changed since the last build: run `make console`"
    )
    for name, digest in INFO["files"].items():
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, (
            f"{name} edited by hand"
        )
    html = (STATIC_DIR / "index.html").read_text()
    for name in ("assets/console.js", "assets/console.css", "city.geojson"):
        assert f"{name}?v={INFO['files'][name][:12]}" in html


def test_base_map_is_the_city_model():
    assert (STATIC_DIR / "city.geojson").read_text() == basemap.render(), "run `make console`"
    city = basemap.export()
    layers = [f["properties"]["layer"] for f in city["features"]]
    assert layers.count("station") == 12 and layers.count("road") > 100


def test_nothing_from_another_origin():
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    css = (STATIC_DIR / "assets" / "console.css").read_text()
    urls = re.findall(r"url\(\"?([^\")]+)", css)
    assert urls and all(u.startswith(("data:", "#default#VML")) for u in urls), (
        urls
    )  # VML: Leaflet's old-IE hook
    lock = json.loads((SRC / "package-lock.json").read_text())
    for path, pkg in lock["packages"].items():
        if path:  # "" is the console itself
            assert pkg.get("license") in LICENCES, f"{path}: licence {pkg.get('license')!r}"


def _messages() -> dict[str, dict[str, str]]:
    text = (SRC / "src" / "i18n.js").read_text()
    en, zh = text.split("\n  'zh-CN': {", 1)
    zh = zh.split("\n  },\n};", 1)[0]
    pairs = re.compile(r"^\s+([a-z0-9_]+): '((?:[^'\\]|\\.)*)',$", re.M)
    return {"en": dict(pairs.findall(en.split("  en: {", 1)[1])), "zh-CN": dict(pairs.findall(zh))}


def test_every_string_in_both_languages():
    msgs = _messages()
    en, zh = msgs["en"], msgs["zh-CN"]
    assert len(en) > 150 and set(en) == set(zh), set(en) ^ set(zh)
    for key, value in zh.items():
        assert value.strip(), key
        placeholders = set(re.findall(r"\{(\w+)\}", en[key]))
        assert set(re.findall(r"\{(\w+)\}", value)) == placeholders, key
        # Chinese text, or only placeholders, digits and symbols (units like °C, a dash for "unknown")
        assert re.search(r"[\u4e00-\u9fff]", value) or not re.search(
            r"[A-Za-z]", re.sub(r"\{\w+\}", "", value)
        ), key
    used = set()
    for js in (SRC / "src").glob("*.js"):
        used |= set(re.findall(r"\bt\('([a-z0-9_]+)'", js.read_text()))
    html = (SRC / "src" / "index.html").read_text()
    used |= set(re.findall(r'data-i18n(?:-aria|-placeholder|-title)?="([a-z0-9_]+)"', html))
    assert used - set(en) == set(), used - set(en)
    # Enumerations translated through tv(prefix, value): every value the API can send.
    for prefix, values in (
        ("kind", KINDS), ("sev", SEVERITIES), ("status", STATUSES), ("vs", VEHICLE_STATUSES),
        ("os", ORDER_STATUSES), ("health", ("ok", "warning", "critical")), ("role", ("admin", "dispatcher")),
        ("filter", ("status", "severity", "kind", "station")),
    ):  # fmt: skip
        missing = [v for v in values if f"{prefix}_{v}" not in en]
        assert not missing, (prefix, missing)
    alerts_js = (SRC / "src" / "alerts.js").read_text()
    assert set(
        re.findall(r"'([a-z_]+)'", alerts_js.split("export const KINDS = [", 1)[1].split("];", 1)[0])
    ) == set(KINDS)
