// What an operator can do to one sync, as a table: each action says when it applies, how to
// confirm it and which API route does it (a preview's "apply" joins it when the status API has
// its route); the sync page draws whatever is listed here.

import { post } from './api.js';
import { TERMINAL_QUEUE_STATES, count } from './dom.js';

const queuePath = (queue, action) => `/api/v1/sync/queues/${encodeURIComponent(queue.id)}/${action}`;
const REQUESTED_BY = 'console';

export const QUEUE_ACTIONS = [
  {
    name: 'retry',
    label: 'Retry failed lines',
    tone: 'primary',
    applies: (queue) => queue.failed_count > 0 && !queue.cancelled_at,
    confirm: (queue) => ({
      title: 'Retry the failed lines?',
      text: `${count(queue.failed_count)} failed line(s) go back to draft and are sent to the consumers again.`,
      yes: 'Retry failed lines',
    }),
    run: (queue, signal) => post(queuePath(queue, 'retry'), { requested_by: REQUESTED_BY }, { signal }),
    outcome: (answer) => `${count(answer.retried)} failed line(s) sent again.`,
  },
  {
    name: 'pause',
    label: 'Pause sync',
    tone: 'secondary',
    applies: (queue) => !TERMINAL_QUEUE_STATES.has(queue.state) && queue.state !== 'paused',
    confirm: (queue) => ({
      title: 'Pause this sync?',
      text: `No more of its ${count(queue.draft_count)} waiting line(s) are sent; the ${count((queue.queued_count || 0) + queue.processing_count)} already sent finish. Resume continues where it stopped.`,
      yes: 'Pause sync',
    }),
    run: (queue, signal) => post(queuePath(queue, 'pause'), { requested_by: REQUESTED_BY }, { signal }),
    outcome: () => 'The sync is paused.',
  },
  {
    name: 'resume',
    label: 'Resume sync',
    tone: 'primary',
    applies: (queue) => queue.state === 'paused',
    confirm: (queue) => ({
      title: 'Resume this sync?',
      text: `Its ${count(queue.draft_count)} waiting line(s) are sent to the consumers again.`,
      yes: 'Resume sync',
    }),
    run: (queue, signal) => post(queuePath(queue, 'resume'), { requested_by: REQUESTED_BY }, { signal }),
    outcome: () => 'The sync is resumed.',
  },
  {
    name: 'cancel',
    label: 'Cancel sync',
    tone: 'danger',
    applies: (queue) => !TERMINAL_QUEUE_STATES.has(queue.state),
    confirm: (queue) => ({
      title: 'Cancel this sync?',
      text: `Its ${count(queue.draft_count)} waiting line(s) end cancelled now; lines already in work finish. This cannot be undone.`,
      yes: 'Cancel sync',
    }),
    run: (queue, signal) => post(queuePath(queue, 'cancel'), { requested_by: REQUESTED_BY }, { signal }),
    outcome: () => 'The sync is cancelled.',
  },
];

// Asks with the page's <dialog>; resolves true only when the operator confirms (Escape, the
// "keep" button or closing it some other way all mean no).
export function confirmAction({ title, text, yes }) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = yes;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-no').focus();
  });
}
