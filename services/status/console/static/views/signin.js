// Sign in with an organisation's API token: checked against the API, then held for this
// browser session only (sessionStorage). The field has no name and the form no action, so the
// token cannot end up in a URL even if a script fails.

import { ApiError, get, holdToken } from '../api.js';
import { h, replace } from '../dom.js';

export function show(main, { reason, onSignedIn }) {
  const input = h('input', {
    id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'token-help',
  });
  const problem = h('p', { class: 'notice error', id: 'sign-in-problem', role: 'alert', hidden: !reason, text: reason ?? '' });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h('form', { class: 'sign-in' },
    h('h1', { tabindex: '-1', text: 'Sign in' }),
    h('p', { text: "The console shows your organisation's syncs. Sign in with one of its API tokens." }),
    problem,
    h('label', { for: 'token', text: 'API token' }),
    input,
    h('p', { class: 'hint', id: 'token-help', text: 'Held by this browser tab until you sign out or close it; never stored elsewhere. Create one with: woosync org token create' }),
    button,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const candidate = input.value.trim();
    if (!candidate) {
      problem.hidden = false;
      problem.textContent = 'Enter an API token.';
      input.focus();
      return;
    }
    button.disabled = true;
    try {
      await get('/api/v1/sync/queues?limit=1', { bearer: candidate });
      input.value = '';
      holdToken(candidate);
      onSignedIn();
    } catch (error) {
      problem.hidden = false;
      problem.textContent = error instanceof ApiError && error.status === 401
        ? 'That token was refused (unknown or revoked). Check it and try again.'
        : `Could not sign in: ${error.message}`;
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  input.focus();
}
