// sse_client.js URL [MODE [TOKEN [LIMIT_MS]]] - follows an event stream
// the way a browser does, with the npm `eventsource` package (the WHATWG
// EventSource: reconnects after `retry:` ms with Last-Event-ID, stops for
// good on HTTP 204). MODE says how the token travels: `query` (already
// in URL, the default), `cookie` (Cookie: wakeq_token=TOKEN) or `header`
// (Authorization: Bearer TOKEN), the last two through the package's
// fetch option. Prints one JSON line per happening:
//   {"t":ms,"type":"open"}
//   {"t":ms,"type":"state"|"update"|"end","id":"…","data":{…}}
//   {"t":ms,"type":"conn-error","readyState":0|2,"code":204,…}
//   {"t":ms,"type":"closed"}   once EventSource has stopped (readyState 2)
// and exits 0 then, or 3 after LIMIT_MS (15000) if it never stopped.
// Needs NODE_PATH to hold the npm packages (tests/integration/61_events.sh).
'use strict';
const { EventSource } = require('eventsource');

const [url, mode = 'query', token = '', limitArg] = process.argv.slice(2);
const limit = Number(limitArg || 15000);
const t0 = Date.now();
const log = (o) => console.log(JSON.stringify({ t: Date.now() - t0, ...o }));

const opts = {};
if (mode === 'cookie' || mode === 'header') {
	opts.fetch = (input, init) => {
		const headers = { ...(init && init.headers) };
		if (mode === 'cookie')
			headers.Cookie = `wakeq_token=${token}`;
		else
			headers.Authorization = `Bearer ${token}`;
		return fetch(input, { ...init, headers });
	};
}
const es = new EventSource(url, opts);
es.addEventListener('open', () => log({ type: 'open' }));
for (const name of ['state', 'update', 'end']) {
	es.addEventListener(name, (e) => {
		let data = e.data;
		try { data = JSON.parse(e.data); } catch (err) { /* kept as text */ }
		log({ type: name, id: e.lastEventId, data });
	});
}
es.addEventListener('error', (e) => {
	log({ type: 'conn-error', readyState: es.readyState, code: e.code, message: e.message });
	if (es.readyState === EventSource.CLOSED) {
		log({ type: 'closed' });
		process.exit(0);
	}
});
setTimeout(() => {
	log({ type: 'timeout', readyState: es.readyState });
	es.close();
	process.exit(3);
}, limit);
