// app.js - the wakeq dashboard (docs/API.md "Dashboard"), served by
// wakeq-api as DASHBOARD_PATH/app.js. Plain browser JavaScript, no
// library, no build step.
//
// Everything shown comes from the API's /v1/ routes with the bearer
// token the page asks for once and keeps in this tab's sessionStorage
// (never a cookie: a request forged by another site carries no token).
// A 401 clears the page and the token and asks again: no data is shown
// without a token the API accepts.
//
// Cost: one GET /v1/queues (one Redis script per queue) every 5 s while
// the counts move, every 30 s once they have not changed for 3 polls,
// none while the tab is hidden. The job list, the oldest due job and the
// wait times are read again only when the counts they depend on change.
// A job's record is followed over GET /v1/jobs/{id}/events, read with
// fetch() (EventSource cannot send the Authorization header); an idle
// stream costs the API no Redis command. The selected queue's settings
// (GET /v1/queues/{q}/settings) and the cron schedules (GET /v1/schedules)
// are read when a queue is selected and again only when the counts move
// (a schedule that fires makes a job), as is an open job's dependencies
// and batch; an idle tab reads none of them.
//
// The API keeps no history, so the charts are drawn from the samples this
// page took while open (kept in sessionStorage for the last hour).
'use strict';
(() => {
	const API = '/v1';
	const STATES = ['queued', 'scheduled', 'active', 'retrying', 'waiting', 'done', 'failed', 'cancelled'];
	const LISTED = ['queued', 'scheduled', 'active', 'retrying', 'waiting', 'done', 'failed'];
	const FINAL = new Set(['done', 'failed', 'cancelled']);
	const FAST_MS = 5000;
	const IDLE_MS = 30000;
	const IDLE_AFTER = 3;          // unchanged polls before IDLE_MS
	const PAGE = 20;               // jobs per page
	const HOUR_MS = 3600 * 1000;
	const WAIT_SAMPLE = 20;        // recent done jobs read for wait times
	const TOKEN_KEY = 'wakeq.dashboard.token';
	const SAMPLES_KEY = 'wakeq.dashboard.samples';

	const $ = (id) => document.getElementById(id);
	const SVG_NS = 'http://www.w3.org/2000/svg';

	// el('td', {class: 'num', 'data-state': 'queued'}, 'text', child...)
	function el(tag, attrs, ...kids) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === undefined || v === null || v === false)
				continue;
			if (k === 'class')
				e.className = v;
			else if (k === 'title')
				e.title = v;
			else
				e.setAttribute(k, v === true ? '' : String(v));
		}
		for (const k of kids)
			if (k !== null && k !== undefined)
				e.append(k instanceof Node ? k : String(k));
		return e;
	}
	function svg(tag, attrs) {
		const e = document.createElementNS(SVG_NS, tag);
		for (const [k, v] of Object.entries(attrs || {}))
			e.setAttribute(k, String(v));
		return e;
	}

	let token = sessionStorage.getItem(TOKEN_KEY) || '';
	const st = {
		queues: {},       // name -> counts, as GET /v1/queues said last
		keys: {},         // name -> JSON of those counts (change detection)
		sel: null,        // the queue shown below the table
		state: 'queued',  // the state listed
		offsets: [0],     // offsets of the pages seen (for "previous")
		nextOffset: null,
		filters: { type: '', id: '' },
		job: null,        // the job document shown
		stream: null,     // AbortController of the event stream
		timer: null,
		unchanged: 0,
		lastPoll: 0,
		samples: {},      // name -> [[t, queued, active, done, failed, age_s]]
		oldest: {},       // name -> due time (ms) of the oldest queued job, or null
		waits: {},        // name -> [[finished_ms, wait_s]]
		waitSeen: {},     // name -> Set of ids already counted
		settings: null,   // GET /v1/queues/{sel}/settings
		settingsQ: null,  // the queue whose settings were asked for last
		schedules: [],    // GET /v1/schedules
		links: { deps: null, batch: null }, // of the job shown
	};

	// ---- the API ----------------------------------------------------------

	class ApiError extends Error {
		constructor(status, code, message) {
			super(message);
			this.status = status;
			this.code = code;
		}
	}

	async function api(method, path, body) {
		const opts = {
			method,
			headers: { Authorization: 'Bearer ' + token },
			cache: 'no-store',
			credentials: 'omit',
		};
		if (body !== undefined) {
			opts.headers['Content-Type'] = 'application/json';
			opts.body = JSON.stringify(body);
		}
		let res;
		try {
			res = await fetch(API + path, opts);
		} catch (e) {
			throw new ApiError(0, 'network', 'the API cannot be reached: ' + e.message);
		}
		let doc = null;
		try {
			doc = await res.json();
		} catch (e) {
			doc = null;
		}
		const err = doc && doc.error ? doc.error : null;
		if (res.status === 401) {
			refused(err ? err.message : 'unauthorized');
			throw new ApiError(401, 'unauthorized', 'the token was refused');
		}
		if (!res.ok)
			throw new ApiError(res.status, err ? err.code : 'http_' + res.status,
				err ? err.message : res.status + ' ' + res.statusText);
		return doc;
	}
	const enc = encodeURIComponent;

	// ---- sign in and out ------------------------------------------------------

	function showLogin(message, isError) {
		stopFollow();
		clearTimeout(st.timer);
		st.timer = null;
		// nothing of what was shown stays in the page
		$('app').hidden = true;
		$('queues').tBodies[0].replaceChildren();
		$('jobs').tBodies[0].replaceChildren();
		$('schedules').tBodies[0].replaceChildren();
		$('settings').replaceChildren();
		st.settings = null;
		st.settingsQ = null;
		st.schedules = [];
		$('chart-throughput').replaceChildren();
		$('chart-latency').replaceChildren();
		$('job').hidden = true;
		for (const id of ['worker', 'refresh', 'wake', 'logout'])
			$(id).hidden = true;
		$('updated').textContent = '';
		notice('');
		st.queues = {};
		st.keys = {};
		$('login').hidden = false;
		const msg = $('login-msg');
		msg.textContent = message;
		msg.className = isError ? 'msg error' : 'msg';
		$('token').value = '';
		$('token').focus();
	}

	function refused(why) {
		token = '';
		sessionStorage.removeItem(TOKEN_KEY);
		showLogin('The API refused this token (401: ' + why + '). Nothing is shown without a valid token: enter the API_TOKEN of this wakeq-api.', true);
	}

	async function signIn(candidate) {
		token = candidate;
		try {
			const doc = await api('GET', '/queues');
			sessionStorage.setItem(TOKEN_KEY, token);
			$('login').hidden = true;
			$('app').hidden = false;
			for (const id of ['worker', 'refresh', 'wake', 'logout'])
				$(id).hidden = false;
			applyQueues(doc.queues);
			schedule();
			if (st.pendingJob) {
				openJob(st.pendingJob);
				st.pendingJob = null;
			}
		} catch (e) {
			if (e.status === 401)
				return; // refused() said so
			token = '';
			showLogin('Cannot check the token: ' + e.message, true);
		}
	}

	// ---- notices ------------------------------------------------------------

	function notice(text, isError) {
		const n = $('notice');
		n.textContent = text;
		n.className = isError ? 'error' : '';
		n.hidden = !text;
	}
	function failed(what, e) {
		if (e.status !== 401)
			notice(what + ': ' + e.message, true);
	}

	// ---- polling ------------------------------------------------------------

	function schedule() {
		clearTimeout(st.timer);
		st.timer = null;
		if (!token || document.hidden)
			return; // visibilitychange polls again
		const ms = st.unchanged >= IDLE_AFTER ? IDLE_MS : FAST_MS;
		st.timer = setTimeout(poll, ms);
		$('updated').textContent = 'updated ' + clock(Date.now()) + ' · next in ' + ms / 1000 + ' s';
	}

	async function poll() {
		clearTimeout(st.timer);
		st.timer = null;
		if (!token)
			return;
		try {
			const doc = await api('GET', '/queues');
			applyQueues(doc.queues);
		} catch (e) {
			if (e.status === 401)
				return;
			notice('Cannot read the queues: ' + e.message, true);
		}
		schedule();
	}

	// Something was done here: look again soon and at the fast pace.
	function busy() {
		st.unchanged = 0;
		poll();
	}

	// ---- queues ---------------------------------------------------------------

	function applyQueues(queues) {
		const now = Date.now();
		const changed = [];
		for (const [name, c] of Object.entries(queues)) {
			const key = JSON.stringify(c);
			if (st.keys[name] !== key)
				changed.push(name);
			st.keys[name] = key;
		}
		st.unchanged = changed.length ? 0 : st.unchanged + 1;
		st.queues = queues;
		st.lastPoll = now;
		if (!st.sel || !(st.sel in queues))
			st.sel = Object.keys(queues)[0] || null;
		renderQueues();
		renderWorker();
		// what depends on the counts is read again only when they moved
		const reads = [];
		for (const name of changed)
			reads.push(readOldest(name));
		if (st.sel && changed.includes(st.sel)) {
			reads.push(readWaits(st.sel));
			reads.push(loadJobs());
		}
		// the controls too: a fired schedule, a pause or a setting moved them
		if (changed.length)
			loadSchedules();
		if (st.sel && (changed.includes(st.sel) || st.settingsQ !== st.sel))
			loadSettings(st.sel);
		if (st.job && changed.includes(st.job.queue) && (st.job.depends_on || st.job.batch))
			reread(st.job.id); // and its links
		Promise.all(reads).finally(() => {
			for (const name of Object.keys(queues))
				addSample(name, now);
			saveSamples();
			renderCharts();
		});
	}

	function renderWorker() {
		let live = 0;
		for (const c of Object.values(st.queues))
			live = Math.max(live, c.workers || 0);
		const w = $('worker');
		w.dataset.workers = String(live);
		w.className = 'pill ' + (live ? 'alive' : 'asleep');
		w.textContent = live ? 'worker alive: ' + live + (live > 1 ? ' workers' : ' worker')
			: 'no worker alive (scaled to zero)';
	}

	function renderQueues() {
		const body = $('queues').tBodies[0];
		const rows = [];
		for (const [name, c] of Object.entries(st.queues)) {
			const tr = el('tr', { 'data-queue': name, class: name === st.sel ? 'sel' : '' });
			tr.append(el('td', {}, el('strong', {}, name)));
			for (const s of STATES) {
				const n = c[s] || 0;
				const td = el('td', { class: 'num c-' + s + (n ? ' nz' : ''), 'data-state': s });
				if (LISTED.includes(s)) {
					const b = el('button', { type: 'button', class: name === st.sel && s === st.state ? 'on' : '',
						title: 'list the ' + s + ' jobs of ' + name }, String(n));
					b.addEventListener('click', (ev) => {
						ev.stopPropagation();
						selectQueue(name, s);
					});
					td.append(b);
				} else {
					td.append(String(n));
				}
				tr.append(td);
			}
			tr.append(el('td', { class: 'num', 'data-state': 'workers' }, String(c.workers || 0)));
			const actions = el('td', { class: 'actions' });
			const retry = el('button', { type: 'button', 'data-action': 'retry-dead', 'data-queue': name,
				disabled: !c.failed, title: 'POST /v1/jobs/{id}/retry for every dead job' }, 'Retry all');
			retry.addEventListener('click', (ev) => {
				ev.stopPropagation();
				retryAllDead(name);
			});
			const purge = el('button', { type: 'button', class: 'danger', 'data-action': 'purge-dead',
				'data-queue': name, disabled: !c.failed, title: 'POST /v1/queues/' + name + '/purge-dead' }, 'Purge');
			purge.addEventListener('click', (ev) => {
				ev.stopPropagation();
				purgeDead(name);
			});
			const paused = !!c.paused;
			const pause = el('button', { type: 'button', 'data-action': paused ? 'resume' : 'pause',
				'data-queue': name, title: 'POST /v1/queues/' + name + (paused ? '/resume' : '/pause') },
				paused ? 'Resume' : 'Pause');
			pause.addEventListener('click', (ev) => {
				ev.stopPropagation();
				pauseQueue(name, !paused);
			});
			actions.append(pause, retry, purge);
			tr.append(actions);
			tr.addEventListener('click', () => selectQueue(name, st.state));
			rows.push(tr);
		}
		body.replaceChildren(...rows);
		$('chart-queue').textContent = st.sel || '';
		$('jobs-queue').textContent = st.sel || '';
		$('controls-queue').textContent = st.sel || '';
	}

	function selectQueue(name, state) {
		const same = name === st.sel && state === st.state;
		const other = name !== st.sel;
		st.sel = name;
		st.state = state;
		if (!same)
			st.offsets = [0];
		saveHash();
		renderQueues();
		renderStates();
		renderCharts();
		loadJobs();
		if (!same)
			readWaits(name).then(renderCharts);
		if (other) {
			st.settings = null;
			renderSettings();
			loadSettings(name);
			renderSchedules();
		}
	}

	// ---- controls: settings and schedules -----------------------------------------

	// What GET /v1/queues/{q}/settings says; null = not set (the
	// process's default, or no limit).
	async function loadSettings(q) {
		let doc;
		st.settingsQ = q;
		try {
			doc = await api('GET', '/queues/' + enc(q) + '/settings');
		} catch (e) {
			failed('Cannot read the settings of ' + q, e);
			return;
		}
		if (q !== st.sel)
			return; // another queue was selected meanwhile
		st.settings = doc;
		renderSettings();
	}

	function renderSettings() {
		const s = st.settings;
		const box = $('settings');
		if (!s) {
			box.replaceChildren();
			return;
		}
		const set = (v) => v !== null && v !== undefined;
		const rate = (max, period) => set(max) ? max + ' per ' + dur(period) : 'none';
		const rows = [
			['rate', 'rate limit', rate(s.rate_max, s.rate_period_s)],
			['concurrency', 'concurrency cap', set(s.concurrency) ? s.concurrency + ' running' : 'none'],
			['group_rate', 'rate limit per group', rate(s.group_rate_max, s.group_rate_period_s)],
			['group_concurrency', 'concurrency cap per group',
				set(s.group_concurrency) ? s.group_concurrency + ' running' : 'none'],
			['result_ttl_s', 'done jobs kept for', set(s.result_ttl_s) ? dur(s.result_ttl_s) : 'default (RESULT_TTL)'],
			['done_max', 'done jobs kept, at most', set(s.done_max) ? s.done_max : 'default (10000)'],
			['dead_ttl_s', 'dead jobs kept for', set(s.dead_ttl_s) ? dur(s.dead_ttl_s) : 'default (until the cap)'],
			['dead_max', 'dead jobs kept, at most', set(s.dead_max) ? s.dead_max : 'default (10000)'],
		];
		box.dataset.queue = s.queue;
		box.replaceChildren(...rows.flatMap(([k, label, v]) =>
			[el('dt', {}, label), el('dd', { 'data-setting': k }, String(v))]));
	}

	// GET /v1/schedules: every served queue's; those of the selected queue
	// are marked.
	async function loadSchedules() {
		try {
			st.schedules = (await api('GET', '/schedules')).schedules;
		} catch (e) {
			failed('Cannot read the schedules', e);
			return;
		}
		renderSchedules();
	}

	function renderSchedules() {
		const rows = st.schedules.map((s) => {
			const tr = el('tr', { 'data-schedule': s.name, 'data-queue': s.queue,
				'data-paused': s.paused ? 'true' : 'false', class: s.queue === st.sel ? 'sel' : '' });
			const act = el('td', { class: 'actions' });
			const path = '/schedules/' + enc(s.name);
			act.append(
				actionButton(s.paused ? 'Resume' : 'Pause', () => scheduleAction(s.name, s.paused ? 'resume' : 'pause')),
				actionButton('Delete', () => scheduleAction(s.name, 'delete'), 'danger'));
			act.firstChild.dataset.action = s.paused ? 'resume' : 'pause';
			act.firstChild.title = 'POST /v1' + path + (s.paused ? '/resume' : '/pause');
			act.lastChild.dataset.action = 'delete';
			act.lastChild.title = 'DELETE /v1' + path;
			tr.append(
				el('td', {}, el('strong', {}, s.name)),
				el('td', {}, s.queue),
				el('td', { class: 'mono' }, s.cron),
				el('td', {}, s.timezone),
				el('td', {}, s.job ? s.job.type : ''),
				el('td', { 'data-field': 'next', title: s.next_run_at || '' }, s.paused ? '—' : when(s.next_run_at) || '—'),
				el('td', { title: s.last_run_at || '' }, ago(s.last_run_at) || 'never'),
				el('td', { class: 'num' }, String(s.fired)),
				el('td', {}, el('span', { class: 'pill ' + (s.paused ? 's-cancelled' : 's-active') },
					s.paused ? 'paused' : 'active')),
				act);
			tr.addEventListener('click', () => selectQueue(s.queue, st.state));
			return tr;
		});
		if (!rows.length)
			rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 10, class: 'muted' },
				'No cron schedules (POST /v1/schedules, wakeq schedules add).')));
		$('schedules').tBodies[0].replaceChildren(...rows);
	}

	// A paused schedule makes no job; resumed, it fires from now on (times
	// missed meanwhile make none). Deleting one leaves the jobs it made.
	async function scheduleAction(name, op) {
		if (op === 'delete' && !window.confirm('Delete cron schedule ' + name + '? The jobs it made stay.'))
			return;
		try {
			if (op === 'delete')
				await api('DELETE', '/schedules/' + enc(name));
			else
				await api('POST', '/schedules/' + enc(name) + '/' + op);
			notice('Schedule ' + name + (op === 'delete' ? ' is deleted.' : op === 'pause' ? ' is paused.' : ' is resumed.'));
		} catch (e) {
			failed('Cannot ' + op + ' schedule ' + name, e);
			return;
		}
		loadSchedules();
	}

	// ---- jobs -----------------------------------------------------------------

	function renderStates() {
		const nav = $('states');
		nav.replaceChildren(...LISTED.map((s) => {
			const n = st.queues[st.sel] ? st.queues[st.sel][s] || 0 : 0;
			const b = el('button', { type: 'button', 'data-state': s, class: s === st.state ? 'on' : '' },
				s + ' (' + n + ')');
			b.addEventListener('click', () => selectQueue(st.sel, s));
			return b;
		}));
	}

	async function loadJobs() {
		renderStates();
		if (!st.sel)
			return;
		const q = st.sel;
		const offset = st.offsets[st.offsets.length - 1];
		const params = new URLSearchParams({ state: st.state, limit: String(PAGE), offset: String(offset) });
		if (st.filters.type)
			params.set('type', st.filters.type);
		if (st.filters.id)
			params.set('id', st.filters.id);
		let page;
		try {
			page = await api('GET', '/queues/' + enc(q) + '/jobs?' + params);
		} catch (e) {
			failed('Cannot list the jobs', e);
			return;
		}
		if (q !== st.sel || page.state !== st.state)
			return; // another list was asked for meanwhile
		st.nextOffset = page.jobs.length >= PAGE ? page.next_offset : null;
		const rows = page.jobs.map(jobRow);
		if (!rows.length) {
			const what = st.filters.type || st.filters.id ? ' that match the filter' : '';
			rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 9, class: 'muted' },
				'No ' + st.state + ' jobs in ' + q + what + (offset ? ' on this page' : '') + '.')));
		}
		$('jobs').tBodies[0].replaceChildren(...rows);
		$('prev').disabled = st.offsets.length <= 1;
		$('next').disabled = st.nextOffset === null;
		$('page-info').textContent = page.jobs.length
			? 'page ' + st.offsets.length + ' · ' + page.jobs.length + ' shown' : '';
	}

	function jobRow(j) {
		const tr = el('tr', { 'data-id': j.id, 'data-status': j.status,
			class: st.job && st.job.id === j.id ? 'sel' : '' });
		tr.append(
			el('td', { class: 'mono', title: j.id }, j.id.slice(0, 8) + '…' + j.id.slice(-4)),
			el('td', {}, j.type),
			el('td', {}, el('span', { class: 'pill s-' + j.status }, j.status)),
			el('td', { class: 'num' }, j.attempts + '/' + j.max_attempts),
			el('td', {}, progressBar(j.progress), pct(j.progress)),
			el('td', { title: j.created_at || '' }, ago(j.created_at)),
			el('td', { title: j.finished_at || '' }, ago(j.finished_at)),
			el('td', { class: 'err', title: j.error || '' }, j.error || ''),
		);
		const act = el('td', {});
		if (j.status === 'failed')
			act.append(actionButton('Retry', () => retryJob(j.id)));
		else if (!FINAL.has(j.status))
			act.append(actionButton('Cancel', () => cancelJob(j.id), 'danger'));
		tr.append(act);
		tr.addEventListener('click', () => openJob(j.id));
		return tr;
	}

	function actionButton(label, fn, cls) {
		const b = el('button', { type: 'button', class: cls || '' }, label);
		b.addEventListener('click', (ev) => {
			ev.stopPropagation();
			fn();
		});
		return b;
	}

	function progressBar(p) {
		const bar = el('span', { class: 'bar' });
		const fill = el('span', {});
		fill.style.width = Math.max(0, Math.min(100, p || 0)) + '%';
		bar.append(fill);
		return bar;
	}

	// ---- one job, live ------------------------------------------------------------

	async function openJob(id) {
		stopFollow();
		st.job = { id, status: '' };
		st.links = { deps: null, batch: null };
		saveHash();
		$('job').hidden = false;
		$('job-id').textContent = id;
		setLive('loading…');
		try {
			st.job = await api('GET', '/jobs/' + id);
		} catch (e) {
			if (e.status === 401)
				return;
			setLive('');
			failed('Cannot read job ' + id, e);
			return;
		}
		renderJob();
		takeLinks(st.job);
		highlightRow();
		follow(id);
		$('job').scrollIntoView({ block: 'nearest' });
	}

	function closeJob() {
		stopFollow();
		st.job = null;
		st.links = { deps: null, batch: null };
		$('job').hidden = true;
		saveHash();
		highlightRow();
	}

	function highlightRow() {
		for (const tr of $('jobs').tBodies[0].rows)
			tr.classList.toggle('sel', !!st.job && tr.dataset.id === st.job.id);
	}

	function stopFollow() {
		if (st.stream) {
			st.stream.abort();
			st.stream = null;
		}
	}

	// The SSE stream, read with fetch so the bearer token can be sent.
	async function follow(id) {
		stopFollow();
		const ctl = new AbortController();
		st.stream = ctl;
		let ended = false;
		setLive('connecting…');
		try {
			const res = await fetch(API + '/jobs/' + id + '/events', {
				headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' },
				cache: 'no-store',
				credentials: 'omit',
				signal: ctl.signal,
			});
			if (res.status === 401) {
				refused('unauthorized');
				return;
			}
			if (!res.ok || !res.body) {
				setLive('no live updates (' + res.status + ')');
				return;
			}
			setLive('live');
			const reader = res.body.getReader();
			const dec = new TextDecoder();
			let buf = '';
			for (;;) {
				const { value, done } = await reader.read();
				if (done)
					break;
				buf += dec.decode(value, { stream: true });
				let m;
				while ((m = /\r?\n\r?\n/.exec(buf))) {
					const ev = parseEvent(buf.slice(0, m.index));
					buf = buf.slice(m.index + m[0].length);
					if (!ev)
						continue;
					if (ev.event === 'end' || ev.event === 'error')
						ended = true;
					onEvent(id, ev);
				}
			}
		} catch (e) {
			if (ctl.signal.aborted)
				return;
		}
		if (st.stream !== ctl)
			return; // closed or replaced meanwhile
		st.stream = null;
		if (ended) {
			setLive('ended');
			return;
		}
		// the stream broke (API restart, proxy): follow again shortly
		setLive('reconnecting…');
		setTimeout(() => {
			if (st.job && st.job.id === id && !st.stream && token)
				follow(id);
		}, 3000);
	}

	function parseEvent(block) {
		let event = 'message';
		const data = [];
		for (const line of block.split(/\r?\n/)) {
			if (!line || line[0] === ':')
				continue;
			const i = line.indexOf(':');
			const name = i < 0 ? line : line.slice(0, i);
			const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
			if (name === 'event')
				event = value;
			else if (name === 'data')
				data.push(value);
		}
		if (!data.length)
			return null;
		try {
			return { event, data: JSON.parse(data.join('\n')) };
		} catch (e) {
			return null;
		}
	}

	function onEvent(id, ev) {
		if (!st.job || st.job.id !== id)
			return;
		if (ev.event === 'state' || ev.event === 'end') {
			st.job = ev.data;
		} else if (ev.event === 'update') {
			const d = ev.data;
			// a new state brings new fields (attempts, started_at):
			// one read of the whole record per state change
			if (d.status && d.status !== st.job.status && !FINAL.has(d.status))
				reread(id);
			if (d.status)
				st.job.status = d.status;
			if (typeof d.progress === 'number')
				st.job.progress = d.progress;
			if ('stage' in d)
				st.job.stage = d.stage;
		} else if (ev.event === 'error') {
			setLive('no live updates: ' + (ev.data.message || 'error'));
			return;
		}
		renderJob();
		updateRow(st.job);
		if (ev.event === 'end' || (ev.event === 'update' && ev.data.status))
			busy(); // the counts moved
	}

	async function reread(id) {
		let doc;
		try {
			doc = await api('GET', '/jobs/' + id);
		} catch (e) {
			return;
		}
		takeLinks(doc);
		// an event may have come meanwhile: never step back from an end
		if (!st.job || st.job.id !== id || FINAL.has(st.job.status) || FINAL.has(doc.status))
			return;
		st.job = Object.assign(doc, { status: st.job.status, progress: st.job.progress, stage: st.job.stage });
		renderJob();
		updateRow(st.job);
	}

	// A job's links: its dependencies with their states (GET /v1/jobs/{id}
	// lists them) and its batch's counts (GET /v1/batches/{batch}).
	async function takeLinks(doc) {
		let batch = null;
		if (doc.batch) {
			try {
				batch = await api('GET', '/batches/' + enc(doc.batch));
			} catch (e) {
				batch = null; // its callback's record expired
			}
		}
		if (!st.job || st.job.id !== doc.id)
			return;
		st.links = { deps: doc.dependencies || null, batch };
		renderLinks();
	}

	function renderLinks() {
		const j = st.job;
		// before the read: the ids alone
		const deps = st.links.deps || (j && j.depends_on ? j.depends_on.map((id) => ({ id, status: '' })) : []);
		$('job-deps').hidden = !deps.length;
		$('job-deps-table').tBodies[0].replaceChildren(...deps.map((d) => {
			const tr = el('tr', { 'data-id': d.id, 'data-status': d.status || '', title: 'open job ' + d.id });
			tr.append(
				el('td', { class: 'mono' }, d.id),
				el('td', {}, el('span', { class: 'pill s-' + (d.status || 'none') }, d.status || '…')),
				el('td', { title: d.finished_at || '' }, ago(d.finished_at)),
				el('td', { class: 'err', title: d.error || '' }, d.error || ''));
			tr.addEventListener('click', () => openJob(d.id));
			return tr;
		}));
		const b = st.links.batch;
		$('job-batch').hidden = !b;
		if (!b)
			return;
		$('job-batch-id').textContent = b.id;
		const cb = el('button', { type: 'button', 'data-action': 'open-callback', title: 'open the callback job' },
			b.callback.type + ' ' + b.callback.id.slice(0, 8) + '… (' + b.callback.status + ')');
		cb.addEventListener('click', () => openJob(b.callback.id));
		const counts = [['status', b.status], ['total', b.total], ['done', b.done], ['failed', b.failed],
			['cancelled', b.cancelled], ['pending', b.pending]];
		$('job-batch-counts').replaceChildren(
			...counts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-count': k }, String(v))]),
			el('dt', {}, 'callback'), el('dd', {}, cb));
	}

	function updateRow(j) {
		for (const tr of $('jobs').tBodies[0].rows) {
			if (tr.dataset.id === j.id && j.type) {
				const fresh = jobRow(j);
				fresh.classList.toggle('sel', true);
				tr.replaceWith(fresh);
				return;
			}
		}
	}

	function setLive(text) {
		$('job-live').textContent = text;
	}

	function renderJob() {
		const j = st.job;
		const box = $('job');
		box.dataset.id = j.id;
		box.dataset.status = j.status || '';
		$('job-id').textContent = j.id;
		const s = $('job-status');
		s.textContent = j.status || '…';
		s.className = 'pill s-' + (j.status || 'none');
		const p = Math.max(0, Math.min(100, j.progress || 0));
		$('job-progress').value = p;
		$('job-progress-text').textContent = pct(j.progress) + (j.stage ? ' · ' + j.stage : '');
		const fields = [
			['queue', j.queue], ['type', j.type],
			['attempts', j.attempts !== undefined ? j.attempts + ' of ' + j.max_attempts : ''],
			['priority', j.priority],
			['created', when(j.created_at)], ['run at', when(j.run_at)],
			['started', when(j.started_at)], ['finished', when(j.finished_at)],
			['labels', j.labels && Object.keys(j.labels).length ? JSON.stringify(j.labels) : '—'],
			['cancel requested', j.cancel_requested ? 'yes' : 'no'],
			['group', j.group], ['unique key', j.unique_key],
			['depends on', j.depends_on ? j.depends_on.length + (j.depends_on.length === 1 ? ' job' : ' jobs') +
				' (on failure: ' + j.on_dependency_failure + ')' : ''],
			['batch', j.batch ? (j.batch === j.id ? j.batch + ' (its callback)' : j.batch) : ''],
		];
		$('job-fields').replaceChildren(...fields.flatMap(([k, v]) =>
			[el('dt', {}, k), el('dd', { 'data-field': k },
				v === undefined || v === null || v === '' ? '—' : String(v))]));
		renderLinks();
		$('job-payload').textContent = pretty(j.payload);
		$('job-result').textContent = pretty(j.result);
		$('job-error').textContent = j.error || '—';
		$('job-retry').hidden = j.status !== 'failed';
		$('job-cancel').hidden = !j.status || FINAL.has(j.status);
	}

	// ---- actions -------------------------------------------------------------------

	async function retryJob(id) {
		try {
			await api('POST', '/jobs/' + id + '/retry');
			notice('Job ' + id + ' is queued again.');
		} catch (e) {
			failed('Cannot retry job ' + id, e);
			return;
		}
		if (st.job && st.job.id === id)
			openJob(id); // its stream had ended: follow the new run
		busy();
	}

	async function cancelJob(id) {
		try {
			const r = await api('DELETE', '/jobs/' + id);
			notice(r.cancel_requested ? 'Job ' + id + ' is running: the worker stops it at its next lease renewal.'
				: 'Job ' + id + ' is cancelled.');
		} catch (e) {
			failed('Cannot cancel job ' + id, e);
			return;
		}
		busy();
	}

	async function retryAllDead(q) {
		if (!window.confirm('Retry every dead job of queue ' + q + '?'))
			return;
		// the ids first (the dead set changes as they are retried)
		const ids = new Set();
		try {
			for (let offset = 0; ids.size < 100000;) {
				const page = await api('GET', '/queues/' + enc(q) + '/jobs?state=failed&limit=1000&offset=' + offset);
				for (const j of page.jobs)
					ids.add(j.id);
				if (page.jobs.length < 1000)
					break;
				offset = page.next_offset;
			}
		} catch (e) {
			failed('Cannot list the dead jobs of ' + q, e);
			return;
		}
		let done = 0;
		let skipped = 0;
		const todo = [...ids];
		const worker = async () => {
			while (todo.length && token) {
				const id = todo.shift();
				try {
					await api('POST', '/jobs/' + id + '/retry');
					done++;
				} catch (e) {
					if (e.status === 401)
						return;
					skipped++;
				}
				notice('Retrying the dead jobs of ' + q + ': ' + done + ' of ' + ids.size + '…');
			}
		};
		await Promise.all([worker(), worker(), worker(), worker()]);
		notice('Retried ' + done + ' dead job' + (done === 1 ? '' : 's') + ' of ' + q +
			(skipped ? ' (' + skipped + ' no longer dead)' : '') + '.');
		busy();
	}

	// A paused queue takes jobs but leases none (docs/QUEUE.md); resuming
	// wakes a worker when work is due.
	async function pauseQueue(q, on) {
		try {
			await api('POST', '/queues/' + enc(q) + (on ? '/pause' : '/resume'));
			notice('Queue ' + q + (on ? ' is paused: it takes jobs and runs none.' : ' is resumed.'));
		} catch (e) {
			failed('Cannot ' + (on ? 'pause' : 'resume') + ' queue ' + q, e);
			return;
		}
		busy();
	}

	async function purgeDead(q) {
		const n = st.queues[q] ? st.queues[q].failed : 0;
		if (!window.confirm('Delete the ' + n + ' dead jobs of queue ' + q + '? This cannot be undone.'))
			return;
		try {
			const r = await api('POST', '/queues/' + enc(q) + '/purge-dead');
			notice('Purged ' + r.purged + ' dead job' + (r.purged === 1 ? '' : 's') + ' of ' + q + '.');
		} catch (e) {
			failed('Cannot purge the dead jobs of ' + q, e);
			return;
		}
		busy();
	}

	async function wake() {
		try {
			const r = await api('POST', '/wake');
			notice(r.wake === 'in_flight' ? 'A wake is already open: the worker is draining and takes every due job.'
				: 'Wake sent: the worker starts a drain.');
		} catch (e) {
			failed('Cannot wake the worker', e);
			return;
		}
		busy();
		setTimeout(busy, 1500); // the worker registers as it starts
	}

	// ---- samples and charts -------------------------------------------------------

	function dueMs(j) {
		const c = Date.parse(j.created_at);
		const r = j.run_at ? Date.parse(j.run_at) : 0;
		return Math.max(c || 0, r || 0);
	}

	async function readOldest(q) {
		const c = st.queues[q];
		if (!c || !c.queued) {
			st.oldest[q] = null;
			return;
		}
		try {
			const page = await api('GET', '/queues/' + enc(q) + '/jobs?state=queued&limit=1');
			st.oldest[q] = page.jobs.length ? dueMs(page.jobs[0]) : null;
		} catch (e) {
			st.oldest[q] = null;
		}
	}

	// Wait times (due to started) of the jobs done lately, by finish time.
	async function readWaits(q) {
		let page;
		try {
			page = await api('GET', '/queues/' + enc(q) + '/jobs?state=done&limit=' + WAIT_SAMPLE);
		} catch (e) {
			return;
		}
		const seen = st.waitSeen[q] || (st.waitSeen[q] = new Set());
		const list = st.waits[q] || (st.waits[q] = []);
		const cut = Date.now() - HOUR_MS;
		for (const j of page.jobs) {
			if (seen.has(j.id) || !j.started_at || !j.finished_at)
				continue;
			seen.add(j.id);
			const fin = Date.parse(j.finished_at);
			if (fin >= cut)
				list.push([fin, Math.max(0, (Date.parse(j.started_at) - dueMs(j)) / 1000)]);
		}
		st.waits[q] = list.filter((w) => w[0] >= cut);
	}

	function addSample(q, now) {
		const c = st.queues[q];
		const age = st.oldest[q] ? Math.max(0, (now - st.oldest[q]) / 1000) : 0;
		const list = st.samples[q] || (st.samples[q] = []);
		list.push([now, c.queued || 0, c.active || 0, c.done || 0, c.failed || 0, age]);
		const cut = now - HOUR_MS - 60000;
		while (list.length && list[0][0] < cut)
			list.shift();
	}

	function saveSamples() {
		try {
			sessionStorage.setItem(SAMPLES_KEY, JSON.stringify(st.samples));
		} catch (e) {
			// full: the charts still work from memory
		}
	}

	function loadSamples() {
		try {
			const s = JSON.parse(sessionStorage.getItem(SAMPLES_KEY) || '{}');
			if (s && typeof s === 'object')
				st.samples = s;
		} catch (e) {
			st.samples = {};
		}
	}

	const W = 600, H = 150, L = 44, R = 8, T = 10, B = 22;
	const xOf = (t, now) => L + (W - L - R) * (1 - (now - t) / HOUR_MS);

	function niceMax(v) {
		if (v <= 1)
			return 1;
		const p = Math.pow(10, Math.floor(Math.log10(v)));
		for (const m of [1, 2, 2.5, 5, 10])
			if (v <= m * p)
				return m * p;
		return 10 * p;
	}

	function frame(box, max, fmt, now) {
		box.replaceChildren();
		for (let i = 0; i <= 2; i++) {
			const y = T + (H - T - B) * i / 2;
			box.append(svg('line', { class: i === 2 ? 'axis' : 'grid-line', x1: L, x2: W - R, y1: y, y2: y }));
			const t = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' });
			t.textContent = fmt(max * (2 - i) / 2);
			box.append(t);
		}
		for (const [min, anchor] of [[60, 'start'], [30, 'middle'], [0, 'end']]) {
			const t = svg('text', { x: xOf(now - min * 60000, now), y: H - 6, 'text-anchor': anchor });
			t.textContent = min ? '-' + min + ' min' : 'now';
			box.append(t);
		}
	}
	const yOf = (v, max) => T + (H - T - B) * (1 - v / max);

	function renderCharts() {
		const q = st.sel;
		const now = Date.now();
		const samples = (q && st.samples[q]) || [];
		// throughput: count deltas between samples, by minute
		const done = new Array(60).fill(0);
		const fail = new Array(60).fill(0);
		for (let i = 1; i < samples.length; i++) {
			const [t, , , d, f] = samples[i];
			const prev = samples[i - 1];
			const b = 59 - Math.floor((now - t) / 60000);
			if (b < 0 || b > 59 || t - prev[0] > 5 * 60000)
				continue; // a gap: the page was closed
			done[b] += Math.max(0, d - prev[3]);
			fail[b] += Math.max(0, f - prev[4]);
		}
		const tp = $('chart-throughput');
		const tmax = niceMax(Math.max(...done.map((d, i) => d + fail[i])));
		frame(tp, tmax, (v) => String(Math.round(v * 10) / 10), now);
		const bw = (W - L - R) / 60;
		for (let b = 0; b < 60; b++) {
			const x = L + b * bw + 1;
			const yd = yOf(done[b], tmax), yf = yOf(done[b] + fail[b], tmax);
			if (done[b])
				tp.append(svg('rect', { class: 'bar-done', x, y: yd, width: bw - 2, height: H - B - yd }));
			if (fail[b])
				tp.append(svg('rect', { class: 'bar-failed', x, y: yf, width: bw - 2, height: yd - yf }));
		}
		// latency: the oldest due job's age at each sample; wait p50/p95
		// of the jobs done in each minute
		const waits = (q && st.waits[q]) || [];
		const byMin = new Map();
		for (const [fin, w] of waits) {
			const b = 59 - Math.floor((now - fin) / 60000);
			if (b >= 0 && b <= 59) {
				if (!byMin.has(b))
					byMin.set(b, []);
				byMin.get(b).push(w);
			}
		}
		const pcts = [...byMin.entries()].sort((a, b) => a[0] - b[0]).map(([b, ws]) => {
			ws.sort((x, y) => x - y);
			const at = (p) => ws[Math.min(ws.length - 1, Math.floor(p * ws.length))];
			return [now - (59 - b) * 60000 - 30000, at(0.5), at(0.95)];
		});
		const lat = $('chart-latency');
		const lmax = niceMax(Math.max(1, ...samples.map((s) => s[5]), ...pcts.map((p) => p[2])));
		frame(lat, lmax, dur, now);
		const line = (pts, cls) => {
			if (pts.length > 1)
				lat.append(svg('polyline', { class: cls, points: pts.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' ') }));
		};
		const cut = now - HOUR_MS;
		line(samples.filter((s) => s[0] >= cut).map((s) => [xOf(s[0], now), yOf(s[5], lmax)]), 'line-age');
		line(pcts.map((p) => [xOf(p[0], now), yOf(p[1], lmax)]), 'line-p50');
		line(pcts.map((p) => [xOf(p[0], now), yOf(p[2], lmax)]), 'line-p95');
		for (const p of pcts) {
			lat.append(svg('circle', { class: 'dot-p50', cx: xOf(p[0], now), cy: yOf(p[1], lmax), r: 2.5 }));
			lat.append(svg('circle', { class: 'dot-p95', cx: xOf(p[0], now), cy: yOf(p[2], lmax), r: 2.5 }));
		}
		const first = samples.length ? clock(samples[0][0]) : clock(now);
		$('chart-note').textContent = 'The API keeps no history: these charts are drawn from what this page saw, ' +
			'polling GET /v1/queues every ' + FAST_MS / 1000 + ' s (every ' + IDLE_MS / 1000 +
			' s when nothing changes) since ' + first + '. Throughput counts the growth of the done and failed sets ' +
			'(retained jobs, capped); wait times are those of the jobs seen done (due to started).';
	}

	// ---- formatting -------------------------------------------------------------------

	function pct(p) {
		return (typeof p === 'number' ? Math.round(p) : 0) + ' %';
	}
	function pretty(v) {
		if (v === undefined || v === null)
			return '—';
		return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
	}
	function clock(ms) {
		return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
	}
	function when(iso) {
		return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') + ' (' + ago(iso) + ')' : '';
	}
	function dur(s) {
		if (s < 1)
			return s ? s.toFixed(1) + ' s' : '0';
		if (s < 120)
			return Math.round(s) + ' s';
		if (s < 7200)
			return Math.round(s / 60) + ' min';
		if (s < 172800)
			return Math.round(s / 3600) + ' h';
		return Math.round(s / 86400) + ' d';
	}
	function ago(iso) {
		if (!iso)
			return '';
		const s = (Date.now() - Date.parse(iso)) / 1000;
		return s >= 0 ? dur(s) + ' ago' : 'in ' + dur(-s);
	}

	// ---- the address: #q=QUEUE&s=STATE&job=ID -------------------------------------------

	function saveHash() {
		const h = new URLSearchParams();
		if (st.sel)
			h.set('q', st.sel);
		h.set('s', st.state);
		if (st.job)
			h.set('job', st.job.id);
		history.replaceState(null, '', '#' + h);
	}

	function readHash() {
		const h = new URLSearchParams(location.hash.slice(1));
		if (h.get('q'))
			st.sel = h.get('q');
		if (LISTED.includes(h.get('s')))
			st.state = h.get('s');
		if (/^[0-9a-fA-F-]{36}$/.test(h.get('job') || ''))
			st.pendingJob = h.get('job').toLowerCase();
	}

	// ---- start ------------------------------------------------------------------------------

	function start() {
		readHash();
		loadSamples();
		$('login-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			const t = $('token').value.trim();
			if (t)
				signIn(t);
		});
		$('logout').addEventListener('click', () => {
			token = '';
			sessionStorage.removeItem(TOKEN_KEY);
			showLogin('The token was forgotten. Enter it again to continue.', false);
		});
		$('refresh').addEventListener('click', () => {
			loadSchedules();
			if (st.sel)
				loadSettings(st.sel);
			busy();
		});
		$('wake').addEventListener('click', wake);
		$('job-close').addEventListener('click', closeJob);
		$('job-retry').addEventListener('click', () => st.job && retryJob(st.job.id));
		$('job-cancel').addEventListener('click', () => st.job && cancelJob(st.job.id));
		$('filters').addEventListener('submit', (ev) => {
			ev.preventDefault();
			st.filters.type = $('f-type').value.trim();
			st.filters.id = $('f-id').value.trim().toLowerCase();
			st.offsets = [0];
			loadJobs();
		});
		$('f-clear').addEventListener('click', () => {
			$('f-type').value = '';
			$('f-id').value = '';
			st.filters = { type: '', id: '' };
			st.offsets = [0];
			loadJobs();
		});
		$('next').addEventListener('click', () => {
			if (st.nextOffset !== null) {
				st.offsets.push(st.nextOffset);
				loadJobs();
			}
		});
		$('prev').addEventListener('click', () => {
			if (st.offsets.length > 1) {
				st.offsets.pop();
				loadJobs();
			}
		});
		document.addEventListener('visibilitychange', () => {
			if (!token)
				return;
			if (document.hidden) {
				clearTimeout(st.timer);
				st.timer = null;
				$('updated').textContent = 'paused while the tab is hidden';
			} else {
				busy();
			}
		});
		if (token)
			signIn(token);
		else
			showLogin('Enter the API token to see the queues.', false);
	}

	start();
})();
