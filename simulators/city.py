"""A small hand-made road network of Berlin: rental stations at real places and the major roads between them.

No map data is available offline, so the coordinates were placed by hand from the public city map (good to a
few tens of metres, enough for plausible routes). Roads are polylines between named nodes; vehicles take the
fastest path (length / speed limit, Dijkstra) between stations.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from functools import lru_cache

# Equirectangular projection around central Berlin: good to < 0.1 % over the ~40 km the network spans.
LAT0, LON0 = 52.5, 13.4
M_PER_DEG_LAT = 111_250.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))

# Speed limits (km/h) per road type: StVO §3 50 km/h in town; Berlin's A100 is signed 80, the A111/A113 100;
# arterials like Heerstraße and Kaiserdamm 60; station access roads and car parks 30.
ROAD_LIMIT_KMH = {"motorway": 100.0, "city_motorway": 80.0, "arterial": 60.0, "primary": 50.0, "access": 30.0}
# Turn radius assumed at a bend of more than SHARP_TURN_DEG vs. a gentle bend, per road type (metres).
TURN_RADIUS_M = {
    "motorway": (400.0, 400.0),
    "city_motorway": (250.0, 250.0),
    "arterial": (30.0, 80.0),
    "primary": (25.0, 70.0),
    "access": (10.0, 25.0),
}
SHARP_TURN_DEG = 60.0
MIN_BEND_DEG = 12.0  # bends gentler than this do not slow anybody down
# Comfortable lateral acceleration when cornering: ~0.15 g (drivers keep below ~0.2 g in everyday driving,
# e.g. Bosetti et al. 2014 "On the human control of vehicles: an experimental study of acceleration").
COMFORT_LATERAL_MS2 = 1.5


@dataclass(frozen=True, slots=True)
class Station:
    code: str
    name: str
    lat: float
    lon: float
    node: str


STATIONS: tuple[Station, ...] = (
    Station("HBF", "Berlin Hauptbahnhof", 52.52510, 13.36940, "st_hbf"),
    Station("ALEX", "Alexanderplatz", 52.52190, 13.41320, "st_alex"),
    Station("ZOO", "Bahnhof Zoologischer Garten", 52.50690, 13.33230, "st_zoo"),
    Station("OSTBF", "Ostbahnhof", 52.51080, 13.43480, "st_ostbf"),
    Station("POTS", "Potsdamer Platz", 52.50960, 13.37590, "st_pots"),
    Station("SUED", "Bahnhof Südkreuz", 52.47530, 13.36550, "st_sued"),
    Station("GESU", "Bahnhof Gesundbrunnen", 52.54860, 13.38850, "st_gesu"),
    Station("SPAN", "Rathaus Spandau", 52.53470, 13.19750, "st_span"),
    Station("TXL", "Tegel (Urban Tech Republic)", 52.55880, 13.28840, "st_txl"),
    Station("BER", "Flughafen BER Terminal 1", 52.36670, 13.50330, "st_ber"),
    Station("MESSE", "Messe Nord / ICC", 52.50730, 13.28340, "st_messe"),
    Station("WARS", "Warschauer Straße", 52.50590, 13.44970, "st_wars"),
)

# Road nodes: intersections and motorway junctions. (lat, lon, has traffic lights)
NODES: dict[str, tuple[float, float, bool]] = {
    **{s.node: (s.lat, s.lon, False) for s in STATIONS},
    "erp": (52.51270, 13.32180, True),  # Ernst-Reuter-Platz
    "stern": (52.51450, 13.35010, False),  # Großer Stern (roundabout)
    "btor": (52.51630, 13.37720, True),  # Platz des 18. März
    "fried": (52.51720, 13.38890, True),  # Unter den Linden / Friedrichstraße
    "lust": (52.51860, 13.40100, True),  # Karl-Liebknecht-Str. / Lustgarten
    "straus": (52.51830, 13.42750, True),  # Strausberger Platz
    "ftor": (52.51580, 13.45410, True),  # Frankfurter Tor
    "andreas": (52.51350, 13.43120, True),  # Andreasstraße
    "muehlen": (52.50600, 13.44200, True),  # Mühlenstraße
    "oberbaum": (52.50200, 13.44600, True),  # Oberbaumbrücke
    "schltor": (52.50100, 13.44200, True),  # Schlesisches Tor
    "kotti": (52.49910, 13.41800, True),  # Kottbusser Tor
    "hallesch": (52.49770, 13.39150, True),  # Hallesches Tor
    "ckpt": (52.50750, 13.39040, True),  # Checkpoint Charlie
    "leipfried": (52.50980, 13.38900, True),  # Leipziger / Friedrichstraße
    "spittel": (52.51100, 13.40400, True),  # Spittelmarkt
    "heine": (52.51000, 13.41600, True),  # Heinrich-Heine-Straße
    "jannow": (52.51400, 13.41800, True),  # Jannowitzbrücke
    "stresem": (52.50300, 13.38100, True),  # Stresemannstraße / Anhalter Bahnhof
    "rosenth": (52.52970, 13.40130, True),  # Rosenthaler Platz
    "rosalux": (52.52900, 13.41100, True),  # Rosa-Luxemburg-Platz / Schönhauser Allee
    "eberswalder": (52.54100, 13.41200, True),  # Schönhauser Allee / Eberswalder Str.
    "bornholmer": (52.54900, 13.41300, True),  # Bornholmer Straße
    "brunnen": (52.53900, 13.39500, True),  # Brunnenstraße / Bernauer Straße
    "inval": (52.53100, 13.38300, True),  # Invalidenstraße / Chausseestraße
    "moabit": (52.52450, 13.34400, True),  # Alt-Moabit / Stromstraße
    "turm": (52.52650, 13.33000, True),  # Turmstraße / Beusselstraße
    "bellevue": (52.51950, 13.35600, True),  # Spreeweg / Schloss Bellevue
    "tunnel_s": (52.50990, 13.37300, False),  # Tiergartentunnel south portal
    "wittenberg": (52.50190, 13.34270, True),  # Wittenbergplatz
    "nolle": (52.49940, 13.35360, True),  # Nollendorfplatz
    "pallas": (52.49750, 13.36200, True),  # Potsdamer Str. / Pallasstraße
    "kleist": (52.49060, 13.35980, True),  # Kleistpark
    "joachim": (52.50300, 13.33000, True),  # Kurfürstendamm / Joachimsthaler Str.
    "adenauer": (52.49990, 13.30730, True),  # Adenauerplatz
    "sophie": (52.51110, 13.30300, True),  # Sophie-Charlotte-Platz
    "kaiserdamm": (52.51030, 13.28500, True),  # Kaiserdamm / Messedamm
    "theo": (52.51000, 13.27300, False),  # Theodor-Heuss-Platz (roundabout)
    "heer_w": (52.51300, 13.23000, True),  # Heerstraße / Scholzplatz
    "heer_span": (52.52300, 13.19300, True),  # Heerstraße / Wilhelmstraße
    "siemens": (52.53650, 13.26500, True),  # Siemensdamm
    "rohr": (52.53700, 13.24500, True),  # Rohrdamm
    "nonnen": (52.53550, 13.21000, True),  # Nonnendammallee / Spandau
    "gesu_s": (52.54300, 13.36600, True),  # Seestraße / Müllerstraße
    "luftbr": (52.48500, 13.38600, True),  # Platz der Luftbrücke
    "hermann": (52.48680, 13.42450, True),  # Hermannplatz
    # A100 / A111 / A113 junctions
    "a_funkturm": (52.49850, 13.27700, False),  # Dreieck Funkturm
    "a_halensee": (52.49620, 13.28860, False),  # AS Kurfürstendamm
    "a_hohenz": (52.48680, 13.30220, False),  # AS Hohenzollerndamm
    "a_schoeneberg": (52.47810, 13.34340, False),  # Kreuz Schöneberg
    "a_sachsendamm": (52.47710, 13.36300, False),  # AS Sachsendamm (Südkreuz)
    "a_tempelhof": (52.46600, 13.38550, False),  # AS Tempelhofer Damm
    "a_oberland": (52.46400, 13.41000, False),  # AS Oberlandstraße
    "a_grenz": (52.46280, 13.44500, False),  # AS Grenzallee
    "a_neukoelln": (52.46200, 13.46100, False),  # Dreieck Neukölln
    "a_spaeth": (52.44800, 13.49200, False),  # AS Späthstraße
    "a_adlershof": (52.43050, 13.52450, False),  # AS Adlershof
    "a_schoenefeld_n": (52.40600, 13.53150, False),  # AS Schönefeld-Nord
    "a_schoenefeld": (52.39000, 13.52100, False),  # Schönefelder Kreuz
    "a_charlottenburg": (52.51950, 13.28650, False),  # Dreieck Charlottenburg / AS Spandauer Damm
    "a_jkp": (52.53620, 13.29370, False),  # AS Jakob-Kaiser-Platz
    "a_beussel": (52.53350, 13.32850, False),  # AS Beusselstraße
    "a_seestr": (52.54100, 13.34800, False),  # AS Seestraße
    "a_tegel": (52.55200, 13.28700, False),  # AS Flughafen Tegel (A111)
}

# Roads: (from, to, type, intermediate points). Every road is two-way.
ROADS: tuple[tuple[str, str, str, tuple[tuple[float, float], ...]], ...] = (
    # Station access (short, 30 km/h)
    ("st_hbf", "moabit", "primary", ((52.52400, 13.35800),)),
    ("st_hbf", "inval", "primary", ((52.52700, 13.37500),)),
    ("st_hbf", "bellevue", "primary", ((52.52250, 13.36500),)),
    ("st_hbf", "tunnel_s", "arterial", ((52.51900, 13.37100), (52.51300, 13.37250))),
    ("st_alex", "lust", "primary", ((52.52050, 13.40700),)),
    ("st_alex", "straus", "primary", ((52.52050, 13.42000),)),
    ("st_alex", "rosalux", "primary", ()),
    ("st_alex", "jannow", "primary", ((52.51800, 13.41600),)),
    ("st_alex", "rosenth", "primary", ((52.52600, 13.40600),)),
    ("st_zoo", "joachim", "access", ()),
    ("st_zoo", "erp", "primary", ((52.50950, 13.32700),)),
    ("st_zoo", "wittenberg", "primary", ((52.50450, 13.33700),)),
    ("st_zoo", "stern", "primary", ((52.50700, 13.34400), (52.51050, 13.34800))),
    ("st_ostbf", "andreas", "primary", ()),
    ("st_ostbf", "heine", "primary", ((52.51020, 13.42500),)),
    ("st_ostbf", "muehlen", "primary", ((52.50800, 13.43900),)),
    ("st_pots", "btor", "primary", ((52.51300, 13.37650),)),
    ("st_pots", "tunnel_s", "access", ()),
    ("st_pots", "leipfried", "primary", ((52.50950, 13.38200),)),
    ("st_pots", "stresem", "primary", ()),
    ("st_pots", "pallas", "primary", ((52.50400, 13.36900), (52.50050, 13.36500))),
    ("st_sued", "a_sachsendamm", "access", ()),
    ("st_sued", "kleist", "primary", ((52.48300, 13.36300),)),
    ("st_sued", "luftbr", "primary", ((52.47900, 13.37800),)),
    ("st_gesu", "brunnen", "primary", ((52.54500, 13.39100),)),
    ("st_gesu", "bornholmer", "primary", ((52.54950, 13.40000),)),
    ("st_gesu", "gesu_s", "primary", ((52.54600, 13.37800),)),
    ("st_span", "heer_span", "arterial", ((52.52900, 13.19700),)),
    ("st_span", "nonnen", "arterial", ((52.53500, 13.20300),)),
    ("st_txl", "a_tegel", "access", ((52.55600, 13.28800),)),
    ("st_ber", "a_schoenefeld", "motorway", ((52.37400, 13.51200), (52.38200, 13.51800))),
    ("st_messe", "kaiserdamm", "access", ()),
    ("st_messe", "a_funkturm", "access", ((52.50300, 13.28000),)),
    ("st_wars", "ftor", "primary", ((52.51100, 13.45200),)),
    ("st_wars", "oberbaum", "primary", ((52.50400, 13.44800),)),
    ("st_wars", "muehlen", "primary", ()),
    # Straße des 17. Juni, Unter den Linden, Karl-Liebknecht-Straße, Karl-Marx-Allee
    ("erp", "stern", "primary", ((52.51350, 13.33600),)),
    ("stern", "btor", "primary", ((52.51540, 13.36400),)),
    ("stern", "bellevue", "primary", ()),
    ("btor", "fried", "primary", ()),
    ("fried", "lust", "primary", ((52.51780, 13.39500),)),
    ("straus", "ftor", "arterial", ((52.51700, 13.44100),)),
    ("straus", "andreas", "primary", ()),
    ("andreas", "jannow", "primary", ((52.51400, 13.42500),)),
    # Southern centre: Leipziger Str., Friedrichstr., Gitschiner / Skalitzer Str.
    ("leipfried", "spittel", "primary", ((52.51030, 13.39700),)),
    ("spittel", "heine", "primary", ((52.51050, 13.41000),)),
    ("heine", "jannow", "primary", ()),
    ("fried", "leipfried", "primary", ((52.51350, 13.38900),)),
    ("leipfried", "ckpt", "primary", ()),
    ("ckpt", "hallesch", "primary", ((52.50200, 13.39100),)),
    ("stresem", "hallesch", "primary", ((52.50000, 13.38500),)),
    ("hallesch", "kotti", "primary", ((52.49820, 13.40500),)),
    ("kotti", "schltor", "primary", ((52.50000, 13.43000),)),
    ("schltor", "oberbaum", "primary", ()),
    ("oberbaum", "muehlen", "primary", ((52.50400, 13.44350),)),
    ("kotti", "hermann", "primary", ((52.49300, 13.42100),)),
    ("hallesch", "luftbr", "primary", ((52.49200, 13.38800),)),
    # North: Invalidenstr., Brunnenstr., Schönhauser Allee, Torstr.
    ("inval", "rosenth", "primary", ((52.53000, 13.39300),)),
    ("rosenth", "rosalux", "primary", ()),
    ("rosenth", "brunnen", "primary", ((52.53400, 13.39900),)),
    ("rosalux", "eberswalder", "primary", ((52.53500, 13.41150),)),
    ("eberswalder", "bornholmer", "primary", ()),
    ("inval", "brunnen", "primary", ((52.53500, 13.38900),)),
    ("inval", "fried", "primary", ((52.52400, 13.38800),)),
    ("gesu_s", "a_seestr", "primary", ()),
    # West: Moabit, Bismarckstr./Kaiserdamm, Heerstr., Kurfürstendamm
    ("moabit", "turm", "primary", ()),
    ("moabit", "bellevue", "primary", ((52.52100, 13.35000),)),
    ("turm", "a_beussel", "primary", ((52.53000, 13.32900),)),
    ("turm", "erp", "primary", ((52.52000, 13.32600),)),
    ("erp", "sophie", "arterial", ((52.51200, 13.31200),)),
    ("sophie", "kaiserdamm", "arterial", ()),
    ("kaiserdamm", "theo", "arterial", ()),
    ("sophie", "a_charlottenburg", "arterial", ((52.51600, 13.29500),)),
    ("theo", "heer_w", "arterial", ((52.51150, 13.25000),)),
    ("heer_w", "heer_span", "arterial", ((52.51700, 13.21000),)),
    ("siemens", "rohr", "arterial", ()),
    ("rohr", "nonnen", "arterial", ((52.53650, 13.22800),)),
    ("a_jkp", "siemens", "arterial", ((52.53650, 13.28000),)),
    ("joachim", "adenauer", "primary", ((52.50150, 13.31800),)),
    ("joachim", "wittenberg", "primary", ((52.50250, 13.33700),)),
    ("adenauer", "a_halensee", "primary", ((52.49800, 13.29800),)),
    ("wittenberg", "nolle", "primary", ()),
    ("nolle", "pallas", "primary", ()),
    ("pallas", "kleist", "primary", ()),
    ("luftbr", "a_tempelhof", "primary", ((52.47500, 13.38600),)),
    ("hermann", "a_grenz", "primary", ((52.47500, 13.43500), (52.46700, 13.44200))),
    # Motorways: A100 ring (west and south), A111 to Tegel, A113 to BER
    ("a_funkturm", "a_charlottenburg", "city_motorway", ((52.50900, 13.28100),)),
    ("a_charlottenburg", "a_jkp", "city_motorway", ((52.52800, 13.29100),)),
    ("a_jkp", "a_beussel", "city_motorway", ((52.53500, 13.31000),)),
    ("a_beussel", "a_seestr", "city_motorway", ((52.53750, 13.33800),)),
    ("a_jkp", "a_tegel", "motorway", ((52.54400, 13.28900),)),
    ("a_funkturm", "a_halensee", "city_motorway", ()),
    ("a_halensee", "a_hohenz", "city_motorway", ((52.49100, 13.29400),)),
    ("a_hohenz", "a_schoeneberg", "city_motorway", ((52.48100, 13.32000),)),
    ("a_schoeneberg", "a_sachsendamm", "city_motorway", ()),
    ("a_sachsendamm", "a_tempelhof", "city_motorway", ((52.47200, 13.37600),)),
    ("a_tempelhof", "a_oberland", "city_motorway", ()),
    ("a_oberland", "a_grenz", "city_motorway", ((52.46300, 13.42800),)),
    ("a_grenz", "a_neukoelln", "city_motorway", ()),
    ("a_neukoelln", "a_spaeth", "motorway", ((52.45500, 13.47800),)),
    ("a_spaeth", "a_adlershof", "motorway", ((52.44000, 13.50800),)),
    ("a_adlershof", "a_schoenefeld_n", "motorway", ((52.41800, 13.53000),)),
    ("a_schoenefeld_n", "a_schoenefeld", "motorway", ()),
    ("kleist", "a_schoeneberg", "primary", ((52.48400, 13.35200),)),
)


def to_xy(lat: float, lon: float) -> tuple[float, float]:
    """Degrees → local metres (x east, y north)."""
    return (lon - LON0) * M_PER_DEG_LON, (lat - LAT0) * M_PER_DEG_LAT


def to_latlon(x: float, y: float) -> tuple[float, float]:
    """Local metres → degrees."""
    return LAT0 + y / M_PER_DEG_LAT, LON0 + x / M_PER_DEG_LON


@dataclass(slots=True)
class Route:
    """A drivable polyline with per-segment limits and per-vertex speed constraints (immutable once built)."""

    start: str  # station code
    end: str
    xs: list[float]
    ys: list[float]
    cum: list[float]  # distance from the start to each vertex (m)
    seg_limit: list[float]  # speed limit of segment i (vertex i → i+1), m/s
    seg_heading: list[float]  # compass bearing of segment i, degrees
    corner: list[float]  # highest comfortable speed through vertex i (m/s); inf when straight
    signal: list[bool]  # vertex i has traffic lights
    length: float = field(init=False)

    def __post_init__(self) -> None:
        self.length = self.cum[-1]


def _bearing(x0: float, y0: float, x1: float, y1: float) -> float:
    return math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0


def _adjacency() -> dict[str, list[tuple[str, str, list[tuple[float, float]]]]]:
    adj: dict[str, list[tuple[str, str, list[tuple[float, float]]]]] = {n: [] for n in NODES}
    for a, b, kind, mids in ROADS:
        pa = (NODES[a][0], NODES[a][1])
        pb = (NODES[b][0], NODES[b][1])
        pts = [pa, *mids, pb]
        adj[a].append((b, kind, pts))
        adj[b].append((a, kind, pts[::-1]))
    return adj


def _polyline_len(pts: list[tuple[float, float]]) -> float:
    total = 0.0
    for (la0, lo0), (la1, lo1) in zip(pts, pts[1:], strict=False):
        x0, y0 = to_xy(la0, lo0)
        x1, y1 = to_xy(la1, lo1)
        total += math.hypot(x1 - x0, y1 - y0)
    return total


def shortest_path(start_node: str, end_node: str) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """Fastest path (free-flow travel time) as a list of (node, road type, polyline) hops; Dijkstra."""
    adj = _adjacency()
    best = {start_node: 0.0}
    prev: dict[str, tuple[str, str, list[tuple[float, float]]]] = {}
    heap = [(0.0, start_node)]
    while heap:
        cost, node = heapq.heappop(heap)
        if node == end_node:
            break
        if cost > best.get(node, math.inf):
            continue
        for nxt, kind, pts in adj[node]:
            c = cost + _polyline_len(pts) / (ROAD_LIMIT_KMH[kind] / 3.6)
            if c < best.get(nxt, math.inf):
                best[nxt] = c
                prev[nxt] = (node, kind, pts)
                heapq.heappush(heap, (c, nxt))
    if end_node not in prev and start_node != end_node:
        raise ValueError(f"no path from {start_node} to {end_node}")
    hops = []
    node = end_node
    while node != start_node:
        p, kind, pts = prev[node]
        hops.append((node, kind, pts))
        node = p
    return hops[::-1]


def _corner_speed(turn_deg: float, kind: str) -> float:
    if turn_deg < MIN_BEND_DEG:
        return math.inf
    sharp, gentle = TURN_RADIUS_M[kind]
    radius = sharp if turn_deg > SHARP_TURN_DEG else gentle
    return math.sqrt(COMFORT_LATERAL_MS2 * radius)


def build_route(start: Station, end: Station) -> Route:
    """The fastest route between two stations as a Route."""
    hops = shortest_path(start.node, end.node)
    xs: list[float] = []
    ys: list[float] = []
    kinds: list[str] = []  # road type of the segment starting at each vertex
    signal: list[bool] = []
    x, y = to_xy(start.lat, start.lon)
    xs.append(x)
    ys.append(y)
    signal.append(False)
    for node, kind, pts in hops:
        for i, (la, lo) in enumerate(pts[1:], start=1):
            x, y = to_xy(la, lo)
            if math.hypot(x - xs[-1], y - ys[-1]) < 1.0:
                continue
            kinds.append(kind)
            xs.append(x)
            ys.append(y)
            signal.append(i == len(pts) - 1 and NODES[node][2])
    n = len(xs)
    cum = [0.0]
    heading = []
    limit = []
    for i in range(n - 1):
        cum.append(cum[-1] + math.hypot(xs[i + 1] - xs[i], ys[i + 1] - ys[i]))
        heading.append(_bearing(xs[i], ys[i], xs[i + 1], ys[i + 1]))
        limit.append(ROAD_LIMIT_KMH[kinds[i]] / 3.6)
    corner = [math.inf] * n
    for i in range(1, n - 1):
        turn = abs((heading[i] - heading[i - 1] + 180.0) % 360.0 - 180.0)
        # the tighter of the two road types governs the bend
        kind = kinds[i] if ROAD_LIMIT_KMH[kinds[i]] < ROAD_LIMIT_KMH[kinds[i - 1]] else kinds[i - 1]
        corner[i] = min(_corner_speed(turn, kind), limit[i])
    corner[0] = corner[-1] = 0.0
    return Route(start.code, end.code, xs, ys, cum, limit, heading, corner, signal)


@lru_cache(maxsize=1)
def routes() -> dict[tuple[str, str], Route]:
    """Every station-to-station route, built once per process."""
    by_code = {s.code: s for s in STATIONS}
    return {(a, b): build_route(by_code[a], by_code[b]) for a in by_code for b in by_code if a != b}


STATION_BY_CODE = {s.code: s for s in STATIONS}
