// Building the page: every text goes in with textContent or as a text node, never as markup
// (customer data, error messages and store addresses come from stores and are untrusted).

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name === 'text') element.textContent = String(value);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'style' || name.startsWith('on')) throw new Error(`h(): ${name} is not allowed (strict CSP)`);
    else if (typeof value === 'boolean' || typeof value === 'number') element[name] = value;
    else element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

export function announce(text) {
  const announcer = document.getElementById('announcer');
  announcer.textContent = '';
  // A new text node after a tick, so that screen readers read a repeated message again.
  setTimeout(() => { announcer.textContent = text; }, 50);
}

// ------------------------------------------------------------------------------ formatting

const NUMBER = new Intl.NumberFormat('en');
const DATE_TIME = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });

export const count = (n) => (n === null || n === undefined ? '–' : NUMBER.format(n));

export function when(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : DATE_TIME.format(date);
}

export function rate(itemsPerMin) {
  return itemsPerMin === null || itemsPerMin === undefined ? '–' : `${NUMBER.format(Math.round(itemsPerMin))}/min`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export const QUEUE_STATES = ['draft', 'processing', 'partial', 'done', 'failed', 'cancelled'];
export const LINE_STATES = ['draft', 'processing', 'done', 'failed', 'cancelled'];
export const TERMINAL_QUEUE_STATES = new Set(['done', 'failed', 'partial', 'cancelled']);

export function stateBadge(state) {
  const known = QUEUE_STATES.includes(state) ? state : 'unknown';
  return h('span', { class: `badge state-${known}`, text: state, dataset: { field: 'state' } });
}

export function progressBar(queue, label) {
  return h('span', { class: 'progress' },
    h('progress', { max: 100, value: queue.progress ?? 0, 'aria-label': label }),
    h('span', { class: 'progress-text', text: `${queue.progress ?? 0}%`, dataset: { field: 'progress' } }));
}

// A <table> that becomes a list of cards on narrow screens (each cell shows its column's name).
export function table(columns, rows, { caption, empty = 'Nothing here.', className = '' } = {}) {
  const head = h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col', text: column.title }))));
  const body = h('tbody');
  for (const row of rows) {
    body.append(h('tr', { dataset: row.dataset ?? {} },
      columns.map((column) => h('td', { 'data-label': column.title, class: column.className ?? null }, column.cell(row.value))),
    ));
  }
  if (!rows.length) body.append(h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty', text: empty })));
  return h('div', { class: 'table-wrap' },
    h('table', { class: `cards ${className}` }, caption ? h('caption', { text: caption }) : null, head, body));
}

export function abortableSleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export const isAbort = (error) => error?.name === 'AbortError';

// A JSON value from the store or the local row (a conflict's, a preview's change) as one line
// of text: strings as they are, nothing as "(empty)", anything else as its JSON.
export function valueText(value) {
  if (value === null || value === undefined || value === '') return '(empty)';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// How a sync fetches orders (options.orders: auto, bulk or per_customer), with its mode when
// it is not a full sync (an incremental sweep).
export function strategy(queue) {
  const options = queue.options ?? {};
  const orders = options.orders ?? '–';
  return options.mode && options.mode !== 'full' ? `${orders} (${options.mode})` : orders;
}

export const kindOf = (queue) => queue.kind ?? 'sync';
