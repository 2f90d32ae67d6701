#!/usr/bin/env node
// hookverify.js - a webhook receiver on loopback that checks every POST
// with two independent verifiers from the npm registry, the way a
// customer's endpoint would (docs/WEBHOOKS.md):
//
//   stripe            Stripe.webhooks.constructEvent on X-Wakeq-Signature
//                     (t=...,v1=... with the secret as written)
//   standardwebhooks  new Webhook(secret).verify on webhook-id,
//                     webhook-timestamp, webhook-signature ("whsec_"
//                     secrets base64-decoded, others as raw bytes)
//
//   NODE_PATH=DIR/node_modules node hookverify.js SECRET...
//
// Each SECRET is tried on its own with both libraries. Prints its port on
// the first line, then serves:
//   POST /hook  200 when every library accepted the delivery with at least
//               one SECRET, else 401; records the outcome
//   GET  /last  {"count":N,"body":{...},"headers":{...},"results":[{
//               "secret":S,"stripe":bool,"standard":bool,
//               "stripe_error":msg|null,"standard_error":msg|null},...]}
// Runs until killed.
'use strict';

const http = require('http');
const Stripe = require('stripe');
const { Webhook } = require('standardwebhooks');

const secrets = process.argv.slice(2);
if (secrets.length === 0) {
  process.stderr.write('usage: hookverify.js SECRET...\n');
  process.exit(2);
}

// The Standard Webhooks key of a wakeq secret (docs/WEBHOOKS.md): the
// library decodes "whsec_BASE64" itself; any other secret is its UTF-8
// bytes, which the library takes with format "raw".
function standardVerifier(secret) {
  if (secret.startsWith('whsec_')) return new Webhook(secret);
  return new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' });
}

function firstLine(e) {
  return String((e && e.message) || e).split('\n')[0];
}

function verify(secret, raw, headers) {
  const r = { secret, stripe: false, standard: false,
              stripe_error: null, standard_error: null };
  try {
    Stripe.webhooks.constructEvent(raw, headers['x-wakeq-signature'], secret);
    r.stripe = true;
  } catch (e) {
    r.stripe_error = firstLine(e);
  }
  try {
    standardVerifier(secret).verify(raw, {
      'webhook-id': headers['webhook-id'],
      'webhook-timestamp': headers['webhook-timestamp'],
      'webhook-signature': headers['webhook-signature'],
    });
    r.standard = true;
  } catch (e) {
    r.standard_error = firstLine(e);
  }
  return r;
}

let last = { count: 0, body: null, headers: null, results: [] };

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/hook') {
      const raw = Buffer.concat(chunks); // verified as received, unparsed
      const results = secrets.map((s) => verify(s, raw, req.headers));
      let body = null;
      try { body = JSON.parse(raw.toString('utf8')); } catch (e) { body = null; }
      last = { count: last.count + 1, body, headers: req.headers, results };
      const ok = results.some((r) => r.stripe) && results.some((r) => r.standard);
      res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ ok }));
      return;
    }
    if (req.method === 'GET' && req.url === '/last') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(last));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":"no route"}');
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
