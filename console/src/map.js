// The live map: Leaflet for pan/zoom/keyboard and the vector base map (roads from the shipped city model, stations
// and geofences from the API, drawn on one canvas), and our own canvas layer for the vehicles, clustered with
// supercluster. Positions arrive as a delta once a second; the layer redraws at most once per animation frame and
// only what is in view (clusters when zoomed out), so thousands of vehicles stay smooth.
import L from 'leaflet';
import Supercluster from 'supercluster';
import { t } from './i18n.js';

export const COLORS = {
  available: '#22c55e',
  reserved: '#2dd4bf',
  rented: '#60a5fa',
  service: '#c084fc',
  warning: '#f59e0b',
  critical: '#ef4444',
};
export const CATEGORIES = ['available', 'reserved', 'rented', 'service', 'warning', 'critical'];
const ROAD_STYLE = {
  motorway: { color: '#8a94a6', weight: 4 },
  city_motorway: { color: '#7d879a', weight: 3.5 },
  arterial: { color: '#6b7588', weight: 3 },
  primary: { color: '#596275', weight: 2.5 },
  access: { color: '#4b5466', weight: 2 },
};
const CLUSTER_RADIUS_PX = 40;
const CLUSTER_MAX_ZOOM = 14; // from zoom 15 every vehicle is drawn on its own
const VEHICLE_R = 7;
const HIT_SLOP_PX = 5;

/** The colour category of a vehicle: an alert wins over the registry status. */
export function category(v) {
  if (v.health === 'critical') return 'critical';
  if (v.health === 'warning') return 'warning';
  if (v.status === 'maintenance' || v.status === 'out_of_service') return 'service';
  if (v.status === 'rented') return 'rented';
  if (v.status === 'reserved') return 'reserved';
  return 'available';
}

export class FleetMap {
  constructor(el, { onVehicleClick }) {
    this.onVehicleClick = onVehicleClick;
    this.map = L.map(el, {
      zoomControl: false,
      attributionControl: false,
      preferCanvas: true,
      minZoom: 9,
      maxZoom: 18,
      zoomSnap: 0.5,
      keyboardPanDelta: 120,
    });
    this.zoom = L.control.zoom({ position: 'topleft' }).addTo(this.map);
    this.map.setView([52.505, 13.39], 12);
    this.vehicles = new Map(); // id -> vehicle
    this.points = []; // supercluster input, rebuilt when positions change
    this.index = null;
    this.drawn = []; // what the last frame drew, for hit tests
    this.selected = null;
    this.trail = null;
    this.frame = 0;
    this.stats = { draws: 0, lastDrawMs: 0, lastIndexMs: 0 };
    this.canvas = document.createElement('canvas');
    this.canvas.className = 'vehicle-layer';
    this.canvas.setAttribute('aria-hidden', 'true');
    el.appendChild(this.canvas);
    this.ctx = this.canvas.getContext('2d');
    this.map.on('move resize zoomend viewreset', () => this.schedule());
    this.map.on('zoomanim', () => this.canvas.classList.add('zooming'));
    this.map.on('zoomend', () => this.canvas.classList.remove('zooming'));
    this.map.on('click', (e) => this.click(e.containerPoint));
    this.map.on('mousemove', (e) => {
      el.classList.toggle('over-vehicle', this.hit(e.containerPoint) !== null);
    });
    // The container changes size without a window resize (the critical banner, the side panel): tell Leaflet.
    new ResizeObserver(() => {
      this.map.invalidateSize({ pan: false });
      this.schedule();
    }).observe(el);
    this.relabel();
  }

  relabel() {
    const c = this.zoom.getContainer();
    for (const [sel, key] of [['.leaflet-control-zoom-in', 'zoom_in'], ['.leaflet-control-zoom-out', 'zoom_out']]) {
      const a = c.querySelector(sel);
      a.title = t(key);
      a.setAttribute('aria-label', t(key));
    }
    this.map.getContainer().setAttribute('aria-label', t('map_label'));
  }

  async loadBaseMap(url) {
    const r = await fetch(url);
    const city = await r.json();
    const roads = city.features.filter((f) => f.properties.layer === 'road');
    L.geoJSON(roads, {
      interactive: false,
      style: (f) => ({ ...(ROAD_STYLE[f.properties.kind] || ROAD_STYLE.primary), opacity: 1, lineCap: 'round' }),
    }).addTo(this.map);
  }

  setPlaces(stations, geofences) {
    if (this.places) this.places.remove();
    this.places = L.layerGroup().addTo(this.map);
    for (const g of geofences) {
      const style =
        g.kind === 'restricted'
          ? { color: '#ef4444', weight: 1.5, fillOpacity: 0.12 }
          : g.kind === 'permitted'
            ? { color: '#22c55e', weight: 1.5, fill: false, dashArray: '6 6' }
            : { color: '#e2e8f0', weight: 1, fillOpacity: 0.06, dashArray: '3 4' };
      L.geoJSON(g.geometry, { interactive: false, style }).addTo(this.places);
    }
    const pts = [];
    for (const s of stations) {
      pts.push([s.lat, s.lon]);
      L.circleMarker([s.lat, s.lon], { radius: 5, color: '#f8fafc', weight: 2, fillColor: '#0f172a', fillOpacity: 1, interactive: false })
        .bindTooltip(`${s.code} · ${s.name}`, { permanent: true, direction: 'right', className: 'station-label', offset: [6, 0] })
        .addTo(this.places);
    }
    if (pts.length && !this.fitted) {
      this.fitted = true;
      this.map.fitBounds(L.latLngBounds(pts).pad(0.08));
    }
  }

  /** Replace the whole fleet (snapshot). */
  setFleet(list) {
    this.vehicles.clear();
    for (const v of list) this.vehicles.set(v.id, v);
    this.reindex();
  }

  /** Apply a positions delta (parallel arrays); returns the ids it did not know (new vehicles). */
  applyPositions(d) {
    const unknown = [];
    const n = d.id.length;
    for (let i = 0; i < n; i += 1) {
      const v = this.vehicles.get(d.id[i]);
      if (!v) {
        unknown.push(d.id[i]);
        continue;
      }
      v.lat = d.lat[i];
      v.lon = d.lon[i];
      v.heading = d.heading[i];
      v.speed = d.speed[i];
      v.online = d.online[i];
      v.health = d.health[i];
      v.open_alerts = d.open_alerts[i];
      v.ts = d.ts[i];
    }
    for (const s of d.status) {
      const v = this.vehicles.get(s.id);
      if (v) {
        v.status = s.status;
        v.station = s.station;
      } else unknown.push(s.id);
    }
    if (n || d.status.length) this.reindex();
    return unknown;
  }

  update(id, fields) {
    const v = this.vehicles.get(id);
    if (!v) return;
    Object.assign(v, fields);
    this.reindex();
  }

  reindex() {
    const t0 = performance.now();
    const pts = this.points;
    pts.length = 0;
    for (const v of this.vehicles.values()) {
      if (v.lat === null || v.lon === null || v.lat === undefined) continue;
      pts.push({ type: 'Feature', geometry: { type: 'Point', coordinates: [v.lon, v.lat] }, properties: { v } });
    }
    this.index = new Supercluster({
      radius: CLUSTER_RADIUS_PX,
      maxZoom: CLUSTER_MAX_ZOOM,
      map: (p) => {
        const c = category(p.v);
        return { crit: c === 'critical' ? 1 : 0, warn: c === 'warning' ? 1 : 0, on: p.v.online ? 1 : 0 };
      },
      reduce: (a, p) => {
        a.crit += p.crit;
        a.warn += p.warn;
        a.on += p.on;
      },
    }).load(pts);
    this.stats.lastIndexMs = performance.now() - t0;
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  draw() {
    const t0 = performance.now();
    const size = this.map.getSize();
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    if (c.width !== Math.round(size.x * dpr) || c.height !== Math.round(size.y * dpr)) {
      c.width = Math.round(size.x * dpr);
      c.height = Math.round(size.y * dpr);
      c.style.width = `${size.x}px`;
      c.style.height = `${size.y}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    this.drawn = [];
    if (!this.index) return;
    const b = this.map.getBounds().pad(0.1);
    const zoom = Math.floor(this.map.getZoom());
    const items = this.index.getClusters([b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], zoom);
    ctx.lineWidth = 1.5;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.font = '600 12px system-ui, sans-serif';
    for (const f of items) {
      const [lon, lat] = f.geometry.coordinates;
      const p = this.map.latLngToContainerPoint([lat, lon]);
      if (f.properties.cluster) this.drawCluster(ctx, p, f);
      else this.drawVehicle(ctx, p, f.properties.v);
    }
    const sel = this.selected && this.vehicles.get(this.selected);
    if (sel && sel.lat !== null) {
      const p = this.map.latLngToContainerPoint([sel.lat, sel.lon]);
      ctx.strokeStyle = '#f8fafc';
      ctx.lineWidth = 2.5;
      ctx.beginPath();
      ctx.arc(p.x, p.y, VEHICLE_R + 6, 0, Math.PI * 2);
      ctx.stroke();
    }
    this.stats.draws += 1;
    this.stats.lastDrawMs = performance.now() - t0;
  }

  drawCluster(ctx, p, f) {
    const { point_count: n, crit, warn, on } = f.properties;
    const r = Math.min(28, 11 + Math.sqrt(n) * 1.6);
    const fill = crit ? COLORS.critical : warn ? COLORS.warning : '#334155';
    ctx.globalAlpha = on ? 1 : 0.55;
    ctx.fillStyle = fill;
    ctx.strokeStyle = '#f8fafc';
    ctx.beginPath();
    ctx.arc(p.x, p.y, r, 0, Math.PI * 2);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = crit || warn ? '#0b1120' : '#f8fafc';
    ctx.fillText(String(n), p.x, p.y);
    ctx.globalAlpha = 1;
    this.drawn.push({ x: p.x, y: p.y, r, cluster: f.properties.cluster_id, lat: f.geometry.coordinates[1], lon: f.geometry.coordinates[0] });
  }

  drawVehicle(ctx, p, v) {
    ctx.globalAlpha = v.online ? 1 : 0.45;
    ctx.fillStyle = COLORS[category(v)];
    ctx.strokeStyle = '#0b1120';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    if (v.speed > 2 && v.heading !== null) {
      const a = ((v.heading - 90) * Math.PI) / 180; // compass bearing -> canvas angle
      const r = VEHICLE_R + 2;
      ctx.moveTo(p.x + Math.cos(a) * r, p.y + Math.sin(a) * r);
      ctx.lineTo(p.x + Math.cos(a + 2.5) * r, p.y + Math.sin(a + 2.5) * r);
      ctx.lineTo(p.x + Math.cos(a + Math.PI) * (r * 0.35), p.y + Math.sin(a + Math.PI) * (r * 0.35));
      ctx.lineTo(p.x + Math.cos(a - 2.5) * r, p.y + Math.sin(a - 2.5) * r);
      ctx.closePath();
    } else {
      ctx.arc(p.x, p.y, VEHICLE_R, 0, Math.PI * 2);
    }
    ctx.fill();
    ctx.stroke();
    ctx.globalAlpha = 1;
    this.drawn.push({ x: p.x, y: p.y, r: VEHICLE_R, id: v.id });
  }

  hit(pt) {
    let best = null;
    let bestD = Infinity;
    for (const d of this.drawn) {
      const dist = Math.hypot(d.x - pt.x, d.y - pt.y);
      if (dist <= d.r + HIT_SLOP_PX && dist < bestD) {
        best = d;
        bestD = dist;
      }
    }
    return best;
  }

  click(pt) {
    const d = this.hit(pt);
    if (!d) return;
    if (d.id !== undefined) this.onVehicleClick(d.id);
    else {
      const z = Math.min(this.index.getClusterExpansionZoom(d.cluster), 18);
      this.map.setView([d.lat, d.lon], z);
    }
  }

  /** Container pixel of a vehicle (tests click through this), or null when it is not drawn on its own. */
  pixelOf(id) {
    const d = this.drawn.find((x) => x.id === id);
    return d ? { x: d.x, y: d.y } : null;
  }

  select(id) {
    this.selected = id;
    this.schedule();
  }

  /** Centre the vehicle in the part of the map that `rightInset` pixels (the vehicle panel) leave visible. */
  centerOn(id, zoom = 16, rightInset = 0) {
    const v = this.vehicles.get(id);
    if (!v || v.lat === null || v.lat === undefined) return;
    const z = Math.max(zoom, this.map.getZoom());
    const centre = this.map.unproject(this.map.project([v.lat, v.lon], z).add([rightInset / 2, 0]), z);
    this.map.setView(centre, z);
  }

  showTrail(latlngs) {
    this.clearTrail();
    if (latlngs.length > 1) {
      this.trail = L.polyline(latlngs, { color: '#fde047', weight: 3, opacity: 0.9, interactive: false }).addTo(this.map);
    }
  }

  clearTrail() {
    if (this.trail) this.trail.remove();
    this.trail = null;
  }
}
