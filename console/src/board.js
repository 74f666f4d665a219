// The operations board: per station today's pickups and returns, cars available and the balance; the
// relocations that cover every station's pickups; the vehicles blocked by a critical alert or the workshop.
import { api } from './api.js';
import { clear, h, put } from './dom.js';
import { fmtTime, t, tv } from './i18n.js';

const REFRESH_MS = 30000;

export class Board {
  constructor({ root, onOpenVehicle, notify }) {
    this.root = root;
    this.onOpenVehicle = onOpenVehicle;
    this.notify = notify;
    this.data = null;
    this.timer = null;
  }

  show() {
    this.load();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  hide() {
    clearInterval(this.timer);
  }

  async load() {
    try {
      this.data = await api('/api/v1/console/board');
      this.render();
    } catch (e) {
      this.notify(e);
    }
  }

  render() {
    const d = this.data;
    if (!d) return;
    const root = clear(this.root);
    const day = new Intl.DateTimeFormat(document.documentElement.lang, { dateStyle: 'full' }).format(new Date(`${d.day}T12:00:00`));
    put(root,
      h('div', { class: 'board-head' },
        h('h2', { id: 'board-title' }, t('board_title', { day })),
        h('button', { type: 'button', onclick: () => this.load() }, t('board_refresh'))),
      h('table', { class: 'board', 'aria-labelledby': 'board-title' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('board_station')), h('th', { scope: 'col' }, t('board_available')),
          h('th', { scope: 'col' }, t('board_pickups')), h('th', { scope: 'col' }, t('board_returns')),
          h('th', { scope: 'col' }, t('board_balance')))),
        h('tbody', {}, d.stations.map((s) => h('tr', { class: s.balance < 0 ? 'short' : '' },
          h('th', { scope: 'row' }, h('span', { title: s.name }, s.code)),
          h('td', {}, String(s.available)),
          h('td', {}, t('board_open_of', { open: s.pickups_open, total: s.pickups.length })),
          h('td', {}, t('board_open_of', { open: s.returns.filter((r) => !r.done).length, total: s.returns.length })),
          h('td', { class: 'balance' }, s.balance > 0 ? `+${s.balance}` : String(s.balance)))))),
      this.details(d.stations),
      h('h3', {}, t('board_relocate')),
      d.relocations.length
        ? h('ul', { class: 'relocations' }, d.relocations.map((m) => h('li', {}, t('board_relocate_line', { from: m.from_station, to: m.to_station, plates: m.vehicles.join(', ') }))))
        : h('p', { class: 'muted' }, t('board_no_relocate')),
      h('h3', {}, t('board_blocked')),
      d.blocked.length
        ? h('ul', { class: 'blocked' }, d.blocked.map((b) => h('li', {},
          h('button', { type: 'button', class: 'link plate', 'aria-label': t('open_vehicle', { plate: b.plate }), onclick: () => this.onOpenVehicle(b.id, b.vin) }, b.plate),
          ` ${b.station || ''} · `,
          b.reason === 'alert'
            ? t('blocked_alert', { detail: b.detail.split(', ').map((k) => tv('kind', k)).join(', ') })
            : t('blocked_service', { detail: tv('vs', b.detail) }))))
        : h('p', { class: 'muted' }, t('board_no_blocked')),
    );
  }

  details(stations) {
    const busy = stations.filter((s) => s.pickups.length || s.returns.length);
    return busy.map((s) => h('details', { class: 'station-orders' },
      h('summary', {}, t('board_orders_of', { station: `${s.code} · ${s.name}` })),
      this.orders(t('board_pickups'), s.pickups),
      this.orders(t('board_returns'), s.returns)));
  }

  orders(title, list) {
    return [h('h4', {}, title), list.length
      ? h('ul', {}, list.map((o) => h('li', { class: o.done ? 'done' : '' },
        `${fmtTime(o.at)} · #${o.id} · ${o.customer} · ${o.plate || tv('os', o.status)}`, o.done ? ` · ${t('board_done')}` : '')))
      : h('p', { class: 'muted' }, t('board_none'))];
  }
}
