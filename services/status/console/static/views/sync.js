// One sync: its counts by state updated live over the API's event stream, its actions (with a
// confirmation), a preview's report (what a sync would do), its conflicts (fields edited
// locally that the store says otherwise), its lines with their errors (filtered by state,
// searchable, in pages) and its activity log.

import { ApiError, get, query, readEventStream } from '../api.js';
import { QUEUE_ACTIONS, confirmAction } from '../actions.js';
import {
  LINE_STATES, TERMINAL_QUEUE_STATES, abortableSleep, announce, count, duration, h, isAbort, kindOf, progressBar, rate,
  replace, stateBadge, strategy, table, valueText, when,
} from '../dom.js';

const LINES_PAGE = 25;
const LINES_READ = 500; // per request, the API's largest page
const LINES_MAX = 5000; // lines read for one filter: searched and paged here
const ACTIVITY_PAGE = 20;
const CONFLICTS_PAGE = 25;
const COUNTED = [['total', 'Total'], ...LINE_STATES.map((state) => [state, state[0].toUpperCase() + state.slice(1)])];

export async function show(main, { params, signal }) {
  const id = params[0];
  const base = `/api/v1/sync/queues/${encodeURIComponent(id)}`;
  let queue = null;

  // ---------------------------------------------------------------------------- the skeleton
  const title = h('h1', { tabindex: '-1', text: 'Sync' });
  const live = h('span', { class: 'live', id: 'live', text: 'connecting…' });
  const identity = h('p', { class: 'identity' });
  const attention = h('p', { class: 'notice warning', id: 'attention', role: 'alert', hidden: true });
  const overview = h('div', { class: 'overview' });
  const counts = h('dl', { class: 'counts', id: 'counts' });
  const facts = h('dl', { class: 'facts' });
  const actions = h('div', { class: 'actions', id: 'actions' });
  const outcome = h('p', { class: 'notice', id: 'action-outcome', role: 'status', hidden: true });
  const report = previewSection(base, signal);
  const conflicts = conflictsSection(base, signal);
  const lines = linesSection(base, signal);
  const activity = activitySection(base, signal);
  const problem = h('p', { class: 'notice error', role: 'alert', hidden: true });

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/', text: '← All syncs' })),
    h('div', { class: 'page-head' }, title, live),
    identity, problem, attention, overview, counts, facts,
    h('section', { 'aria-labelledby': 'actions-title' }, h('h2', { id: 'actions-title', text: 'Actions' }), actions, outcome),
    report.section, conflicts.section, lines.section, activity.section);

  const draw = (next) => {
    const previous = queue;
    queue = next;
    title.textContent = queue.queue_name;
    document.title = `${queue.queue_name} · woosync console`;
    replace(identity, h('span', { class: 'id', text: queue.id }), ' · ', h('span', { class: 'wrap', text: queue.store_url ?? '' }));
    attention.hidden = !queue.is_action_required && !queue.error_message;
    attention.textContent = queue.error_message ? `Action required: ${queue.error_message}`
      : queue.failed_count ? 'Action required: some lines failed. Their errors are listed below; retry them once the cause is fixed.'
        : 'Action required.';
    replace(overview, stateBadge(queue.state), progressBar(queue, 'Progress'));
    replace(counts, COUNTED.map(([state, label]) => h('div', {},
      h('dt', { text: label }), h('dd', { text: count(queue[`${state}_count`]), dataset: { count: state } }))));
    replace(facts,
      fact('Kind', kindOf(queue)), fact('Order strategy', strategy(queue)),
      fact('Conflict policy', queue.options?.conflict_policy ?? 'the organisation\'s'),
      fact('Rate', rate(queue.items_per_min)), fact('ETA', duration(queue.eta_seconds)),
      fact('Customers listed', queue.enumeration_done ? 'all' : 'still listing'),
      fact('Created', when(queue.created_at)), fact('Started', when(queue.started_at)),
      fact('Finished', when(queue.finished_at)), queue.cancelled_at ? fact('Cancelled', when(queue.cancelled_at)) : null,
      queue.idempotency_key ? fact('Idempotency key', queue.idempotency_key) : null);
    drawActions();
    if (previous && previous.state !== queue.state) announce(`The sync is now ${queue.state}.`);
    const changed = !previous || LINE_STATES.some((state) => previous[`${state}_count`] !== queue[`${state}_count`])
      || previous.state !== queue.state;
    if (changed) {
      lines.refresh(queue);
      activity.refresh();
    }
    const conflictsChanged = !previous || previous.conflict_count !== queue.conflict_count;
    if (conflictsChanged) conflicts.refresh(queue);
    if (kindOf(queue) === 'preview' && (changed || conflictsChanged)) report.refresh();
  };

  const drawActions = () => {
    const available = QUEUE_ACTIONS.filter((action) => action.applies(queue));
    if (!available.length) {
      replace(actions, h('p', { class: 'muted', text: 'Nothing to do: no failed lines to retry and the sync has ended.' }));
      return;
    }
    replace(actions, available.map((action) => h('button', {
      type: 'button', class: action.tone, text: action.label, dataset: { action: action.name },
      onclick: (event) => act(action, event.currentTarget),
    })));
  };

  const act = async (action, button) => {
    if (!(await confirmAction(action.confirm(queue)))) {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      const answer = await action.run(queue, signal);
      outcome.classList.remove('error');
      outcome.textContent = action.outcome(answer);
      outcome.hidden = false;
      draw(answer.queue ?? answer);
      if (!watching) watch();
    } catch (error) {
      if (isAbort(error)) return;
      outcome.classList.add('error');
      outcome.textContent = `${action.label} failed: ${error.message}`;
      outcome.hidden = false;
      button.disabled = false;
    }
  };

  // ---------------------------------------------------------------------------- live counts
  // The event stream sends the status at once and on every change, and ends after the final
  // one; a broken stream is opened again (a retried sync is watched again as well).
  let watching = false;
  const watch = async () => {
    watching = true;
    let wait = 1000;
    try {
      while (!signal.aborted) {
        try {
          live.textContent = 'live';
          live.className = 'live on';
          await readEventStream(`${base}/events`, {
            signal,
            onEvent: ({ event, data }) => {
              if (event === 'status') draw(JSON.parse(data));
              else if (event === 'gone') gone();
            },
          });
          wait = 1000;
          if (queue && TERMINAL_QUEUE_STATES.has(queue.state)) {
            live.textContent = `finished (${queue.state})`;
            live.className = 'live off';
            return;
          }
        } catch (error) {
          if (isAbort(error)) return;
          if (error instanceof ApiError && (error.status === 404 || error.status === 401)) {
            if (error.status === 404) notFound();
            return;
          }
          live.textContent = error instanceof ApiError && error.status === 429
            ? 'too many live views open: retrying' : 'reconnecting…';
          live.className = 'live off';
          wait = Math.min(Math.max(wait, (error.retryAfterS ?? 0) * 1000) * 2, 15000);
        }
        await abortableSleep(wait, signal);
      }
    } finally {
      watching = false;
    }
  };

  const notFound = () => {
    problem.hidden = false;
    problem.textContent = 'No such sync for your organisation (it may have been deleted, or belongs to another organisation).';
    title.textContent = 'Sync not found';
    live.textContent = '';
    for (const part of [overview, counts, facts, actions]) part.replaceChildren();
    for (const section of [report.section, conflicts.section, lines.section, activity.section]) section.hidden = true;
  };
  const gone = () => { notFound(); problem.textContent = 'This sync has been deleted.'; };

  await watch();
}

function fact(label, value) {
  return h('div', {}, h('dt', { text: label }), h('dd', { text: value }));
}

// ---------------------------------------------------------------------------- preview report
// A preview's report is part of its status object from GET of the queue (the event stream
// carries the counts only): read again when the counts change, one read at a time.
function previewSection(base, signal) {
  const body = h('div', { id: 'preview-report' });
  const section = h('section', { 'aria-labelledby': 'preview-title', hidden: true },
    h('h2', { id: 'preview-title', text: 'Preview report' }),
    h('p', { class: 'muted', text: 'What a sync of this store with these options would do. The preview wrote nothing.' }),
    body);
  let loading = null;
  let reloadWanted = false;

  const draw = (preview) => {
    const numbers = [
      ['would_create', 'Would create'], ['would_update', 'Would update'], ['unchanged', 'Unchanged'],
      ['would_fail', 'Would fail'], ['conflicts', 'Conflicts'],
    ];
    const fieldChanges = Object.entries(preview.field_changes ?? {});
    const reasons = preview.fail_reasons ?? [];
    const estimate = preview.estimate ?? {};
    replace(body,
      h('dl', { class: 'counts', id: 'preview-counts' }, numbers.map(([key, label]) => h('div', {},
        h('dt', { text: label }), h('dd', { text: count(preview[key]), dataset: { preview: key } })))),
      h('dl', { class: 'facts' },
        fact('Store requests a sync would make', count(estimate.store_requests)),
        fact('Time the preview took', duration(estimate.duration_seconds))),
      h('h3', { text: 'Fields a sync would change' }),
      table([
        { title: 'Field', cell: ([name]) => h('span', { class: 'wrap', text: name }) },
        { title: 'Customers', className: 'number', cell: ([, n]) => count(n) },
      ], fieldChanges.map((entry) => ({ value: entry, dataset: { field: entry[0] } })),
      { caption: 'Existing customers changed, per field', empty: 'No existing customer would change.', className: 'field-changes' }),
      reasons.length ? [h('h3', { text: 'Why lines would fail' }), table([
        { title: 'Reason', cell: (r) => h('span', { class: 'wrap error-text', text: r.reason ?? '' }) },
        { title: 'Lines', className: 'number', cell: (r) => count(r.count) },
      ], reasons.map((reason) => ({ value: reason })), { caption: 'Failures, most frequent first' })] : null,
      h('h3', { text: 'Samples' }),
      table([
        { title: 'Customer', className: 'number', cell: (sample) => String(sample.woo_customer_id) },
        { title: 'Email', className: 'email', cell: (sample) => h('span', { class: 'wrap', text: sample.email ?? '–' }) },
        { title: 'Action', cell: (sample) => sample.action },
        { title: 'Changes', cell: (sample) => changeList(sample.changes) },
      ], (preview.samples ?? []).map((sample) => ({ value: sample, dataset: { wooCustomerId: String(sample.woo_customer_id) } })),
      { caption: 'Customers a sync would create or update (the first ones)', empty: 'Nothing would be created or updated.', className: 'samples' }));
  };

  const load = async () => {
    const status = await get(base, { signal });
    if (status.preview) draw(status.preview);
  };
  const refresh = () => {
    section.hidden = false;
    if (loading) { reloadWanted = true; return; }
    loading = load()
      .catch((error) => { if (!isAbort(error)) replace(body, h('p', { class: 'notice error', text: `Could not read the report: ${error.message}` })); })
      .finally(() => {
        loading = null;
        if (reloadWanted && !signal.aborted) { reloadWanted = false; refresh(); }
      });
  };
  return { section, refresh };
}

// {field: [old, new]} as a list of "field: old → new", every value as text.
function changeList(changes) {
  const entries = Object.entries(changes ?? {});
  if (!entries.length) return '–';
  return h('ul', { class: 'changes' }, entries.map(([name, pair]) => {
    const [before, after] = Array.isArray(pair) ? pair : [null, pair];
    return h('li', { dataset: { field: name } },
      h('span', { class: 'field-name', text: `${name}: ` }),
      h('span', { class: 'old wrap', text: valueText(before) }), ' → ',
      h('span', { class: 'new wrap', text: valueText(after) }));
  }));
}

// --------------------------------------------------------------------------------- conflicts
// Shown once the sync has any (conflict_count); pages come from the API, read again when the
// count changes.
function conflictsSection(base, signal) {
  let offset = 0;
  let total = 0;
  const summary = h('p', { class: 'muted', id: 'conflicts-summary', 'aria-live': 'polite' });
  const listing = h('div', { id: 'conflicts' });
  const previous = h('button', { type: 'button', class: 'secondary', text: 'Previous' });
  const next = h('button', { type: 'button', class: 'secondary', text: 'Next' });
  const section = h('section', { 'aria-labelledby': 'conflicts-title', hidden: true },
    h('h2', { id: 'conflicts-title', text: 'Conflicts' }),
    h('p', { class: 'muted', text: 'Fields edited locally that the store says otherwise, and what the sync did with them.' }),
    summary, listing,
    h('nav', { class: 'pager', 'aria-label': 'Pages of conflicts' }, previous, next));

  const load = async () => {
    const answer = await get(`${base}/conflicts${query({ limit: CONFLICTS_PAGE, offset })}`, { signal });
    if (!answer.items.length && offset > 0) {
      offset = Math.max(0, offset - CONFLICTS_PAGE);
      return load();
    }
    summary.textContent = answer.items.length
      ? `Conflicts ${count(offset + 1)}–${count(offset + answer.items.length)} of ${count(total)}` : 'No conflicts.';
    replace(listing, table([
      { title: 'Customer', className: 'number', cell: (c) => String(c.woo_customer_id) },
      { title: 'Field', cell: (c) => h('span', { class: 'wrap', text: c.field }) },
      { title: 'Local value', cell: (c) => h('span', { class: 'wrap', text: valueText(c.local_value) }) },
      { title: 'Store value', cell: (c) => h('span', { class: 'wrap', text: valueText(c.store_value) }) },
      { title: 'Resolution', cell: (c) => RESOLUTIONS[c.resolution] ?? c.resolution },
      { title: 'When', className: 'when', cell: (c) => when(c.created_at) },
    ], answer.items.map((conflict) => ({ value: conflict, dataset: { conflictId: conflict.id } })),
    { caption: 'Conflicts of this sync', empty: 'No conflicts.' }));
    previous.disabled = offset === 0;
    next.disabled = answer.next_offset === null;
  };
  const report = (error) => { if (!isAbort(error)) summary.textContent = `Could not read the conflicts: ${error.message}`; };

  previous.addEventListener('click', () => { offset = Math.max(0, offset - CONFLICTS_PAGE); load().catch(report); });
  next.addEventListener('click', () => { offset += CONFLICTS_PAGE; load().catch(report); });
  const refresh = (queue) => {
    total = queue.conflict_count ?? 0;
    section.hidden = total === 0;
    if (total > 0) load().catch(report);
  };
  return { section, refresh };
}

const RESOLUTIONS = { kept_local: 'kept the local value', store_written: "wrote the store's value" };

// ------------------------------------------------------------------------------------- lines
function linesSection(base, signal) {
  let state = 'failed';
  let loaded = [];
  let truncated = false;
  let page = 0;
  let loading = null;
  let reloadWanted = false;

  const stateSelect = h('select', { id: 'line-state' },
    h('option', { value: '', text: 'All states' }),
    LINE_STATES.map((s) => h('option', { value: s, text: s, selected: s === state })));
  const search = h('input', { id: 'line-search', type: 'search', autocomplete: 'off', placeholder: 'customer id, email or error' });
  const summary = h('p', { class: 'muted', id: 'lines-summary', 'aria-live': 'polite' });
  const listing = h('div', { id: 'lines' });
  const previous = h('button', { type: 'button', class: 'secondary', text: 'Previous' });
  const next = h('button', { type: 'button', class: 'secondary', text: 'Next' });
  const section = h('section', { 'aria-labelledby': 'lines-title' },
    h('h2', { id: 'lines-title', text: 'Lines' }),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter lines', onsubmit: (e) => e.preventDefault() },
      h('div', { class: 'field' }, h('label', { for: 'line-state', text: 'State' }), stateSelect),
      h('div', { class: 'field grow' }, h('label', { for: 'line-search', text: 'Search lines' }), search)),
    summary, listing,
    h('nav', { class: 'pager', 'aria-label': 'Pages of lines' }, previous, next));

  const matching = () => {
    const text = search.value.trim().toLowerCase();
    if (!text) return loaded;
    return loaded.filter((line) => [line.woo_customer_id, line.email, line.error_message, line.state]
      .some((value) => String(value ?? '').toLowerCase().includes(text)));
  };

  const draw = () => {
    const found = matching();
    const pages = Math.max(1, Math.ceil(found.length / LINES_PAGE));
    page = Math.min(page, pages - 1);
    const shown = found.slice(page * LINES_PAGE, (page + 1) * LINES_PAGE);
    const what = state ? `${state} lines` : 'lines';
    summary.textContent = found.length
      ? `${what[0].toUpperCase()}${what.slice(1)} ${count(page * LINES_PAGE + 1)}–${count(page * LINES_PAGE + shown.length)} of ${count(found.length)}`
        + (search.value.trim() ? ' matching the search' : '')
        + (truncated ? ` (the first ${count(LINES_MAX)} read)` : '')
      : `No ${what}${search.value.trim() ? ' match the search' : ''}.`;
    replace(listing, table([
      { title: 'Customer', className: 'number', cell: (l) => String(l.woo_customer_id) },
      { title: 'Email', className: 'email', cell: (l) => h('span', { class: 'wrap', text: l.email ?? '–' }) },
      { title: 'State', cell: (l) => h('span', { class: `badge state-${LINE_STATES.includes(l.state) ? l.state : 'unknown'}`, text: l.state }) },
      { title: 'Attempts', className: 'number', cell: (l) => `${l.process_count} (${l.error_count} failed)` },
      { title: 'Error', cell: (l) => h('span', { class: 'wrap error-text', text: l.error_message ?? '' }) },
      { title: 'Last try', className: 'when', cell: (l) => when(l.last_process_date) },
    ], shown.map((line) => ({ value: line, dataset: { lineId: line.id } })), { caption: 'Lines of this sync', empty: 'No lines to show.' }));
    previous.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };

  const load = async () => {
    const read = [];
    for (let offset = 0; offset < LINES_MAX; offset += LINES_READ) {
      const answer = await get(`${base}/lines${query({ state, limit: LINES_READ, offset })}`, { signal });
      read.push(...answer.items);
      truncated = answer.next_offset !== null && offset + LINES_READ >= LINES_MAX;
      if (answer.next_offset === null) break;
    }
    loaded = read;
    draw();
  };

  // One read at a time; a change during a read asks for one more read after it.
  const refresh = () => {
    if (loading) { reloadWanted = true; return; }
    loading = load()
      .catch((error) => { if (!isAbort(error)) summary.textContent = `Could not read the lines: ${error.message}`; })
      .finally(() => {
        loading = null;
        if (reloadWanted && !signal.aborted) { reloadWanted = false; refresh(); }
      });
  };

  stateSelect.addEventListener('change', () => { state = stateSelect.value; page = 0; refresh(); });
  search.addEventListener('input', () => { page = 0; draw(); });
  previous.addEventListener('click', () => { page -= 1; draw(); });
  next.addEventListener('click', () => { page += 1; draw(); });
  return { section, refresh: () => refresh() };
}

// ---------------------------------------------------------------------------------- activity
function activitySection(base, signal) {
  let offset = 0;
  let lastRead = 0;
  const listing = h('div', { id: 'activity' });
  const newer = h('button', { type: 'button', class: 'secondary', text: 'Newer' });
  const older = h('button', { type: 'button', class: 'secondary', text: 'Older' });
  const section = h('section', { 'aria-labelledby': 'activity-title' },
    h('h2', { id: 'activity-title', text: 'Activity' }), listing,
    h('nav', { class: 'pager', 'aria-label': 'Pages of activity' }, newer, older));

  const load = async () => {
    lastRead = Date.now();
    const answer = await get(`${base}/activity${query({ limit: ACTIVITY_PAGE, offset })}`, { signal });
    replace(listing, table([
      { title: 'When', cell: (e) => when(e.created_at) },
      { title: 'What', cell: (e) => e.activity_type },
      { title: 'Status', cell: (e) => e.status },
      { title: 'Message', cell: (e) => h('span', { class: 'wrap', text: e.message ?? '' }) },
    ], answer.items.map((entry) => ({ value: entry })), { caption: 'Activity log, newest first', empty: 'No activity yet.' }));
    newer.disabled = offset === 0;
    older.disabled = answer.next_offset === null;
  };
  const report = (error) => { if (!isAbort(error)) replace(listing, h('p', { class: 'notice error', text: `Could not read the activity: ${error.message}` })); };

  // Read again on changes, at most every 2 s, and only on the newest page (older pages stay put
  // while the operator reads them).
  let pending = false;
  const refresh = async () => {
    if (offset !== 0 || pending) return;
    pending = true;
    await abortableSleep(Math.max(0, 2000 - (Date.now() - lastRead)), signal);
    pending = false;
    if (!signal.aborted) load().catch(report);
  };
  newer.addEventListener('click', () => { offset = Math.max(0, offset - ACTIVITY_PAGE); load().catch(report); });
  older.addEventListener('click', () => { offset += ACTIVITY_PAGE; load().catch(report); });
  return { section, refresh };
}
