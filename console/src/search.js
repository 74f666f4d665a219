// Search by plate, VIN or customer name: an ARIA combobox with a listbox of results (arrow keys, Enter, Escape).
import { api } from './api.js';
import { clear, h } from './dom.js';
import { t, tv } from './i18n.js';

const DEBOUNCE_MS = 250;

export class Search {
  constructor({ input, list, onVehicle, notify }) {
    this.input = input;
    this.list = list;
    this.onVehicle = onVehicle;
    this.notify = notify;
    this.options = [];
    this.active = -1;
    this.timer = null;
    this.seq = 0;
    input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(), DEBOUNCE_MS);
    });
    input.addEventListener('keydown', (ev) => this.key(ev));
    input.addEventListener('blur', () => setTimeout(() => this.hide(), 150));
  }

  async run() {
    const q = this.input.value.trim();
    if (q.length < 2) return this.hide();
    const seq = ++this.seq;
    try {
      const r = await api('/api/v1/console/search', { params: { q } });
      if (seq === this.seq) this.show(r);
    } catch (e) {
      this.notify(e);
    }
  }

  show(r) {
    const list = clear(this.list);
    this.options = [];
    const add = (label, pick) => {
      const id = `search-opt-${this.options.length}`;
      const li = h('li', { id, role: 'option', 'aria-selected': 'false', onmousedown: (ev) => { ev.preventDefault(); pick(); } }, label);
      this.options.push({ li, pick });
      list.append(li);
    };
    if (r.vehicles.length) list.append(h('li', { role: 'presentation', class: 'group' }, t('search_vehicles')));
    for (const v of r.vehicles) {
      add(`${v.plate} · ${v.make} ${v.model} · ${v.station || ''} · ${tv('vs', v.status)}`, () => this.choose(v.id, v.vin));
    }
    if (r.customers.length) list.append(h('li', { role: 'presentation', class: 'group' }, t('search_customers')));
    for (const c of r.customers) {
      const car = c.plate ? `${c.plate} · ${tv('os', c.order_status)}` : t('search_no_car');
      add(`${c.name} · ${car}`, () => (c.vin ? this.choose(null, c.vin) : null));
    }
    if (!this.options.length) list.append(h('li', { role: 'presentation', class: 'none' }, t('search_none')));
    this.active = -1;
    list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  hide() {
    this.list.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
    this.active = -1;
  }

  choose(id, vin) {
    this.hide();
    this.onVehicle(id, vin);
  }

  move(delta) {
    if (!this.options.length) return;
    if (this.active >= 0) this.options[this.active].li.setAttribute('aria-selected', 'false');
    this.active = (this.active + delta + this.options.length) % this.options.length;
    const { li } = this.options[this.active];
    li.setAttribute('aria-selected', 'true');
    li.scrollIntoView({ block: 'nearest' });
    this.input.setAttribute('aria-activedescendant', li.id);
  }

  key(ev) {
    if (ev.key === 'ArrowDown') {
      ev.preventDefault();
      if (this.list.hidden) this.run();
      else this.move(1);
    } else if (ev.key === 'ArrowUp') {
      ev.preventDefault();
      this.move(-1);
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      const opt = this.options[this.active >= 0 ? this.active : 0];
      if (opt) opt.pick();
    } else if (ev.key === 'Escape') {
      this.hide();
    }
  }
}
