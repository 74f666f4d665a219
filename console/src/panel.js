// The vehicle panel: live state with DTC descriptions, health, the current order and the renter's contact,
// recent alerts, the service plan, the trail of the last hour on the map, and the predicted maintenance risk
// and plan when the predictive-maintenance routes exist (they answer 404 until then, and the section stays away).
import { api } from './api.js';
import { $, clear, h, put } from './dom.js';
import { fmtDateTime, fmtNum, fmtTime, t, tv } from './i18n.js';

const REFRESH_MS = 5000;
const TRAIL_MINUTES = 60;
const TRAIL_BUCKET = '10s';

export class VehiclePanel {
  constructor({ root, map, notify }) {
    this.root = root;
    this.map = map;
    this.notify = notify;
    this.vin = null;
    this.data = null;
    this.extra = { risk: null, plan: null };
    this.timer = null;
    this.trailPoints = 0;
    root.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.stopPropagation();
        this.close();
      }
    });
  }

  async open(vin, { focus = true } = {}) {
    this.vin = vin;
    this.extra = { risk: null, plan: null };
    clearInterval(this.timer);
    await this.refresh();
    if (this.vin !== vin || !this.data) return;
    this.root.hidden = false;
    this.map.select(this.data.id);
    this.map.centerOn(this.data.id, 14, this.root.offsetWidth + 16);
    if (focus) $('#panel-title', this.root).focus();
    this.loadTrail(vin);
    this.loadPredictive(vin);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  close() {
    clearInterval(this.timer);
    this.vin = null;
    this.data = null;
    this.root.hidden = true;
    this.map.select(null);
    this.map.clearTrail();
    document.dispatchEvent(new CustomEvent('panel-closed'));
  }

  async refresh() {
    const vin = this.vin;
    if (!vin) return;
    try {
      const d = await api(`/api/v1/console/vehicles/${encodeURIComponent(vin)}`);
      if (this.vin !== vin) return;
      this.data = d;
      this.render();
    } catch (e) {
      this.notify(e);
    }
  }

  async loadTrail(vin) {
    const to = new Date();
    const from = new Date(to.getTime() - TRAIL_MINUTES * 60000);
    try {
      const r = await api(`/api/v1/vehicles/${encodeURIComponent(vin)}/telemetry`, {
        params: { from: from.toISOString(), to: to.toISOString(), bucket: TRAIL_BUCKET },
      });
      if (this.vin !== vin) return;
      const pts = r.items.filter((p) => p.lat !== null && p.lon !== null).map((p) => [p.lat, p.lon]);
      this.trailPoints = pts.length;
      this.map.showTrail(pts);
      this.render();
    } catch (e) {
      this.notify(e);
    }
  }

  /** Predictive maintenance (another team's routes): shown only when they answer. */
  async loadPredictive(vin) {
    const get = async (path, params) => {
      try {
        return await api(path, { params, allow404: true });
      } catch {
        return null;
      }
    };
    const [risk, plan] = await Promise.all([
      get(`/api/v1/vehicles/${encodeURIComponent(vin)}/health`),
      get('/api/v1/maintenance/plans', { vin }),
    ]);
    if (this.vin !== vin) return;
    this.extra = { risk, plan };
    this.render();
  }

  relabel() {
    if (this.data && !this.root.hidden) this.render();
  }

  render() {
    const d = this.data;
    if (!d) return;
    const s = d.state;
    const body = clear($('#panel-body', this.root));
    $('#panel-title', this.root).textContent = `${d.plate} · ${d.make} ${d.model}`;
    this.root.setAttribute('aria-label', t('panel_label', { plate: d.plate }));
    const unit = (key, v, digits = 0) => (v === null || v === undefined ? t('unknown') : t(key, { v: fmtNum(v, digits) }));
    const row = (label, value, cls) => [h('dt', {}, label), h('dd', { class: cls }, value)];
    put(body,
      h('p', { class: 'badges' },
        h('span', { class: `badge vs-${d.status}` }, tv('vs', d.status)),
        h('span', { class: `badge health-${s.health}` }, `${t('panel_health')}: ${tv('health', s.health)}`),
        h('span', { class: `badge ${s.online ? 'on' : 'off'}` }, s.online ? t('online') : t('offline')),
        h('span', { class: 'vin' }, d.vin)),
      h('h3', {}, t('panel_live')),
      h('dl', { class: 'kv' },
        row(t('panel_speed'), unit('unit_kmh', s.speed_kmh)),
        row(t('panel_fuel'), unit('unit_pct', s.fuel_pct)),
        row(t('panel_battery'), unit('unit_v', s.battery_v, 1)),
        row(t('panel_coolant'), unit('unit_c', s.coolant_c), s.coolant_c >= 105 ? 'bad' : ''),
        row(t('panel_odometer'), unit('unit_km', s.odometer_km)),
        row(t('panel_rpm'), unit('unit_rpm', s.rpm)),
        row(t('panel_ignition'), s.ignition === null ? t('unknown') : s.ignition ? t('on') : t('off')),
        row(t('panel_rentable'), s.rentable === null ? t('unknown') : s.rentable ? t('yes') : t('no')),
        row(t('panel_last_seen'), fmtDateTime(s.last_seen))),
      h('h3', {}, t('panel_dtc')),
      s.dtc.length
        ? h('ul', { class: 'dtc' }, s.dtc.map((c) => h('li', { class: `sev-${c.severity}` }, h('strong', {}, c.code), ' ', c.description)))
        : h('p', { class: 'muted' }, t('panel_no_dtc')),
      h('h3', {}, t('panel_order')),
      this.order(d.order),
      h('h3', {}, t('panel_alerts')),
      d.alerts.length
        ? h('ul', { class: 'mini-alerts' }, d.alerts.map((a) => h('li', { class: `sev-${a.severity}` },
          h('span', { class: `sev-badge sev-${a.severity}` }, tv('sev', a.severity)), ' ', tv('kind', a.kind), ' · ',
          tv('status', a.status), ' · ', h('time', { datetime: a.opened_at }, fmtDateTime(a.opened_at)))))
        : h('p', { class: 'muted' }, t('panel_no_alerts')),
      h('h3', {}, t('panel_service')),
      h('dl', { class: 'kv' },
        row(t('panel_next_service'), `${fmtDateTime(d.service.next_service_at)} / ${t('unit_km', { v: fmtNum(d.service.next_service_km) })}`),
        d.service.km_remaining > 0 ? row('', t('panel_km_left', { km: fmtNum(d.service.km_remaining) })) : null,
        d.service.due_now ? row('', t('panel_service_due'), 'bad') : null),
      this.predictive(),
      h('p', { class: 'muted trail-note' }, this.trailPoints ? t('panel_trail', { n: this.trailPoints }) : t('panel_no_trail')),
    );
  }

  order(o) {
    if (!o) return h('p', { class: 'muted' }, t('panel_no_order'));
    const c = o.customer;
    return h('dl', { class: 'kv order' },
      h('dt', {}, t('panel_order_line', { id: o.id, status: tv('os', o.status) })), h('dd', {}),
      h('dt', {}, t('panel_pickup')), h('dd', {}, `${o.pickup_station} · ${fmtDateTime(o.picked_up_at || o.pickup_at)}`),
      h('dt', {}, t('panel_return')), h('dd', {}, `${o.return_station} · ${fmtDateTime(o.return_at)}`),
      h('dt', {}, t('panel_customer')), h('dd', { class: 'customer' }, c.name),
      h('dt', {}, t('panel_phone')), h('dd', {}, c.phone ? h('a', { href: `tel:${c.phone.replace(/[^+\d]/g, '')}` }, c.phone) : t('unknown')),
      h('dt', {}, t('panel_email')), h('dd', {}, c.email ? h('a', { href: `mailto:${c.email}` }, c.email) : t('unknown')));
  }

  /** Whatever shape the predictive routes answer with: a risk figure when we can find one, then scalars. */
  predictive() {
    const { risk, plan } = this.extra;
    if (!risk && !plan) return null;
    const out = h('section', { class: 'predictive' });
    if (risk) {
      const score = ['risk', 'risk_score', 'failure_probability', 'probability', 'score'].map((k) => risk[k]).find((v) => typeof v === 'number');
      put(out, h('h3', {}, t('panel_risk')));
      if (score !== undefined) put(out, h('p', { class: 'risk' }, t('unit_pct', { v: fmtNum(score <= 1 ? score * 100 : score) })));
      put(out, scalars(risk));
    }
    const items = plan && (Array.isArray(plan) ? plan : plan.items);
    if (items && items.length) {
      put(out, h('h3', {}, t('panel_plan')), h('ul', {}, items.slice(0, 5).map((p) => h('li', {}, scalarLine(p)))));
    }
    return out;
  }
}

function scalars(obj) {
  const dl = h('dl', { class: 'kv' });
  for (const [k, v] of Object.entries(obj)) {
    if (v === null || typeof v === 'object') continue;
    dl.append(h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, typeof v === 'number' ? fmtNum(v, 2) : /\d{4}-\d\d-\d\dT/.test(v) ? fmtTime(v) : String(v)));
  }
  return dl;
}

function scalarLine(obj) {
  return Object.entries(obj).filter(([, v]) => v !== null && typeof v !== 'object').slice(0, 4).map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v}`).join(' · ');
}
