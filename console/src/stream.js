// The live stream: WebSocket /api/v1/stream, authenticated by its first message {"type":"auth","token":...}
// (tokens never go into the URL), reconnected with capped exponential back-off. After a reconnect the caller
// reloads what it shows, since events sent while it was away are not replayed.
const BACKOFF_MS = [500, 1000, 2000, 5000, 10000];
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_FORBIDDEN = 4403;

export class Stream {
  constructor({ token, onMessage, onState, onAuthFailed }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onAuthFailed = onAuthFailed;
    this.attempt = 0;
    this.closed = false;
    this.everLive = false;
    this.ws = null;
    this.timer = null;
  }

  start() {
    this.closed = false;
    this.connect();
  }

  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/stream`);
    this.ws = ws;
    this.onState('connecting');
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }));
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'hello') {
        const reconnected = this.everLive;
        this.everLive = true;
        this.attempt = 0;
        this.onState('live', { reconnected });
        return;
      }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (ev.code === CLOSE_UNAUTHORIZED || ev.code === CLOSE_FORBIDDEN) {
        this.closed = true;
        this.onAuthFailed(ev.code);
        return;
      }
      if (this.closed) return;
      this.onState('offline');
      const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
}
