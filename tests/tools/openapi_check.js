#!/usr/bin/env node
// openapi_check.js - checks real exchanges with wakeq-api against
// docs/openapi.yaml, so the document cannot drift from the server.
//
//   node openapi_check.js OPENAPI.yaml EXCHANGES.jsonl [ROUTES_FILE...]
//
// EXCHANGES.jsonl: one exchange a line, captured by the test with curl:
//   {"method","path" (with its query),"status","headers" (the raw header
//    block),"body" (text),"request" (the JSON body sent, or null)}
// For each: the path and method are an operation of the document (or the
// answer is the documented 404 / 405: an error body, and for 405 an Allow
// header naming exactly the document's methods of that path); the status
// is one the operation lists; the content type is one it lists; the body
// validates against its schema (JSON; a text/event-stream is read as its
// events); its required headers are there. A request body the server
// accepted (2xx) must validate against the request schema, and one it
// refused as invalid_json, unknown_field or unknown_type must not.
// Then every operation must have been exercised with a 2xx answer.
// ROUTES_FILE: docs/API.md (its endpoint table) or internal/api/routes.c
// (its route table): their routes and the document's operations must be
// the same.
//
// Prints "ok - ..." / "not ok - ..." lines; exits 1 when any failed.
// Needs ajv, ajv-formats and yaml (NODE_PATH).
'use strict';
const fs = require('fs');
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const [docPath, xPath, ...routeFiles] = process.argv.slice(2);
if (!docPath || !xPath) {
	console.error('usage: openapi_check.js OPENAPI.yaml EXCHANGES.jsonl [ROUTES_FILE...]');
	process.exit(2);
}
const doc = YAML.parse(fs.readFileSync(docPath, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
addFormats(ajv);
ajv.addSchema(doc, 'openapi.yaml');

let failed = 0;
const ok = (name) => console.log(`ok - ${name}`);
const notOk = (name) => { console.log(`not ok - ${name}`); failed++; };
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

// JSON pointer escaping and OpenAPI-level $ref resolution (responses,
// headers): returns [object, its pointer in the document].
const esc = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');
function at(pointer) {
	return pointer.split('/').slice(1).reduce((o, k) =>
		o && o[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
}
function deref(obj, pointer) {
	while (obj && obj.$ref) {
		pointer = obj.$ref.replace(/^#/, '');
		obj = at(pointer);
	}
	return [obj, pointer];
}
const validators = new Map();
function validate(pointer, value) {
	if (!validators.has(pointer))
		validators.set(pointer, ajv.compile({ $ref: 'openapi.yaml#' + pointer }));
	const v = validators.get(pointer);
	return v(value) ? null : ajv.errorsText(v.errors, { dataVar: 'body' });
}

// The document's paths as patterns: "{x}" is one segment.
const templates = Object.keys(doc.paths).map((t) => ({
	t,
	re: new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));
const findPath = (p) => templates.find((x) => x.re.test(p));

function parseHeaders(raw) {
	const h = {};
	for (const line of String(raw || '').split(/\r?\n/).slice(1)) {
		const i = line.indexOf(':');
		if (i > 0)
			h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
	}
	return h;
}

// A text/event-stream as [{event, data}] (data parsed as JSON); comments
// (": ping") skipped; any other field is kept, so the schema sees it.
function parseEvents(text) {
	const events = [];
	for (const block of text.split(/\r?\n\r?\n/)) {
		const ev = {};
		let data = null;
		for (const line of block.split(/\r?\n/)) {
			if (!line || line.startsWith(':'))
				continue;
			const i = line.indexOf(':');
			const name = i < 0 ? line : line.slice(0, i);
			const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
			if (name === 'data')
				data = data === null ? value : data + '\n' + value;
			else
				ev[name] = value;
		}
		if (data !== null) {
			try {
				ev.data = JSON.parse(data);
			} catch (e) {
				ev.data = data;
			}
		}
		if (Object.keys(ev).length)
			events.push(ev);
	}
	return events;
}

const exercised = new Map(); // "METHOD template" -> statuses seen
const lines = fs.readFileSync(xPath, 'utf8').split('\n').filter(Boolean);
for (const line of lines) {
	const x = JSON.parse(line);
	const path = x.path.split('?')[0];
	const method = x.method.toLowerCase();
	const name = `${x.method} ${x.path} ${x.status}`;
	const headers = parseHeaders(x.headers);
	const ctype = (headers['content-type'] || '').split(';')[0].trim();
	const problems = [];
	const tpl = findPath(path);
	const item = tpl && doc.paths[tpl.t];
	const opMethod = method === 'head' && item && !item.head ? 'get' : method;
	const op = item && item[opMethod];

	if (!op) {
		// an undocumented route or method: only the documented errors
		let body = null;
		try { body = JSON.parse(x.body); } catch (e) { /* checked below */ }
		const err = validate('/components/schemas/Error', body);
		if (!tpl && x.status !== 404 && x.status !== 401)
			problems.push(`no path of the document fits, and the answer is ${x.status}, not 404`);
		if (tpl && x.status !== 405)
			problems.push(`the document has no ${x.method} on ${tpl.t}, and the answer is ${x.status}, not 405`);
		if (tpl && x.status === 405) {
			const want = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase()).sort().join(', ');
			const got = (headers.allow || '').split(',').map((s) => s.trim()).filter((s) => s && s !== 'HEAD').sort().join(', ');
			if (want !== got)
				problems.push(`Allow is '${headers.allow}', the document has ${want}`);
		}
		if (err)
			problems.push(`the error body: ${err}`);
		if (problems.length)
			notOk(`${name}: ${problems.join('; ')}`);
		else
			ok(`${name}: ${tpl ? 'a method the document does not list: 405 with Allow' : 'no such route'}`);
		continue;
	}
	const key = `${opMethod.toUpperCase()} ${tpl.t}`;
	if (!exercised.has(key))
		exercised.set(key, new Set());
	exercised.get(key).add(x.status);

	// the response
	const responses = op.responses || {};
	const code = String(x.status);
	const listed = responses[code] || responses[code[0] + 'XX'] || responses.default;
	if (!listed) {
		problems.push(`status ${code} is not listed (${Object.keys(responses).join(', ')})`);
	} else {
		const [resp, rptr] = deref(listed, `/paths/${esc(tpl.t)}/${opMethod}/responses/${code}`);
		for (const [hname, hdef] of Object.entries(resp.headers || {})) {
			const [h] = deref(hdef, '');
			if (h && h.required && !(hname.toLowerCase() in headers))
				problems.push(`header ${hname} is missing`);
		}
		const content = resp.content || {};
		if (method === 'head') {
			if (x.body)
				problems.push('HEAD answered a body');
		} else if (Object.keys(content).length === 0) {
			if (x.body)
				problems.push('a body where the document has none');
		} else if (!content[ctype] && !content['*/*']) {
			problems.push(`content type '${ctype}' is not listed (${Object.keys(content).join(', ')})`);
		} else {
			const mt = content[ctype] ? ctype : '*/*';
			const sptr = `${rptr}/content/${esc(mt)}/schema`;
			let value = x.body;
			let parsed = true;
			if (mt === 'application/json') {
				try { value = JSON.parse(x.body); } catch (e) { parsed = false; problems.push(`not JSON: ${e.message}`); }
			} else if (mt === 'text/event-stream') {
				value = parseEvents(x.body);
			}
			if (parsed && at(sptr)) {
				const err = validate(sptr, value);
				if (err)
					problems.push(err);
			}
		}
	}

	// the request: what the server accepted the document accepts, and
	// what it refused as malformed the document refuses
	if (x.request !== undefined && x.request !== null && op.requestBody) {
		const [rb, rbptr] = deref(op.requestBody, `/paths/${esc(tpl.t)}/${opMethod}/requestBody`);
		if (rb.content && rb.content['application/json']) {
			const err = validate(`${rbptr}/content/application~1json/schema`, x.request);
			let ecode = null;
			try { ecode = JSON.parse(x.body).error.code; } catch (e) { /* not an error */ }
			if (x.status >= 200 && x.status < 300 && err)
				problems.push(`the server accepted a request the document refuses: ${err}`);
			if (['invalid_json', 'unknown_field', 'unknown_type'].includes(ecode) && !err)
				problems.push(`the server refused (${ecode}) a request the document accepts`);
		}
	}
	if (problems.length)
		notOk(`${name}: ${problems.join('; ')}`);
	else
		ok(`${name}: as documented`);
}

// every operation, exercised with a success
for (const t of Object.keys(doc.paths)) {
	for (const m of METHODS) {
		if (!doc.paths[t][m])
			continue;
		const key = `${m.toUpperCase()} ${t}`;
		const seen = [...(exercised.get(key) || [])].sort();
		if (seen.some((s) => s >= 200 && s < 300))
			ok(`${key} exercised (${seen.join(', ')})`);
		else
			notOk(`${key} never answered 2xx in the exchanges (${seen.join(', ') || 'none'})`);
	}
}

// the routes the server documents elsewhere are the document's operations
const norm = (p) => p.replace(/\{[^}]*\}/g, '{}');
const ops = new Set();
for (const t of Object.keys(doc.paths))
	for (const m of METHODS)
		if (doc.paths[t][m])
			ops.add(`${m.toUpperCase()} ${norm(t)}`);
for (const f of routeFiles) {
	const text = fs.readFileSync(f, 'utf8');
	const routes = new Set();
	// docs/API.md: | `GET /v1/queues/{q}/jobs?…` | ; routes.c: { "GET", "/healthz", …
	const re = f.endsWith('.md') ? /^\| `(GET|POST|PUT|DELETE|PATCH) (\/[^`?[\s]*)/gm
		: /\{\s*"(GET|POST|PUT|DELETE|PATCH)",\s*"(\/[^"]*)"/g;
	let m;
	while ((m = re.exec(text)))
		routes.add(`${m[1]} ${norm(m[2])}`);
	if (routes.size === 0) {
		notOk(`${f}: no routes found in it`);
		continue;
	}
	const missing = [...routes].filter((r) => !ops.has(r));
	const extra = [...ops].filter((r) => !routes.has(r));
	if (missing.length)
		notOk(`${f}: routes the document lacks: ${missing.join(', ')}`);
	else
		ok(`${f}: each of its ${routes.size} routes is in the document`);
	if (extra.length)
		notOk(`${f}: operations of the document it lacks: ${extra.join(', ')}`);
	else
		ok(`${f}: each operation of the document is among its routes`);
}
process.exit(failed ? 1 : 0);
