// The organisation's syncs and previews, newest first: kind, order strategy, state, live
// progress (polled), rates and ETA, with a filter by state and by text on the page shown, and
// pages of PAGE_SIZE.

import { get, query } from '../api.js';
import {
  QUEUE_STATES, abortableSleep, count, duration, h, isAbort, kindOf, progressBar, rate, replace, stateBadge, strategy,
  table, when,
} from '../dom.js';

const PAGE_SIZE = 25;
const REFRESH_MS = 3000;

export async function show(main, { signal }) {
  let offset = 0;
  let lastPage = null;
  let shownJson = '';
  const stateFilter = h('select', { id: 'state-filter' },
    h('option', { value: '', text: 'All states' }),
    QUEUE_STATES.map((state) => h('option', { value: state, text: state })));
  const textFilter = h('input', { id: 'text-filter', type: 'search', autocomplete: 'off', placeholder: 'name, store or id' });
  const listing = h('div', { class: 'listing', 'aria-live': 'off' });
  const summary = h('p', { class: 'muted', id: 'syncs-summary' });
  const newer = h('button', { type: 'button', class: 'secondary', text: 'Newer', disabled: true });
  const older = h('button', { type: 'button', class: 'secondary', text: 'Older', disabled: true });
  const problem = h('p', { class: 'notice error', role: 'alert', hidden: true });

  replace(main,
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1', text: 'Syncs' }),
      h('a', { class: 'button primary', href: '#/new', text: 'Start a sync' })),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter syncs' },
      h('div', { class: 'field' }, h('label', { for: 'state-filter', text: 'State' }), stateFilter),
      h('div', { class: 'field grow' }, h('label', { for: 'text-filter', text: 'Search this page' }), textFilter)),
    problem, summary, listing,
    h('nav', { class: 'pager', 'aria-label': 'Pages of syncs' }, newer, older));

  const draw = () => {
    if (!lastPage) return;
    const wanted = stateFilter.value;
    const text = textFilter.value.trim().toLowerCase();
    const queues = lastPage.items.filter((queue) => (!wanted || queue.state === wanted)
      && (!text || [queue.queue_name, queue.store_url, queue.id].some((v) => String(v ?? '').toLowerCase().includes(text))));
    const json = JSON.stringify([queues, offset]);
    if (json === shownJson) return; // unchanged: leave the rows (and any focus in them) alone
    shownJson = json;
    replace(listing, table([
      { title: 'Sync', cell: (q) => [h('a', { href: `#/syncs/${q.id}`, text: q.queue_name }), h('span', { class: 'id', text: q.id })] },
      { title: 'Store', cell: (q) => h('span', { class: 'wrap', text: q.store_url ?? '–' }) },
      { title: 'Kind', cell: (q) => h('span', { class: `kind kind-${kindOf(q) === 'preview' ? 'preview' : 'sync'}`, text: kindOf(q), dataset: { field: 'kind' } }) },
      { title: 'Strategy', cell: (q) => h('span', { text: strategy(q), dataset: { field: 'strategy' } }) },
      { title: 'State', cell: (q) => stateBadge(q.state) },
      { title: 'Progress', cell: (q) => progressBar(q, `Progress of ${q.queue_name}`) },
      { title: 'Done', className: 'number', cell: (q) => count(q.done_count) },
      { title: 'Failed', className: 'number', cell: (q) => count(q.failed_count) },
      { title: 'Total', className: 'number', cell: (q) => count(q.total_count) },
      { title: 'Rate', className: 'number', cell: (q) => rate(q.items_per_min) },
      { title: 'ETA', className: 'number', cell: (q) => duration(q.eta_seconds) },
      { title: 'Created', cell: (q) => when(q.created_at) },
    ], queues.map((q) => ({ value: q, dataset: { queueId: q.id } })), {
      caption: 'Syncs of your organisation',
      empty: lastPage.items.length ? 'No sync on this page matches the filter.' : 'No syncs yet. Start one with "Start a sync".',
    }));
    const first = lastPage.items.length ? offset + 1 : 0;
    summary.textContent = `Syncs ${count(first)}–${count(offset + lastPage.items.length)}${lastPage.next_offset === null ? '' : ' (more on older pages)'}`;
    newer.disabled = offset === 0;
    older.disabled = lastPage.next_offset === null;
  };

  const load = async () => {
    lastPage = await get(`/api/v1/sync/queues${query({ limit: PAGE_SIZE, offset })}`, { signal });
    problem.hidden = true;
    draw();
  };

  stateFilter.addEventListener('change', draw);
  textFilter.addEventListener('input', draw);
  newer.addEventListener('click', () => { offset = Math.max(0, offset - PAGE_SIZE); load().catch(report); });
  older.addEventListener('click', () => { offset += PAGE_SIZE; load().catch(report); });
  function report(error) {
    if (isAbort(error)) return;
    problem.hidden = false;
    problem.textContent = `Could not read the syncs: ${error.message}`;
  }

  // Live progress: the page is read again every few seconds while it is shown.
  while (!signal.aborted) {
    try {
      await load();
    } catch (error) {
      report(error);
    }
    await abortableSleep(REFRESH_MS, signal);
  }
}
