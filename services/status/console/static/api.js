// The status API as the console uses it (docs/contract.md section 7): the bearer token held for
// this browser session only, the {success, data | error} envelope, and the Server-Sent Events
// of a sync read with fetch() (EventSource cannot send an Authorization header, and the token
// must never go in a URL).

const TOKEN_KEY = 'woosync.console.token';
let heldToken = null;

export function token() {
  if (heldToken === null) {
    try { heldToken = sessionStorage.getItem(TOKEN_KEY); } catch { /* storage disabled: memory only */ }
  }
  return heldToken;
}

export function holdToken(value) {
  heldToken = value;
  try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* memory only */ }
}

export function forgetToken() {
  heldToken = null;
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing held there */ }
}

export class ApiError extends Error {
  constructor(status, message, details = null, retryAfterS = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.details = details;
    this.retryAfterS = retryAfterS;
  }
}

// Any 401 means the token is no longer good: the console forgets it and asks again.
export const UNAUTHORIZED_EVENT = 'woosync:unauthorized';

async function errorOf(response) {
  let message = `the status service answered ${response.status}`;
  let details = null;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
    if (body && Array.isArray(body.details)) details = body.details;
  } catch { /* not the envelope: keep the status line */ }
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  const error = new ApiError(response.status, message, details, Number.isFinite(retryAfter) ? retryAfter : null);
  if (response.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: message }));
  return error;
}

function headers(extra = {}, bearer = token()) {
  return { Authorization: `Bearer ${bearer}`, ...extra };
}

export async function request(method, path, { body, signal, bearer } = {}) {
  const init = { method, signal, cache: 'no-store', credentials: 'omit', headers: headers({ Accept: 'application/json' }, bearer ?? token()) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  const envelope = await response.json();
  return envelope.data;
}

export const get = (path, options) => request('GET', path, options);
export const post = (path, body, options) => request('POST', path, { ...options, body });

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// ------------------------------------------------------------------------------ event streams

// Feeds text to a parser of the text/event-stream format (the WHATWG rules the console needs:
// event, data, comments, any line ending) and calls onEvent({event, data}) per complete event.
export function eventStreamParser(onEvent) {
  let pending = '';
  let eventName = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent({ event: eventName || 'message', data: data.join('\n') });
      eventName = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return; // a keep-alive comment
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') eventName = value;
    else if (field === 'data') data.push(value);
  };
  return (chunk) => {
    let text = pending + chunk;
    // A chunk may end between the \r and \n of one line ending: keep the \r for the next one.
    let held = '';
    if (text.endsWith('\r')) { held = '\r'; text = text.slice(0, -1); }
    const lines = text.split(/\r\n|\r|\n/);
    pending = lines.pop() + held;
    lines.forEach(line);
  };
}

// Reads one event stream until it ends (resolves), fails (rejects) or `signal` aborts it.
export async function readEventStream(path, { signal, onEvent }) {
  const response = await fetch(path, {
    signal, cache: 'no-store', credentials: 'omit', headers: headers({ Accept: 'text/event-stream' }),
  });
  if (!response.ok) throw await errorOf(response);
  const feed = eventStreamParser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      feed(value);
    }
  } finally {
    reader.releaseLock();
  }
}
