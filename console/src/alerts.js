// The alert feed: newest first, severity colours, acknowledge / resolve with a note, filters (kind, severity,
// station, status), and a sound plus a banner for new critical alerts. The list is loaded over REST and kept
// current by the WebSocket; whatever any dispatcher does arrives through the same stream.
import { api, ApiError } from './api.js';
import { $, clear, h } from './dom.js';
import { fmtDateTime, fmtTime, getLang, t, tv } from './i18n.js';

export const KINDS = [
  'crash', 'harsh_brake', 'harsh_accel', 'harsh_turn', 'overheating', 'low_battery', 'charging_fault', 'dtc',
  'low_fuel', 'overspeed', 'geofence_exit', 'geofence_enter', 'unauthorized_movement', 'tow', 'device_offline',
  'gps_jump',
];
export const SEVERITIES = ['critical', 'high', 'medium', 'low'];
const STATUS_FILTERS = { active: ['open', 'acknowledged'], open: ['open'], acknowledged: ['acknowledged'], resolved: ['resolved'], all: [] };
const PAGE = 200;

export class AlertFeed {
  constructor({ list, filters, count, banner, stationOf, onOpenVehicle, isAdmin, notify }) {
    this.list = list;
    this.filtersEl = filters;
    this.countEl = count;
    this.banner = banner;
    this.stationOf = stationOf;
    this.onOpenVehicle = onOpenVehicle;
    this.isAdmin = isAdmin;
    this.notify = notify;
    this.alerts = new Map();
    this.nodes = new Map(); // alert id -> {sig, el}
    this.total = 0;
    this.filter = { status: 'active', severity: '', kind: '', station: '' };
    this.muted = false;
    this.audio = null;
    this.beeps = 0;
    this.lastCritical = null;
    this.openResolve = null;
    this.filtersEl.addEventListener('change', () => {
      this.readFilters();
      this.reload();
    });
  }

  buildFilters(stations) {
    const f = this.filtersEl;
    const sel = (name, options) => {
      const id = `filter-${name}`;
      const s = h('select', { id, name }, options.map(([value, label]) => h('option', { value }, label)));
      s.value = this.filter[name];
      return h('div', { class: 'field' }, h('label', { for: id }, t(`filter_${name}`)), s);
    };
    clear(f).append(
      sel('status', [['active', t('filter_active')], ['open', tv('status', 'open')], ['acknowledged', tv('status', 'acknowledged')], ['resolved', tv('status', 'resolved')], ['all', t('filter_all')]]),
      sel('severity', [['', t('filter_all')], ...SEVERITIES.map((s) => [s, tv('sev', s)])]),
      sel('kind', [['', t('filter_all')], ...KINDS.map((k) => [k, tv('kind', k)])]),
      sel('station', [['', t('filter_all')], ...stations.map((s) => [s.code, `${s.code} · ${s.name}`])]),
    );
  }

  readFilters() {
    for (const name of Object.keys(this.filter)) this.filter[name] = this.filtersEl.elements[name].value;
  }

  matches(a) {
    const f = this.filter;
    const statuses = STATUS_FILTERS[f.status];
    if (statuses.length && !statuses.includes(a.status)) return false;
    if (f.severity && a.severity !== f.severity) return false;
    if (f.kind && a.kind !== f.kind) return false;
    if (f.station && this.stationOf(a.vehicle_id) !== f.station) return false;
    return true;
  }

  async reload() {
    const f = this.filter;
    const page = await api('/api/v1/alerts', {
      params: { status: STATUS_FILTERS[f.status].join(','), severity: f.severity, kind: f.kind, limit: PAGE },
    });
    this.alerts.clear();
    for (const a of page.items) this.alerts.set(a.id, a);
    this.total = page.total;
    this.render();
  }

  /** A message from the stream: {"type":"alert","event":"opened|repeated|acknowledged|resolved","alert":{...}}. */
  onEvent(msg) {
    const a = msg.alert;
    const known = this.alerts.has(a.id);
    const prev = this.alerts.get(a.id);
    if (prev && prev.evidence && !a.evidence) a.evidence = prev.evidence;
    if (this.matches(a)) {
      if (!known) this.total += 1;
      this.alerts.set(a.id, a);
    } else if (known) {
      this.alerts.delete(a.id);
      this.total = Math.max(0, this.total - 1);
    }
    if (msg.event === 'opened' && a.severity === 'critical') this.critical(a);
    this.render();
  }

  sorted() {
    return [...this.alerts.values()].sort((x, y) => (x.opened_at < y.opened_at ? 1 : x.opened_at > y.opened_at ? -1 : y.id - x.id));
  }

  openCount() {
    let n = 0;
    for (const a of this.alerts.values()) if (a.status !== 'resolved') n += 1;
    return n;
  }

  /** Keyed update: an alert's element is rebuilt only when it changed, so focus and clicks survive the stream. */
  render() {
    const items = this.sorted();
    const list = this.list;
    const wanted = items.length ? items.map((a) => this.node(a)) : [this.emptyNode()];
    let ref = list.firstChild;
    for (const el of wanted) {
      if (el === ref) ref = ref.nextSibling;
      else list.insertBefore(el, ref);
    }
    while (ref) {
      const next = ref.nextSibling;
      ref.remove();
      ref = next;
    }
    const live = new Set(items.map((a) => a.id));
    for (const id of this.nodes.keys()) if (!live.has(id)) this.nodes.delete(id);
    this.countEl.textContent = t('alerts_count', { shown: items.length, total: this.total });
  }

  node(a) {
    const sig = [a.status, a.occurrences, a.updated_at, a.severity, this.openResolve === a.id, getLang(), this.isAdmin()].join('|');
    const cached = this.nodes.get(a.id);
    if (cached && cached.sig === sig) return cached.el;
    const el = this.item(a);
    if (cached && cached.el.contains(document.activeElement)) {
      const action = document.activeElement.dataset.action;
      queueMicrotask(() => (el.querySelector(`[data-action="${action}"]`) || el.querySelector('button'))?.focus());
    }
    this.nodes.set(a.id, { sig, el });
    return el;
  }

  emptyNode() {
    if (!this.empty || this.emptyLang !== getLang()) {
      this.empty = h('li', { class: 'empty' }, t('alerts_empty'));
      this.emptyLang = getLang();
    }
    return this.empty;
  }

  item(a) {
    const resolving = this.openResolve === a.id;
    const who = a.status === 'resolved' && a.resolved_by ? t('resolved_by', { user: a.resolved_by })
      : a.acknowledged_by ? t('acked_by', { user: a.acknowledged_by }) : '';
    const actions = h('div', { class: 'alert-actions' });
    if (a.status === 'open') actions.append(h('button', { type: 'button', dataset: { action: 'ack' }, onclick: () => this.ack(a.id) }, t('ack')));
    if (a.status !== 'resolved' && !resolving) {
      actions.append(h('button', { type: 'button', dataset: { action: 'resolve' }, onclick: () => this.startResolve(a.id) }, t('resolve')));
    }
    if (this.isAdmin()) {
      actions.append(h('button', { type: 'button', class: 'admin-only', dataset: { action: 'audit' }, onclick: () => this.audit(a.id) }, t('audit_trail')));
    }
    const li = h(
      'li',
      { class: `alert sev-${a.severity} status-${a.status}`, dataset: { id: a.id, kind: a.kind, severity: a.severity, status: a.status } },
      h('div', { class: 'alert-head' },
        h('span', { class: `sev-badge sev-${a.severity}` }, tv('sev', a.severity)),
        h('span', { class: 'kind' }, tv('kind', a.kind)),
        h('time', { datetime: a.opened_at, title: fmtDateTime(a.opened_at) }, fmtTime(a.opened_at))),
      h('div', { class: 'alert-body' },
        h('button', { type: 'button', class: 'link plate', dataset: { action: 'open' }, 'aria-label': t('open_vehicle', { plate: a.plate }), onclick: () => this.onOpenVehicle(a.vehicle_id, a.vin) }, a.plate),
        ' ', h('span', { class: 'msg' }, a.message)),
      h('div', { class: 'alert-meta' },
        h('span', { class: 'status' }, tv('status', a.status)),
        a.occurrences > 1 ? h('span', {}, t('occurrences', { n: a.occurrences })) : null,
        who ? h('span', {}, who) : null,
        a.resolution_note ? h('span', { class: 'note' }, `“${a.resolution_note}”`) : null),
      actions,
    );
    if (resolving) li.append(this.resolveForm(a));
    return li;
  }

  resolveForm(a) {
    const id = `note-${a.id}`;
    const note = h('textarea', { id, name: 'note', rows: 2, maxlength: 2000 });
    const form = h('form', { class: 'resolve-form' },
      h('label', { for: id }, t('resolve_note')), note,
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary', dataset: { action: 'confirm-resolve' } }, t('resolve_confirm')),
        h('button', { type: 'button', dataset: { action: 'cancel' }, onclick: () => { this.openResolve = null; this.render(); } }, t('cancel'))));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.resolve(a.id, note.value);
    });
    form.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.stopPropagation();
        this.openResolve = null;
        this.render();
      }
    });
    queueMicrotask(() => note.focus());
    return form;
  }

  startResolve(id) {
    this.openResolve = id;
    this.render();
  }

  async ack(id) {
    try {
      this.apply(await api(`/api/v1/alerts/${id}/ack`, { method: 'POST' }));
    } catch (e) {
      this.notify(e);
    }
  }

  async resolve(id, note) {
    try {
      const a = await api(`/api/v1/alerts/${id}/resolve`, { method: 'POST', body: { note } });
      this.openResolve = null;
      this.apply(a);
    } catch (e) {
      this.notify(e);
    }
  }

  apply(a) {
    this.onEvent({ type: 'alert', event: a.status === 'resolved' ? 'resolved' : 'acknowledged', alert: a });
  }

  /** Admin only (GET /api/v1/audit): who did what to this alert. A dispatcher gets the API's 403. */
  async audit(id) {
    const dlg = $('#audit-dialog');
    const body = clear($('#audit-body'));
    $('#audit-title').textContent = t('audit_title', { id });
    try {
      const rows = await api('/api/v1/audit', { params: { entity: 'alert', entity_id: id } });
      if (!rows.length) body.append(h('p', {}, t('audit_empty')));
      const ul = h('ul', { class: 'audit' });
      for (const r of rows) ul.append(h('li', {}, `${fmtDateTime(r.at || r.created_at || r.ts)} · ${r.actor} · ${r.action}`));
      body.append(ul);
    } catch (e) {
      body.append(h('p', { class: 'error', role: 'alert' }, e instanceof ApiError && e.status === 403 ? t('forbidden') : t('error_generic', { message: e.message })));
    }
    if (!dlg.open) dlg.showModal();
  }

  critical(a) {
    this.lastCritical = a;
    const b = this.banner;
    $('#critical-text', b).textContent = t('critical_banner', { kind: tv('kind', a.kind), plate: a.plate });
    b.hidden = false;
    b.classList.remove('flash');
    void b.offsetWidth; // restart the animation
    b.classList.add('flash');
    document.body.dataset.criticalAlerts = String(Number(document.body.dataset.criticalAlerts || 0) + 1);
    this.beep();
  }

  relabelBanner() {
    if (this.lastCritical && !this.banner.hidden) {
      $('#critical-text', this.banner).textContent = t('critical_banner', { kind: tv('kind', this.lastCritical.kind), plate: this.lastCritical.plate });
    }
  }

  /** Two short 880 Hz tones through Web Audio (no sound file to load). */
  beep() {
    if (this.muted) return;
    try {
      this.audio = this.audio || new AudioContext();
      const ctx = this.audio;
      if (ctx.state === 'suspended') ctx.resume();
      for (const start of [0, 0.35]) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, ctx.currentTime + start);
        gain.gain.exponentialRampToValueAtTime(0.3, ctx.currentTime + start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + start + 0.25);
        osc.connect(gain).connect(ctx.destination);
        osc.start(ctx.currentTime + start);
        osc.stop(ctx.currentTime + start + 0.3);
      }
      this.beeps += 1;
      document.body.dataset.beeps = String(this.beeps);
    } catch {
      /* no audio device: the banner still shows */
    }
  }
}
