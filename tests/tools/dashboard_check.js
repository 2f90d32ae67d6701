#!/usr/bin/env node
// dashboard_check.js - drives the wakeq dashboard in a real headless
// Chromium (puppeteer-core) against a running wakeq-api, Redis and worker
// that tests/integration/62_dashboard.sh started and seeded:
//
//   1. no token, then a wrong one: a clear message, no data in the page;
//   2. the right token: the counts of the seeded queue, as seeded; the
//      list filtered by type and by part of an id; a screenshot of a queue
//      with jobs in every state;
//   3. queue live's controls: its settings (rate limits, concurrency caps,
//      retention), a cron schedule (paused, resumed and deleted from the
//      page), a waiting job's dependency, unique key and group, a
//      batch's counts and its callback; a screenshot of them;
//   4. a job opened in the page, the worker woken from the page, the
//      job's progress moving to done over the event stream; a screenshot
//      of the job live;
//   5. a dead job retried from the page runs to done; retry all dead,
//      purge dead and cancel from the page;
//   6. a fresh tab left idle: the Redis commands of 30 s (INFO
//      commandstats) and the API's VmRSS.
// Screenshots are checked: not blank (pixels that differ from the
// background) and the key elements laid out.
//
// Settings (environment): BASE (the API's URL), TOKEN, CHROMIUM (the
// browser), OUT (where screenshots go), REDIS_PORT, API_PID, QDRIVE_PID
// (the runner holding the seeded active job, stopped after step 2), WQ
// (build/wakeq), FLAG (the file the flaky job needs), FLAKY_ID, EXPECT
// (the seeded counts of queue "default", JSON), PARENT_ID and CHILD_ID (a
// job of queue live and one that depends on it), BATCH_ID and BATCH_JOB (a
// batch of queue live and one of its jobs), IDLE_S (30).
// Prints "ok - ..." / "not ok - ..." lines and "# ..." measurements;
// exits 1 when any check failed. Needs puppeteer-core (NODE_PATH).
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const puppeteer = require('puppeteer-core');

const env = (k, d) => {
	const v = process.env[k];
	if (v === undefined && d === undefined) {
		console.error(`dashboard_check: ${k} is not set`);
		process.exit(2);
	}
	return v === undefined ? d : v;
};
const BASE = env('BASE');
const TOKEN = env('TOKEN');
const OUT = env('OUT');
const EXPECT = JSON.parse(env('EXPECT'));
const IDLE_S = Number(env('IDLE_S', '30'));

let failed = 0;
const ok = (name) => console.log(`ok - ${name}`);
const notOk = (name, why) => {
	console.log(`not ok - ${name}${why ? ': ' + why : ''}`);
	failed++;
};
const check = (name, cond, why) => (cond ? ok(name) : notOk(name, why));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, p) {
	const res = await fetch(BASE + p, { method, headers: { Authorization: 'Bearer ' + TOKEN } });
	return res.json();
}

// Waits for fn() (in the page) to be true; false on timeout.
async function until(page, fn, arg, ms = 15000) {
	try {
		await page.waitForFunction(fn, { timeout: ms, polling: 100 }, arg);
		return true;
	} catch (e) {
		return false;
	}
}

// The screenshot is not blank: counts pixels unlike the most common one
// (decoded by the browser itself, on a blank page of its own).
async function pixels(browser, file) {
	const p = await browser.newPage();
	const b64 = fs.readFileSync(file).toString('base64');
	const r = await p.evaluate(async (data) => {
		const img = new Image();
		img.src = 'data:image/png;base64,' + data;
		await img.decode();
		const c = document.createElement('canvas');
		c.width = img.width;
		c.height = img.height;
		const g = c.getContext('2d');
		g.drawImage(img, 0, 0);
		const d = g.getImageData(0, 0, c.width, c.height).data;
		const hist = new Map();
		for (let i = 0; i < d.length; i += 4) {
			const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
			hist.set(k, (hist.get(k) || 0) + 1);
		}
		let bg = 0;
		for (const n of hist.values())
			bg = Math.max(bg, n);
		return { w: c.width, h: c.height, total: d.length / 4, other: d.length / 4 - bg, colours: hist.size };
	}, b64);
	await p.close();
	return r;
}

async function shot(browser, page, name, selectors) {
	const file = path.join(OUT, name);
	await page.screenshot({ path: file, fullPage: true });
	const px = await pixels(browser, file);
	check(`${name}: not blank (${px.other} of ${px.total} pixels unlike the background, ${px.colours} colours)`,
		px.other > px.total * 0.05 && px.colours > 50);
	for (const sel of selectors) {
		const box = await page.$eval(sel, (e) => {
			const r = e.getBoundingClientRect();
			return { w: r.width, h: r.height, visible: !!(e.offsetParent || e.tagName === 'svg' || e.closest('svg')) };
		}).catch(() => null);
		check(`${name}: ${sel} is laid out`, box && box.w >= 100 && box.h >= 10 && box.visible,
			JSON.stringify(box));
	}
}

async function counts(page, q) {
	return page.evaluate((queue) => {
		const tr = document.querySelector(`#queues tbody tr[data-queue="${queue}"]`);
		if (!tr)
			return null;
		const o = {};
		for (const td of tr.querySelectorAll('td[data-state]'))
			o[td.dataset.state] = Number(td.textContent.trim());
		return o;
	}, q);
}

async function signIn(page, token) {
	await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
	await page.type('#token', token);
	await page.click('#login-form button[type=submit]');
}

// Records what the job panel shows (status, progress) and the worker pill,
// on every change, into window.__seen.
async function watchJob(page) {
	await page.evaluate(() => {
		window.__seen = [];
		const note = () => {
			const job = document.getElementById('job');
			window.__seen.push({
				t: Date.now(),
				status: job.dataset.status || '',
				progress: document.getElementById('job-progress').value,
				stage: document.getElementById('job-progress-text').textContent,
				workers: Number(document.getElementById('worker').dataset.workers || 0),
				live: document.getElementById('job-live').textContent,
			});
		};
		window.__obs = new MutationObserver(note);
		for (const id of ['job', 'job-progress-text', 'worker', 'job-live'])
			window.__obs.observe(document.getElementById(id),
				{ attributes: true, childList: true, characterData: true, subtree: true });
		note();
	});
}

function commandstats() {
	const text = execFileSync('redis-cli', ['-p', env('REDIS_PORT'), 'info', 'commandstats']).toString();
	const o = {};
	for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
		o[m[1]] = Number(m[2]);
	return o;
}

function vmrss(pid) {
	const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
	return m ? Number(m[1]) : NaN;
}

// The text of the element `sel` in the page, or null.
const text = (page, sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => null);

// Step 3: what 62_dashboard.sh seeded on queue live is shown: its settings,
// a cron schedule (paused, resumed and deleted from the page), a job's
// dependency, unique key and group, and a batch's counts (a screenshot).
async function controls(browser, page, click) {
	await click('#queues tbody tr[data-queue="live"] td[data-state="waiting"] button');
	const set = (k) => `#settings[data-queue="live"] dd[data-setting="${k}"]`;
	await until(page, (sel) => !!document.querySelector(sel), set('rate'));
	const shown = {};
	for (const k of ['rate', 'concurrency', 'group_rate', 'group_concurrency', 'done_max', 'dead_ttl_s', 'result_ttl_s'])
		shown[k] = await text(page, set(k));
	check('the settings of queue live are shown: rate and concurrency, per queue and per group, retention',
		JSON.stringify(shown) === JSON.stringify({ rate: '50 per 60 s', concurrency: '4 running',
			group_rate: '10 per 1 s', group_concurrency: '2 running', done_max: '500', dead_ttl_s: '24 h',
			result_ttl_s: 'default (RESULT_TTL)' }), JSON.stringify(shown));

	const row = (name) => `#schedules tbody tr[data-schedule="${name}"]`;
	await until(page, (sel) => !!document.querySelector(sel), row('nightly-report'));
	const sched = await page.$$eval('#schedules tbody tr[data-schedule]', (rs) => rs.map((r) =>
		[...r.children].slice(0, 9).map((td) => td.textContent.trim())));
	const nightly = (await api('GET', '/v1/schedules/nightly-report'));
	const nr = sched.find((r) => r[0] === 'nightly-report') || [];
	check('the cron schedule is listed: name, queue, cron, zone, job type, next fire, state',
		sched.length === 1 && nr[1] === 'live' && nr[2] === '0 3 1 1 *' && nr[3] === 'Europe/Paris' &&
		nr[4] === 'noop' && nr[5].startsWith(nightly.next_run_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')) &&
		/\(in \d+ [hd]\)$/.test(nr[5]) && nr[8] === 'active', JSON.stringify([sched, nightly.next_run_at]));
	await click(row('nightly-report') + ' button[data-action="pause"]');
	const paused = await until(page, (sel) => !!document.querySelector(sel + '[data-paused="true"]'), row('nightly-report'));
	const pdoc = await api('GET', '/v1/schedules/nightly-report');
	check('"Pause" on a schedule pauses it', paused && pdoc.paused === true &&
		(await text(page, row('nightly-report') + ' td:nth-child(9)')) === 'paused', JSON.stringify(pdoc));
	await click(row('nightly-report') + ' button[data-action="resume"]');
	const resumed = await until(page, (sel) => !!document.querySelector(sel + '[data-paused="false"]'), row('nightly-report'));
	const rdoc = await api('GET', '/v1/schedules/nightly-report');
	check('"Resume" resumes it, with its next fire time', resumed && rdoc.paused === false &&
		rdoc.next_run_at === nightly.next_run_at, JSON.stringify(rdoc));
	await click(row('nightly-report') + ' button[data-action="delete"]');
	const gone = await until(page, () => !!document.querySelector('#schedules tbody tr.empty'));
	const left = (await api('GET', '/v1/schedules')).schedules;
	check('"Delete" deletes it', gone && left.length === 0, JSON.stringify(left));

	// a job waiting for its dependency: its unique key, group, dependency
	const child = env('CHILD_ID');
	const parent = env('PARENT_ID');
	await until(page, (id) => !!document.querySelector(`#jobs tbody tr[data-id="${id}"]`), child);
	await click(`#jobs tbody tr[data-id="${child}"]`);
	const dep = `#job-deps-table tbody tr[data-id="${parent}"]`;
	await until(page, (sel) => !!document.querySelector(sel + '[data-status="queued"]'), dep);
	const fields = {};
	for (const k of ['status', 'unique key', 'group', 'depends on', 'batch'])
		fields[k] = k === 'status' ? await page.$eval('#job', (e) => e.dataset.status)
			: await text(page, `#job-fields dd[data-field="${k}"]`);
	fields.dependency = await page.$eval(dep, (r) => r.dataset.status).catch(() => null);
	check('a waiting job shows its unique key, group and dependency (queued)', JSON.stringify(fields) ===
		JSON.stringify({ status: 'waiting', 'unique key': 'report-42', group: 'acme',
			'depends on': '1 job (on failure: fail)', batch: '—', dependency: 'queued' }), JSON.stringify(fields));
	await click(dep);
	const opened = await until(page, (id) => document.getElementById('job').dataset.id === id &&
		document.getElementById('job').dataset.status === 'queued' &&
		document.getElementById('job-deps').hidden, parent);
	check('a dependency opens from the job view', opened);

	// a job of a batch: the batch's counts; its callback, waiting for them
	const member = env('BATCH_JOB');
	const batch = env('BATCH_ID');
	await click('#queues tbody tr[data-queue="live"] td[data-state="queued"] button');
	await until(page, (id) => !!document.querySelector(`#jobs tbody tr[data-id="${id}"]`), member);
	await click(`#jobs tbody tr[data-id="${member}"]`);
	await until(page, (id) => !document.getElementById('job-batch').hidden &&
		document.getElementById('job-batch-id').textContent === id, batch);
	const counts = await page.$$eval('#job-batch-counts dd[data-count]', (ds) =>
		Object.fromEntries(ds.map((d) => [d.dataset.count, d.textContent])));
	check('a job of a batch shows the batch\'s counts', JSON.stringify(counts) === JSON.stringify({
		status: 'running', total: '2', done: '0', failed: '0', cancelled: '0', pending: '2' }) &&
		(await text(page, '#job-fields dd[data-field="batch"]')) === batch, JSON.stringify(counts));
	await click('#job-batch button[data-action="open-callback"]');
	const cb = await until(page, (id) => {
		const dd = document.querySelector('#job-fields dd[data-field="depends on"]');
		return document.getElementById('job').dataset.id === id && dd &&
			dd.textContent === '2 jobs (on failure: ignore)' &&
			document.querySelectorAll('#job-deps-table tbody tr[data-status="queued"]').length === 2 &&
			!document.getElementById('job-batch').hidden;
	}, batch);
	check('its callback opens: waiting for the two jobs of the batch', cb,
		await text(page, '#job-fields'));
	if (cb)
		await shot(browser, page, 'dashboard-controls.png', ['#settings', '#job-deps-table', '#job-batch-counts']);
	await click('#job-close');
}

async function main() {
	const browser = await puppeteer.launch({
		executablePath: env('CHROMIUM'),
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
			'--no-default-browser-check', '--disable-extensions', '--mute-audio'],
	});
	const problems = [];
	const open = async () => {
		const page = await browser.newPage();
		await page.setViewport({ width: 1360, height: 900 });
		page.on('pageerror', (e) => problems.push('page error: ' + e.message));
		page.on('console', (m) => {
			// a refused token shows as a failed 401 fetch: expected
			if (m.type() === 'error' && !/status of 401/.test(m.text()))
				problems.push('console: ' + m.text());
		});
		page.on('dialog', (d) => d.accept());
		return page;
	};
	try {
		await run(browser, open);
	} finally {
		check('no script error nor CSP violation in the page', problems.length === 0, problems.join(' | '));
		await browser.close();
	}
}

async function run(browser, open) {
	// ---- 1. no token, a wrong token ---------------------------------------
	let page = await open();
	// The page redraws its tables as it polls: a node found a moment ago
	// can be replaced before the click lands ("detached"). Retry those
	// (bounded); any other error stands.
	const click = async (sel) => {
		for (let i = 0; ; i++) {
			try {
				await page.waitForSelector(sel, { timeout: 10000 });
				await page.click(sel);
				return;
			} catch (e) {
				if (i >= 20 || !/detached|not clickable|No node found/i.test(String(e)))
					throw e;
				await new Promise((r) => setTimeout(r, 100));
			}
		}
	};
	const res = await page.goto(BASE + '/dashboard', { waitUntil: 'load' });
	check('the page loads (200)', res.status() === 200, String(res.status()));
	const h = res.headers();
	check('it has a Content-Security-Policy without inline script',
		/script-src 'self'/.test(h['content-security-policy'] || '') &&
		!/unsafe-inline/.test(h['content-security-policy'] || ''), h['content-security-policy']);
	check('X-Frame-Options DENY', h['x-frame-options'] === 'DENY', h['x-frame-options']);
	await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
	const empty = await page.evaluate(() => ({
		app: document.getElementById('app').hidden,
		rows: document.querySelectorAll('#queues tbody tr').length,
		msg: document.getElementById('login-msg').textContent,
	}));
	check('without a token: asks for it and shows no data', empty.app && empty.rows === 0 &&
		/token/i.test(empty.msg), JSON.stringify(empty));

	await signIn(page, 'not-the-token');
	const refused = await until(page, () => /refused/.test(document.getElementById('login-msg').textContent));
	const wrong = await page.evaluate(() => ({
		app: document.getElementById('app').hidden,
		rows: document.querySelectorAll('#queues tbody tr').length,
		jobs: document.querySelectorAll('#jobs tbody tr').length,
		msg: document.getElementById('login-msg').textContent,
		stored: Object.keys(sessionStorage).filter((k) => /token/.test(k)).length,
	}));
	check('a wrong token is refused with a clear message, and no data is shown',
		refused && wrong.app && wrong.rows === 0 && wrong.jobs === 0 && wrong.stored === 0,
		JSON.stringify(wrong));

	// ---- 2. the counts of the seeded queue ------------------------------------
	await signIn(page, TOKEN);
	const shown = await until(page, () => !!document.querySelector('#queues tbody tr[data-queue="default"]'));
	check('the right token shows the queues', shown);
	const c = await counts(page, 'default');
	const want = Object.fromEntries(Object.keys(EXPECT).map((k) => [k, c ? c[k] : undefined]));
	check('the counts of the seeded queue are shown as seeded', JSON.stringify(want) === JSON.stringify(EXPECT),
		`shown ${JSON.stringify(c)}, seeded ${JSON.stringify(EXPECT)}`);
	const pill = await page.$eval('#worker', (e) => e.textContent);
	check('no worker is alive, and the page says so', /no worker alive/.test(pill), pill);

	// the list: done jobs, filtered by type, then by part of an id
	await click('#queues tbody tr[data-queue="default"] td[data-state="done"] button');
	await until(page, (n) => {
		const rs = [...document.querySelectorAll('#jobs tbody tr[data-id]')];
		return rs.length === n && rs.every((r) => r.dataset.status === 'done');
	}, EXPECT.done);
	const all = await page.$$eval('#jobs tbody tr[data-id]', (rs) => rs.map((r) => [r.dataset.id, r.children[1].textContent]));
	check('the done list shows the done jobs', all.length === EXPECT.done, JSON.stringify(all));
	await page.type('#f-type', 'sleep');
	await click('#filters button[type=submit]');
	await until(page, () => {
		const rs = [...document.querySelectorAll('#jobs tbody tr[data-id]')];
		return rs.length > 0 && rs.every((r) => r.children[1].textContent === 'sleep');
	});
	const sleeps = await page.$$eval('#jobs tbody tr[data-id]', (rs) => rs.map((r) => r.children[1].textContent));
	check('filtered by type: only the sleep job', sleeps.length === 1 && sleeps[0] === 'sleep', JSON.stringify(sleeps));
	await click('#f-clear');
	const noop = all.find((r) => r[1] === 'noop');
	const part = noop[0].slice(-6);
	await until(page, () => document.querySelectorAll('#jobs tbody tr[data-id]').length > 1);
	await page.type('#f-id', part.toUpperCase());
	await click('#filters button[type=submit]');
	await until(page, (id) => {
		const rs = document.querySelectorAll('#jobs tbody tr[data-id]');
		return rs.length === 1 && rs[0].dataset.id === id;
	}, noop[0]);
	const byId = await page.$$eval('#jobs tbody tr[data-id]', (rs) => rs.map((r) => r.dataset.id));
	check('filtered by part of the id: that job alone', byId.length === 1 && byId[0] === noop[0], JSON.stringify(byId));
	await click('#f-clear');

	// the dead letters, for the picture of a queue in every state
	await click('#queues tbody tr[data-queue="default"] td[data-state="failed"] button');
	await until(page, (n) => document.querySelectorAll('#jobs tbody tr[data-id][data-status="failed"]').length === n, EXPECT.failed);
	await shot(browser, page, 'dashboard-queues.png', ['#queues', '#controls', '#schedules', '#chart-throughput', '#chart-latency', '#jobs']);

	// ---- 3. queue live's controls, a job's links, a batch ----------------------
	await controls(browser, page, click);

	// the seeded active job is no longer needed: nothing runs but the worker
	process.kill(Number(env('QDRIVE_PID')), 'SIGTERM');

	// ---- 4. a job followed live while the woken worker runs it -----------------
	const wqEnv = { ...process.env };
	delete wqEnv.WAKE_URL;
	const liveId = execFileSync(env('WQ'), ['enqueue', 'demo.steps', '--queue', 'live',
		'--payload', '{"steps":10}'], { env: wqEnv }).toString().trim();
	await click('#queues tbody tr[data-queue="live"] td[data-state="queued"] button');
	await until(page, (id) => !!document.querySelector(`#jobs tbody tr[data-id="${id}"]`), liveId);
	await click(`#jobs tbody tr[data-id="${liveId}"]`);
	const following = await until(page, (id) => {
		const j = document.getElementById('job');
		return j.dataset.id === id && j.dataset.status === 'queued' &&
			document.getElementById('job-live').textContent === 'live';
	}, liveId);
	check('a queued job opens, followed live over the event stream', following);
	await watchJob(page);
	await click('#wake');
	const woke = await until(page, () => /Wake sent|already open/.test(document.getElementById('notice').textContent));
	check('"Wake worker now" asks the API to wake the worker', woke,
		await page.$eval('#notice', (e) => e.textContent));
	// a picture mid-run
	const mid = await until(page, () => {
		const j = document.getElementById('job');
		const p = document.getElementById('job-progress').value;
		return j.dataset.status === 'active' && p >= 30 && p <= 80;
	}, null, 30000);
	if (mid)
		await shot(browser, page, 'dashboard-job.png', ['#job', '#job-progress', '#queues']);
	else
		notOk('the job was seen running between 30 and 80 %');
	const done = await until(page, () => document.getElementById('job').dataset.status === 'done', null, 30000);
	await sleep(300);
	const seen = await page.evaluate(() => window.__seen);
	const progress = [...new Set(seen.filter((s) => s.status === 'active').map((s) => s.progress))]
		.filter((p) => p > 0 && p < 100);
	check('the job moved to done in the page', done, JSON.stringify(seen.slice(-3)));
	check(`its progress moved while it ran (${progress.join(', ')} %)`, progress.length >= 3 &&
		progress.every((p, i) => i === 0 || p > progress[i - 1]), JSON.stringify(progress));
	check('the stages came with it', seen.some((s) => /step-\d+/.test(s.stage)));
	check('the stream ended with the job', seen.some((s) => s.live === 'ended'));
	const alive = await until(page, () => Number(document.getElementById('worker').dataset.workers) >= 1 ||
		window.__seen.some((s) => s.workers >= 1), null, 15000);
	check('the page showed the worker alive while it ran', alive);
	const doc = await api('GET', '/v1/jobs/' + liveId);
	check('the API agrees: done with its result', doc.status === 'done' && doc.result && doc.result.steps === 10,
		JSON.stringify(doc));

	// ---- 5. retry a dead job and see it run; the other actions -----------------
	fs.writeFileSync(env('FLAG'), 'ok\n');
	const flaky = env('FLAKY_ID');
	await click('#queues tbody tr[data-queue="default"] td[data-state="failed"] button');
	await until(page, (id) => !!document.querySelector(`#jobs tbody tr[data-id="${id}"]`), flaky);
	await click(`#jobs tbody tr[data-id="${flaky}"]`);
	await until(page, (id) => document.getElementById('job').dataset.id === id &&
		document.getElementById('job').dataset.status === 'failed', flaky);
	await watchJob(page);
	await click('#job-retry');
	const rdone = await until(page, (id) => document.getElementById('job').dataset.id === id &&
		document.getElementById('job').dataset.status === 'done', flaky, 30000);
	const rseen = await page.evaluate(() => window.__seen.map((s) => s.status));
	check('a dead job retried from the page runs again, to done', rdone &&
		rseen.includes('active'), JSON.stringify([...new Set(rseen)]));

	// retry all: the other dead job runs and fails again (it always fails)
	await until(page, () => Number(document.querySelector('#queues tr[data-queue="default"] td[data-state="failed"]').textContent) === 1);
	const dead = (await api('GET', '/v1/queues/default/jobs?state=failed')).jobs;
	await click('#queues tbody tr[data-queue="default"] button[data-action="retry-dead"]');
	const retried = await until(page, () => /Retried 1 dead job of default/.test(document.getElementById('notice').textContent));
	check('"Retry all" retries the dead jobs of the queue', retried, await page.$eval('#notice', (e) => e.textContent));
	// back in the dead letters after its new attempt
	let again = false;
	for (let i = 0; i < 100 && !again; i++) {
		const q = await api('GET', '/v1/queues');
		again = q.queues.default.failed === 1 && q.queues.default.queued === 0 && q.queues.default.active <= 1;
		if (!again)
			await sleep(200);
	}
	const rerun = dead.length === 1 ? await api('GET', '/v1/jobs/' + dead[0].id) : {};
	check('the retried job ran (and failed again)', again && rerun.status === 'failed' &&
		Date.parse(rerun.finished_at) > Date.parse(dead[0].finished_at), JSON.stringify([dead, rerun]));
	await click('#refresh');
	await until(page, () => !document.querySelector('#queues tr[data-queue="default"] button[data-action="purge-dead"]').disabled);
	await click('#queues tbody tr[data-queue="default"] button[data-action="purge-dead"]');
	const purged = await until(page, () => /Purged 1 dead job of default/.test(document.getElementById('notice').textContent));
	const afterPurge = await api('GET', '/v1/queues');
	check('"Purge" deletes the dead jobs of the queue', purged && afterPurge.queues.default.failed === 0,
		JSON.stringify(afterPurge.queues.default));
	await until(page, () => document.querySelector('#queues tr[data-queue="default"] td[data-state="failed"]').textContent.trim() === '0');

	await click('#queues tbody tr[data-queue="live"] button[data-action="pause"]');
	const shownPaused = await until(page, () => !!document.querySelector('#queues tr[data-queue="live"] button[data-action="resume"]'));
	const pdoc = await api('GET', '/v1/queues');
	check('"Pause" pauses the queue', shownPaused && pdoc.queues.live.paused === true, JSON.stringify(pdoc.queues.live));
	await click('#queues tbody tr[data-queue="live"] button[data-action="resume"]');
	const shownResumed = await until(page, () => !!document.querySelector('#queues tr[data-queue="live"] button[data-action="pause"]'));
	const rdoc = await api('GET', '/v1/queues');
	check('"Resume" resumes it', shownResumed && rdoc.queues.live.paused === false, JSON.stringify(rdoc.queues.live));

	await click('#queues tbody tr[data-queue="default"] td[data-state="scheduled"] button');
	await until(page, () => document.querySelectorAll('#jobs tbody tr[data-status="scheduled"]').length > 0);
	const victim = await page.$eval('#jobs tbody tr[data-status="scheduled"]', (r) => r.dataset.id);
	await click(`#jobs tbody tr[data-id="${victim}"] td:last-child button`);
	const cancelled = await until(page, (id) => document.getElementById('notice').textContent.includes(id + ' is cancelled'), victim);
	const vdoc = await api('GET', '/v1/jobs/' + victim);
	check('"Cancel" cancels a scheduled job', cancelled && vdoc.status === 'cancelled', JSON.stringify(vdoc));

	// ---- 6. an idle tab: Redis commands, and the API's memory ------------------
	await page.close();
	page = await open();
	await page.goto(BASE + '/dashboard', { waitUntil: 'load' });
	await signIn(page, TOKEN);
	await until(page, () => !!document.querySelector('#queues tbody tr[data-queue="default"]'));
	// the page slows down once nothing has changed for a few polls
	const settled = await until(page, () => /next in 30 s/.test(document.getElementById('updated').textContent), null, 40000);
	check('an idle page polls every 30 s', settled, await page.$eval('#updated', (e) => e.textContent));
	const before = commandstats();
	await sleep(IDLE_S * 1000);
	const after = commandstats();
	const delta = {};
	let total = 0;
	for (const [k, v] of Object.entries(after)) {
		const d = v - (before[k] || 0) - (k === 'info' ? 1 : 0); // our own INFO
		if (d > 0) {
			delta[k] = d;
			total += d;
		}
	}
	const trips = (delta.evalsha || 0) + (delta.eval || 0) +
		Object.entries(delta).filter(([k]) => !/^(evalsha|eval|hmget|zrange|zcard|zcount|time)$/.test(k))
			.reduce((s, [, v]) => s + v, 0);
	console.log(`# idle tab, ${IDLE_S} s: ${total} Redis commands (INFO commandstats, script-internal ones included: ` +
		`${JSON.stringify(delta)}), ${(total / IDLE_S).toFixed(2)}/s; round trips ${trips}, ${(trips / IDLE_S).toFixed(2)}/s`);
	check(`an idle open tab costs <= 1 Redis command per second (${(total / IDLE_S).toFixed(2)}/s)`, total <= IDLE_S,
		JSON.stringify(delta));
	const rss = vmrss(Number(env('API_PID')));
	console.log(`# wakeq-api VmRSS after the run: ${rss} kB`);
	check(`the API's RSS stays <= 16 MB (${rss} kB)`, rss <= 16 * 1024);
	await page.close();
}

main().catch((e) => {
	notOk('the browser session ran', e.stack || String(e));
}).finally(() => process.exit(failed ? 1 : 0));
