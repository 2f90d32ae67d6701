// bullmq_idle.js PORT WORKERS SECONDS: WORKERS BullMQ Workers, default
// options (as an always-on deployment runs them), on an empty queue of
// the Redis at 127.0.0.1:PORT. Prints "ready" once every worker runs,
// then "end" SECONDS later, and closes them: the caller counts the Redis
// commands sent between the two lines (an idle queue's polling cost).
'use strict';
const { Worker } = require('bullmq');

const [port, nText, secsText] = process.argv.slice(2);
const connection = { host: '127.0.0.1', port: Number(port) };

async function main() {
  const workers = [];
  for (let i = 0; i < Number(nText); i++) {
    workers.push(new Worker('idle', async () => null, { connection }));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  // let the start-up commands (script loads, the first checks) pass
  await new Promise((r) => setTimeout(r, 1000));
  console.log('ready');
  await new Promise((r) => setTimeout(r, Number(secsText) * 1000));
  console.log('end');
  await Promise.all(workers.map((w) => w.close(true)));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
