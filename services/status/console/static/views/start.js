// Start a sync (POST /api/v1/sync/queues) or, with "Preview instead", a preview of one (POST
// /api/v1/sync/preview, the same body: it reports what a sync would do and writes nothing): a
// store's address and REST API keys, and the options. The keys go to the API in the request
// body and are kept nowhere here.

import { ApiError, post } from '../api.js';
import { h, replace } from '../dom.js';

function field(id, label, input, hint) {
  return h('div', { class: 'field' },
    h('label', { for: id, text: label }), input,
    hint ? h('p', { class: 'hint', id: `${id}-hint`, text: hint }) : null);
}

export function show(main, { signal, navigate }) {
  const url = h('input', { id: 'store-url', type: 'url', autocomplete: 'url', placeholder: 'https://shop.example.com' });
  const key = h('input', { id: 'consumer-key', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'ck_…' });
  const secret = h('input', { id: 'consumer-secret', type: 'password', autocomplete: 'off', placeholder: 'cs_…' });
  const limit = h('input', { id: 'opt-limit', type: 'number', min: '1', inputmode: 'numeric' });
  const email = h('input', { id: 'opt-email', type: 'email', autocomplete: 'off' });
  const wooId = h('input', { id: 'opt-woo-id', type: 'number', min: '1', inputmode: 'numeric' });
  const role = h('input', { id: 'opt-role', type: 'text', autocomplete: 'off', placeholder: 'customer' });
  const problem = h('div', { class: 'notice error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Start the sync' });
  const preview = h('button', { type: 'button', class: 'secondary', text: 'Preview instead' });
  // One key per filled-in form and kind: pressing a button twice starts one sync (or preview),
  // not two, and a preview's key never answers for the sync started after it.
  const newKeys = () => ({ sync: `console-${crypto.randomUUID()}`, preview: `console-preview-${crypto.randomUUID()}` });
  let idempotencyKeys = newKeys();

  const form = h('form', { class: 'start' },
    h('h1', { tabindex: '-1', text: 'Start a sync' }),
    problem,
    h('fieldset', {}, h('legend', { text: 'Store' }),
      field('store-url', 'Store address', url, 'The WooCommerce site, e.g. https://shop.example.com'),
      field('consumer-key', 'Consumer key', key),
      field('consumer-secret', 'Consumer secret', secret, 'Sent once to the status service, which stores it encrypted.')),
    h('fieldset', {}, h('legend', { text: 'Only some customers (optional)' }),
      field('opt-limit', 'At most this many customers', limit),
      field('opt-email', 'The customer with this email', email),
      field('opt-woo-id', 'The customer with this WooCommerce id', wooId),
      field('opt-role', 'Customers with this role', role)),
    h('div', { class: 'buttons' }, submit, preview, h('a', { href: '#/', class: 'button secondary', text: 'Back to the syncs' })));

  form.addEventListener('input', () => { idempotencyKeys = newKeys(); });
  const begin = async (kind) => {
    const options = {};
    if (limit.value) options.limit = Number(limit.value);
    if (email.value.trim()) options.email = email.value.trim();
    if (wooId.value) options.woo_customer_id = Number(wooId.value);
    if (role.value.trim()) options.role = role.value.trim();
    submit.disabled = true;
    preview.disabled = true;
    problem.hidden = true;
    try {
      const queue = await post(kind === 'preview' ? '/api/v1/sync/preview' : '/api/v1/sync/queues', {
        store: { url: url.value.trim(), consumer_key: key.value.trim(), consumer_secret: secret.value },
        idempotency_key: idempotencyKeys[kind],
        requested_by: 'console',
        options,
      }, { signal });
      secret.value = '';
      navigate(`#/syncs/${queue.id}`);
    } catch (error) {
      if (error?.name === 'AbortError') return;
      const details = error instanceof ApiError && error.details
        ? h('ul', {}, error.details.map((d) => h('li', { text: `${d.field}: ${d.message}` }))) : null;
      replace(problem, h('p', { text: `The ${kind} was not started: ${error.message}` }), details);
      problem.hidden = false;
      problem.focus?.();
    } finally {
      submit.disabled = false;
      preview.disabled = false;
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    begin('sync');
  });
  preview.addEventListener('click', () => {
    if (form.reportValidity()) begin('preview');
  });
  replace(main, form);
  url.focus();
}
