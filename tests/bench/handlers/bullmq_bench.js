// bullmq_bench.js PORT KIND N CONCURRENCY: N jobs added to a BullMQ queue,
// then run by one Worker with CONCURRENCY. KIND: "true" (/bin/true),
// "oneshot" (oneshot.py), both spawned with the payload on stdin and
// stdout read, as wakeq's exec handlers are; "trivial" ({n} returned by
// the processor itself, BullMQ's own way of running code, against
// wakeq's persistent handler). Prints "done=D span_s=S tput=J", from the
// first processor call to the last "completed" event.
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { performance } = require('perf_hooks');
const { Queue, Worker } = require('bullmq');

const [port, kind, nText, concText] = process.argv.slice(2);
const N = Number(nText);
const connection = { host: '127.0.0.1', port: Number(port) };
const PY = '/usr/bin/python3';
const ONESHOT = path.join(__dirname, 'oneshot.py');

function run(prog, args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(prog, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks = [];
    p.stdout.on('data', (c) => chunks.push(c));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks).toString())
                                        : reject(new Error(`${prog} exited ${code}`))));
    p.stdin.on('error', () => {}); // /bin/true does not read it
    p.stdin.end(input + '\n');
  });
}

const work = {
  true: async (job) => { await run('/bin/true', [], JSON.stringify(job.data)); return null; },
  oneshot: async (job) => JSON.parse(await run(PY, [ONESHOT], JSON.stringify(job.data))),
  trivial: async (job) => ({ n: job.data.n }),
}[kind];

async function main() {
  const q = new Queue('bench', { connection });
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let k = i; k < Math.min(N, i + 1000); k++) batch.push({ name: kind, data: { n: k } });
    await q.addBulk(batch);
  }
  let first = 0;
  let done = 0;
  let failed = 0;
  const finished = new Promise((resolve) => {
    const w = new Worker('bench', async (job) => {
      if (!first) first = performance.now();
      return work(job);
    }, { connection, concurrency: Number(concText) });
    const end = () => { if (done + failed === N) resolve([w, performance.now()]); };
    w.on('completed', () => { done++; end(); });
    w.on('failed', (job, err) => { failed++; console.error(err.message); end(); });
  });
  const [w, last] = await finished;
  await w.close();
  await q.close();
  if (failed) {
    console.error(`bullmq_bench: ${failed} of ${N} jobs failed`);
    process.exit(1);
  }
  const span = (last - first) / 1000;
  console.log(`done=${done} span_s=${span.toFixed(6)} tput=${(N / span).toFixed(1)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
