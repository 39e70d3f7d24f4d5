// A new conversation: the task, and optionally a repository and branch.
import { get, post } from './api.js';
import { h, show, notice, sandboxWarning } from './dom.js';
import { navigate } from './app.js';

export async function newPage() {
  document.title = 'New conversation · OpenHands';
  const task = h('textarea', { id: 'task', rows: 6, required: true, placeholder: 'What should the agent do?' });
  const repository = h('input', { id: 'repository', placeholder: 'owner/name or group/project (optional)', autocomplete: 'off' });
  const host = h('select', { id: 'git-provider' },
    h('option', { value: 'github' }, 'GitHub'),
    h('option', { value: 'gitlab' }, 'GitLab'));
  const branch = h('input', { id: 'branch', placeholder: 'branch (optional)', autocomplete: 'off' });
  const message = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { id: 'new-form', class: 'card' },
    h('label', { for: 'task' }, 'Task'), task,
    h('label', { for: 'git-provider' }, 'Repository host'), host,
    h('label', { for: 'repository' }, 'Repository'), repository,
    h('label', { for: 'branch' }, 'Branch'), branch,
    h('button', { type: 'submit' }, 'Start'),
    message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    const body = { initial_user_msg: task.value };
    if (repository.value.trim()) {
      body.repository = repository.value.trim();
      body.git_provider = host.value;
    }
    if (branch.value.trim()) body.selected_branch = branch.value.trim();
    try {
      const created = await post('/api/conversations', body);
      navigate(`/conversations/${created.conversation_id}`);
    } catch (error) {
      message.replaceChildren(notice('error', error.message));
    }
  });
  const info = await get('/server_info').catch(() => null);
  show(h('section', { class: 'narrow' }, h('h1', {}, 'New conversation'), sandboxWarning(info), form));
}
