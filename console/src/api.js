// HTTP to the API (same origin): the bearer token lives in sessionStorage, so a closed tab forgets it.
const TOKEN_KEY = 'fleet.console.token';

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch('/api/v1/auth/token', { method: 'POST', body });
  if (!r.ok) throw new ApiError(r.status, 'login failed');
  const { access_token: token } = await r.json();
  sessionStorage.setItem(TOKEN_KEY, token);
  return token;
}

/** JSON request with the bearer token; throws ApiError (401 also signs the console out). */
export async function api(path, { method = 'GET', body, params, allow404 = false } = {}) {
  let url = path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === '') continue;
      for (const item of Array.isArray(v) ? v : [v]) q.append(k, item);
    }
    const qs = q.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = { Authorization: `Bearer ${getToken()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 404 && allow404) return null;
  if (!r.ok) {
    let message = r.statusText;
    let code;
    try {
      const e = (await r.json()).error || {};
      message = e.message || message;
      code = e.code;
    } catch {
      /* not JSON */
    }
    if (r.status === 401) onUnauthorized();
    throw new ApiError(r.status, message, code);
  }
  return r.status === 204 ? null : r.json();
}
