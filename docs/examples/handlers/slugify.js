#!/usr/bin/env node
// A wakeq exec handler in Node (one-shot: one process per job).
//
// stdin: the payload JSON; stdout: the result JSON; fd 3: progress lines;
// stderr: logs; exit 0 = done, 75 = try again later, other = failed.
//
// Run it by hand:  echo '{"title":"Hello World"}' | ./slugify.js 3>/dev/null
'use strict';
const fs = require('fs');

function progress(percent, stage) {
  try {
    fs.writeSync(3, JSON.stringify({ progress: percent, stage }) + '\n');
  } catch (e) {
    // run by hand, without fd 3
  }
}

const payload = JSON.parse(fs.readFileSync(0, 'utf8'));
if (payload.fail === 'transient') {
  console.error('rate limited, try again later');
  process.exit(75);
}
progress(50, 'slugify');
const slug = String(payload.title || '')
  .normalize('NFKD')
  .replace(/[\u0300-\u036f]/g, '')
  .toLowerCase()
  .replace(/[^a-z0-9]+/g, '-')
  .replace(/^-+|-+$/g, '');
process.stdout.write(JSON.stringify({ slug, job: process.env.WAKEQ_JOB_ID }));
