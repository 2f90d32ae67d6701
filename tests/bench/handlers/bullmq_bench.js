// bullmq_bench.js PORT KIND N CONCURRENCY: N jobs added to a BullMQ queue,
// then run by one Worker with CONCURRENCY. KIND: "true" (/bin/true),
// "oneshot" (oneshot.py), both spawned with the payload on stdin and
// stdout read, as wakeq's exec handlers are; "trivial" ({n} returned by
// the processor itself, BullMQ's own way of running code, against
// wakeq's persistent handler); "noop" (the processor returns nothing:
// wakeq's noop job). Prints "done=D span_s=S tput=J", from the first
// processor call to the last "completed" event.
//
// The phases alone (tests/bench/core.sh, so that the caller can count
// Redis CPU and commands around one of them):
//   bullmq_bench.js PORT add N BATCH    N noop jobs added, BATCH 1: one
//       Queue.add at a time, else Queue.addBulk of BATCH; prints
//       "n=N secs=S rate=J" (the adding alone, connection made before)
//   bullmq_bench.js PORT drain KIND N CONCURRENCY    the N jobs added
//       before, run as above (no adding)
'use strict';
const path = require('path');
const { spawn } = require('child_process');
const { performance } = require('perf_hooks');
const { Queue, Worker } = require('bullmq');

const args = process.argv.slice(2);
const phase = ['add', 'drain'].includes(args[1]) ? args.splice(1, 1)[0] : 'both';
const [port, kind, nText, concText] = phase === 'add' ? [args[0], 'noop', ...args.slice(1)] : args;
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

const works = {
  true: async (job) => { await run('/bin/true', [], JSON.stringify(job.data)); return null; },
  oneshot: async (job) => JSON.parse(await run(PY, [ONESHOT], JSON.stringify(job.data))),
  trivial: async (job) => ({ n: job.data.n }),
  noop: async () => undefined,
};

// add: N jobs of KIND, BATCH a call (1: Queue.add); seconds taken.
async function add(q, kind, n, batch) {
  const t0 = performance.now();
  for (let i = 0; i < n; i += batch) {
    if (batch === 1) {
      await q.add(kind, { n: i });
      continue;
    }
    const jobs = [];
    for (let k = i; k < Math.min(n, i + batch); k++) jobs.push({ name: kind, data: { n: k } });
    await q.addBulk(jobs);
  }
  return (performance.now() - t0) / 1000;
}

async function main() {
  const q = new Queue('bench', { connection });
  await q.waitUntilReady();
  if (phase === 'add') {
    const secs = await add(q, 'noop', N, Number(concText));
    await q.close();
    console.log(`n=${N} secs=${secs.toFixed(6)} rate=${(N / secs).toFixed(1)}`);
    return;
  }
  if (phase !== 'drain') await add(q, kind, N, 1000);
  const work = works[kind];
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
