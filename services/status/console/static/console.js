// The console's entry module: signed in or not, which page the address names, and the page's
// lifetime (each page gets an AbortSignal that stops its requests and streams when it goes).

import { UNAUTHORIZED_EVENT, forgetToken, token } from './api.js';
import * as signIn from './views/signin.js';
import * as start from './views/start.js';
import * as sync from './views/sync.js';
import * as syncs from './views/syncs.js';

// Pages by address (after the #, so that nothing of them reaches a server log). New pages
// (stores, their webhooks and schedules, a preview's report) are added here.
const PAGES = [
  { pattern: /^#?\/?$/, view: syncs },
  { pattern: /^#\/new$/, view: start },
  { pattern: /^#\/syncs\/([0-9a-fA-F-]{36})$/, view: sync },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let current = null;

function leave() {
  current?.abort();
  current = null;
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showSignIn(reason) {
  leave();
  nav.hidden = true;
  document.title = 'Sign in · woosync console';
  signIn.show(main, { reason, onSignedIn: route });
}

function route() {
  if (!token()) {
    showSignIn();
    return;
  }
  leave();
  nav.hidden = false;
  const page = PAGES.map(({ pattern, view }) => ({ view, match: location.hash.match(pattern) })).find(({ match }) => match);
  const controller = new AbortController();
  current = controller;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === (location.hash || '#/')) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = 'woosync console';
  if (!page) {
    main.replaceChildren();
    const heading = document.createElement('h1');
    heading.textContent = 'No such page';
    const back = document.createElement('a');
    back.href = '#/';
    back.textContent = 'Back to the syncs';
    main.append(heading, back);
    return;
  }
  Promise.resolve(page.view.show(main, { params: page.match.slice(1), signal: controller.signal, navigate }))
    .catch((error) => {
      if (error?.name === 'AbortError' || controller.signal.aborted) return;
      const problem = document.createElement('p');
      problem.className = 'notice error';
      problem.setAttribute('role', 'alert');
      problem.textContent = `Something went wrong on this page: ${error.message}`;
      main.append(problem);
    });
  main.querySelector('h1')?.focus({ preventScroll: true });
}

document.getElementById('sign-out').addEventListener('click', () => {
  forgetToken();
  showSignIn('Signed out. The token is forgotten by this browser.');
  history.replaceState(null, '', '#/');
});
window.addEventListener(UNAUTHORIZED_EVENT, () => {
  if (!token()) return;
  forgetToken();
  showSignIn('The API token was refused (revoked or unknown): sign in again.');
});
window.addEventListener('hashchange', route);
route();
