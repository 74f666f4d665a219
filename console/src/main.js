// The console's shell: sign-in, the header (live figures, search, language, user), the map, the side panels
// (alert feed, operations board), the vehicle panel, the stream and the once-a-second positions poll.
import './styles.css';
import { AlertFeed } from './alerts.js';
import { api, ApiError, clearToken, getToken, login, setUnauthorizedHandler } from './api.js';
import { Board } from './board.js';
import { $ } from './dom.js';
import { applyI18n, onLangChange, setLang, t } from './i18n.js';
import { FleetMap } from './map.js';
import { VehiclePanel } from './panel.js';
import { Search } from './search.js';
import { Stream } from './stream.js';

const POLL_MS = 1000;
const CONSOLE_ROLES = ['dispatcher', 'admin'];
const MOVING_KMH = 3;

const state = {
  user: null,
  cursor: null,
  pollTimer: null,
  stream: null,
  running: false,
  stats: { polls: 0, vehicles: 0, lastPollMs: 0, lastApplyMs: 0, lastBatch: 0, sampleAgeMs: 0, errors: 0 },
};
let fleetMap;
let feed;
let panel;
let board;

function notify(err) {
  const box = $('#toast');
  box.textContent = err instanceof ApiError && err.status === 403 ? t('forbidden') : t('error_generic', { message: err.message || String(err) });
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function showLogin(messageKey) {
  stop();
  $('#console').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = messageKey ? t(messageKey) : '';
  $('#login-user').focus();
}

function stop() {
  state.running = false;
  clearTimeout(state.pollTimer);
  if (state.stream) state.stream.stop();
  state.stream = null;
  if (board) board.hide();
  if (panel && panel.vin) panel.close();
}

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  $('#login-error').textContent = '';
  try {
    await login(form.elements.username.value, form.elements.password.value);
  } catch {
    $('#login-error').textContent = t('login_failed');
    return;
  }
  form.elements.password.value = '';
  await start();
}

async function start() {
  let me;
  try {
    me = await api('/api/v1/auth/me');
  } catch {
    clearToken();
    showLogin();
    return;
  }
  if (!CONSOLE_ROLES.includes(me.role)) {
    clearToken();
    showLogin('login_role');
    return;
  }
  state.user = me;
  document.body.dataset.role = me.role;
  $('#login').hidden = true;
  $('#console').hidden = false;
  renderUser();
  for (const el of document.querySelectorAll('.admin-only')) el.hidden = me.role !== 'admin';
  if (!fleetMap) setup();
  fleetMap.map.invalidateSize();
  state.running = true;
  state.nextPoll = 0;
  await loadFleet();
  await feed.reload();
  state.stream = new Stream({
    token: getToken(),
    onMessage,
    onState: (s, info) => {
      const el = $('#conn');
      el.dataset.state = s;
      el.textContent = t(s === 'live' ? 'conn_live' : s === 'offline' ? 'conn_offline' : 'conn_connecting');
      if (s === 'live' && info && info.reconnected) feed.reload().catch(notify);
    },
    onAuthFailed: () => { clearToken(); showLogin('session_expired'); },
  });
  state.stream.start();
  poll();
}

function renderUser() {
  if (state.user) $('#user').textContent = t('user_as', { user: state.user.username, role: t(`role_${state.user.role}`) });
}

async function loadFleet() {
  const f = await api('/api/v1/console/fleet');
  state.cursor = f.cursor;
  state.stations = f.stations;
  fleetMap.setPlaces(f.stations, f.geofences);
  fleetMap.setFleet(f.vehicles);
  feed.buildFilters(f.stations);
  updateStats();
}

async function poll() {
  if (!state.running) return;
  const t0 = performance.now();
  try {
    const d = await api('/api/v1/console/positions', { params: { since: state.cursor } });
    const t1 = performance.now();
    state.cursor = d.cursor;
    const unknown = fleetMap.applyPositions(d);
    const now = Date.now();
    let ages = 0;
    let n = 0;
    for (const ts of d.ts) {
      if (ts) {
        ages += now - ts;
        n += 1;
      }
    }
    Object.assign(state.stats, {
      polls: state.stats.polls + 1,
      lastPollMs: t1 - t0,
      lastApplyMs: performance.now() - t1,
      lastBatch: d.id.length,
      sampleAgeMs: n ? ages / n : 0,
    });
    updateStats();
    if (unknown.length) await loadFleet();
  } catch (e) {
    state.stats.errors += 1;
    if (!(e instanceof ApiError && e.status === 401)) notify(e);
  }
  // A fixed cadence (not "1 s after the answer"): a slow answer is made up by the next poll starting sooner, so
  // the page keeps applying one update a second on average; after a long stall it starts a new cadence.
  state.nextPoll = Math.max((state.nextPoll || t0) + POLL_MS, performance.now() - POLL_MS);
  if (state.running) state.pollTimer = setTimeout(poll, Math.max(0, state.nextPoll - performance.now()));
}

function onMessage(msg) {
  if (msg.type === 'alert') {
    feed.onEvent(msg);
    if (panel.data && panel.data.id === msg.alert.vehicle_id) panel.refresh();
  } else if (msg.type === 'vehicle') {
    if (msg.event === 'health') fleetMap.update(msg.vehicle_id, { health: msg.health, open_alerts: msg.open_alerts });
    else if (msg.event === 'online' || msg.event === 'offline') fleetMap.update(msg.vehicle_id, { online: msg.event === 'online' });
  }
  updateStats();
}

function updateStats() {
  let online = 0;
  let moving = 0;
  let alerts = 0;
  for (const v of fleetMap.vehicles.values()) {
    if (v.online) online += 1;
    if (v.online && v.speed >= MOVING_KMH) moving += 1;
    alerts += v.open_alerts || 0;
  }
  state.stats.vehicles = fleetMap.vehicles.size;
  $('#stat-vehicles').textContent = String(fleetMap.vehicles.size);
  $('#stat-online').textContent = String(online);
  $('#stat-moving').textContent = String(moving);
  $('#stat-alerts').textContent = String(alerts);
  document.body.dataset.moving = String(moving);
}

async function openVehicle(id, vin) {
  let v = vin;
  if (!v && id !== null) v = fleetMap.vehicles.get(id)?.vin;
  if (v) await panel.open(v);
}

function selectTab(which) {
  for (const name of ['alerts', 'board']) {
    const on = name === which;
    const tab = $(`#tab-${name}`);
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#pane-${name}`).hidden = !on;
  }
  if (which === 'board') board.show();
  else board.hide();
}

function setup() {
  fleetMap = new FleetMap($('#map'), { onVehicleClick: (id) => openVehicle(id, null) });
  fleetMap.loadBaseMap($('#map').dataset.basemap).catch(notify);
  feed = new AlertFeed({
    list: $('#alerts-list'),
    filters: $('#alert-filters'),
    count: $('#alerts-count'),
    banner: $('#critical-banner'),
    stationOf: (vehicleId) => fleetMap.vehicles.get(vehicleId)?.station,
    onOpenVehicle: openVehicle,
    isAdmin: () => state.user?.role === 'admin',
    notify,
  });
  panel = new VehiclePanel({ root: $('#panel'), map: fleetMap, notify });
  board = new Board({ root: $('#pane-board'), onOpenVehicle: openVehicle, notify });
  new Search({ input: $('#search'), list: $('#search-results'), onVehicle: openVehicle, notify });

  $('#panel-close').addEventListener('click', () => panel.close());
  $('#panel-center').addEventListener('click', () => panel.data && fleetMap.centerOn(panel.data.id, 15, $('#panel').offsetWidth + 16));
  $('#logout').addEventListener('click', () => { clearToken(); showLogin(); });
  $('#critical-show').addEventListener('click', () => {
    const a = feed.lastCritical;
    $('#critical-banner').hidden = true;
    if (a) openVehicle(a.vehicle_id, a.vin);
  });
  $('#critical-dismiss').addEventListener('click', () => { $('#critical-banner').hidden = true; });
  const mute = $('#mute');
  mute.addEventListener('click', () => {
    feed.muted = !feed.muted;
    mute.setAttribute('aria-pressed', String(feed.muted));
    mute.textContent = t(feed.muted ? 'unmute' : 'mute');
  });
  $('#audit-close').addEventListener('click', () => $('#audit-dialog').close());
  for (const name of ['alerts', 'board']) $(`#tab-${name}`).addEventListener('click', () => selectTab(name));
  $('#tabs').addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
      const next = $('#tab-alerts').getAttribute('aria-selected') === 'true' ? 'board' : 'alerts';
      selectTab(next);
      $(`#tab-${next}`).focus();
    }
  });
  document.addEventListener('keydown', (ev) => {
    const typing = ev.target.closest && ev.target.closest('input, textarea, select');
    if (ev.key === '/' && !typing) {
      ev.preventDefault();
      $('#search').focus();
    } else if (ev.key === 'Escape' && !typing) {
      if (!$('#critical-banner').hidden) $('#critical-banner').hidden = true;
      else if (panel.vin) panel.close();
    }
  });
  document.addEventListener('panel-closed', () => $('#map').focus({ preventScroll: true }));
  onLangChange(() => {
    renderUser();
    fleetMap.relabel();
    feed.buildFilters(state.stations || []);
    feed.render();
    feed.relabelBanner();
    panel.relabel();
    board.render();
    const el = $('#conn');
    el.textContent = t(el.dataset.state === 'live' ? 'conn_live' : el.dataset.state === 'offline' ? 'conn_offline' : 'conn_connecting');
    mute.textContent = t(feed.muted ? 'unmute' : 'mute');
  });
  window.fleetConsole = {
    stats: state.stats,
    map: fleetMap,
    feed,
    panel,
    openVehicle,
    openAudit: (id) => feed.audit(id),
  };
}

function boot() {
  applyI18n(document);
  for (const sel of document.querySelectorAll('select.lang-select')) {
    sel.addEventListener('change', () => setLang(sel.value));
  }
  setUnauthorizedHandler(() => { clearToken(); showLogin('session_expired'); });
  $('#login-form').addEventListener('submit', signIn);
  if (getToken()) start();
  else showLogin();
}

boot();
