#!/usr/bin/env node
// tests/trace/node/check.js - validates a cpprof trace (Chrome Trace Event
// JSON) with parsers cpprof does not own: V8's JSON.parse and
// @tracerbench/trace-model's buildModel (which pairs B/E into slices,
// nests them per thread and names threads from metadata events), then
// checks the structural promises of docs/trace.md and the expectations the
// C test passes on the command line.  Exit 0 when everything holds; on
// failure prints every broken expectation and exits 1.
//
// Usage: node check.js TRACE.json [--threads a,b] [--nested outer/inner,...]
//        [--task NAME] [--log CAT:MSG] [--wait THREAD:KIND:US:TOL]
//        [--region-dur NAME:US:TOL] [--sample-fn NAME] [--max-lost N]
//        [--thread-life a,b] [--samples-on THREAD:FN:MIN]
'use strict';

const fs = require('fs');
const { buildModel } = require('@tracerbench/trace-model');

const failures = [];
function fail(msg) { failures.push(msg); }

const argv = process.argv.slice(2);
const file = argv.shift();
const opts = {};
while (argv.length) {
  const k = argv.shift();
  if (!k.startsWith('--') || !argv.length) {
    console.error(`bad argument ${k}`);
    process.exit(2);
  }
  opts[k.slice(2)] = argv.shift();
}

const trace = JSON.parse(fs.readFileSync(file, 'utf8'));
if (!Array.isArray(trace.traceEvents)) {
  console.error('no traceEvents array');
  process.exit(1);
}
const events = trace.traceEvents;
const model = buildModel(trace);

// ---- structure, per thread track: monotonic, balanced B/E
const tracks = new Map();
for (const e of events) {
  if (!['B', 'E', 'X', 'i'].includes(e.ph) || (e.ph === 'i' && e.s !== 't')) {
    continue;
  }
  const key = `${e.pid}/${e.tid}`;
  let t = tracks.get(key);
  if (!t) tracks.set(key, (t = { last: -Infinity, depth: 0 }));
  if (typeof e.ts !== 'number') fail(`event without numeric ts: ${JSON.stringify(e)}`);
  if (e.ts < t.last) fail(`track ${key}: ts ${e.ts} after ${t.last} (not monotonic)`);
  t.last = e.ts;
  if (e.ph === 'X') {
    if (!(e.dur >= 0)) fail(`X event without dur: ${JSON.stringify(e)}`);
    t.last = e.ts + e.dur; // the thread was inside the slice until then
  }
  if (e.ph === 'B') t.depth++;
  if (e.ph === 'E' && --t.depth < 0) fail(`track ${key}: E without B at ts ${e.ts}`);
}
for (const [key, t] of tracks) {
  if (t.depth !== 0) fail(`track ${key}: ${t.depth} B without E`);
}

// ---- async task events: each b has exactly one later e
const asyncs = new Map();
for (const e of events) {
  if (e.ph !== 'b' && e.ph !== 'e') continue;
  const key = `${e.cat}/${e.id}`;
  let a = asyncs.get(key);
  if (!a) asyncs.set(key, (a = { b: [], e: [] }));
  a[e.ph].push(e);
}
for (const [key, a] of asyncs) {
  if (a.b.length !== 1 || a.e.length !== 1) {
    fail(`async ${key}: ${a.b.length} begin(s), ${a.e.length} end(s)`);
  } else if (a.e[0].ts < a.b[0].ts) {
    fail(`async ${key}: ends before it begins`);
  }
}

// ---- stack frames referenced by samples exist, parents too
const frames = trace.stackFrames || {};
function frameChain(sf) {
  const names = [];
  for (let id = sf, n = 0; id !== undefined && n < 1000; n++) {
    const f = frames[id];
    if (!f) { fail(`stack frame ${id} missing`); break; }
    names.push(f.name);
    id = f.parent;
  }
  return names;
}
const samples = events.filter((e) => e.sf !== undefined);
for (const s of samples) frameChain(s.sf);

// ---- the model's view: threads by name, slices with parents
const threads = [];
for (const p of model.processes) for (const t of p.threads) threads.push(t);
function threadNamed(name) { return threads.find((t) => t.name === name); }

if (opts.threads) {
  for (const name of opts.threads.split(',')) {
    if (!threadNamed(name)) {
      fail(`no thread named ${name} (have: ${threads.map((t) => t.name).join(', ')})`);
    }
  }
}

if (opts.nested) {
  for (const pair of opts.nested.split(',')) {
    const [outer, inner] = pair.split('/');
    const found = model.events.some((e) => e.ph === 'X' && e.name === inner &&
      e.parent && e.parent.name === outer && e.parent.tid === e.tid);
    if (!found) fail(`no region ${inner} nested in ${outer}`);
  }
}

if (opts.task) {
  const b = events.find((e) => e.ph === 'b' && e.name === opts.task);
  const e = b && events.find((x) => x.ph === 'e' && x.id === b.id && x.cat === b.cat);
  if (!b || !e) {
    fail(`task ${opts.task} has no begin/end`);
  } else {
    if (b.tid === e.tid) fail(`task ${opts.task} begins and ends on one thread`);
    const id = parseInt(b.id, 16);
    const regionTids = new Set(events.filter((x) => x.ph === 'B' && x.args &&
      x.args.task === id).map((x) => x.tid));
    if (regionTids.size < 2) {
      fail(`task ${opts.task}: regions on ${regionTids.size} thread(s), want 2`);
    }
  }
}

if (opts.log) {
  const [cat, msg] = opts.log.split(':');
  const found = events.some((e) => e.ph === 'i' && e.args &&
    e.args.category === cat && e.args.message === msg);
  if (!found) fail(`no log event ${cat}: ${msg}`);
}

if (opts.wait) {
  const [tname, kind, us, tol] = opts.wait.split(':');
  const t = threadNamed(tname);
  const want = Number(us);
  const waits = t ? t.events.filter((e) => e.ph === 'X' && [].concat(e.cat).includes('wait') &&
    e.args.kind === kind) : [];
  const best = waits.reduce((m, e) => (m && m.end - m.start >= e.end - e.start ? m : e), undefined);
  if (!best) {
    fail(`no ${kind} wait on thread ${tname}`);
  } else {
    const got = best.end - best.start;
    if (Math.abs(got - want) > want * Number(tol)) {
      fail(`${kind} wait on ${tname}: ${got} us, want ${want} us +-${tol * 100}%`);
    }
    if (!/^0x[0-9a-f]+$/.test(best.args.object)) fail('wait without object address');
  }
}

if (opts['region-dur']) {
  // A region's length against the test's own CLOCK_MONOTONIC reading:
  // checks the TSC -> ns conversion.
  const [name, us, tol] = opts['region-dur'].split(':');
  const r = model.events.find((e) => e.ph === 'X' && e.name === name);
  const want = Number(us);
  if (!r) {
    fail(`no region ${name}`);
  } else if (Math.abs((r.end - r.start) - want) > want * Number(tol)) {
    fail(`region ${name}: ${r.end - r.start} us, want ${want} us +-${tol * 100}%`);
  }
}

if (opts['sample-fn']) {
  const ok = samples.some((s) => frameChain(s.sf).some((n) => n.includes(opts['sample-fn'])));
  if (!ok) fail(`no CPU sample with ${opts['sample-fn']} on its stack`);
}

// The raw events of the track of the thread the model names `name`.
function trackOf(name) {
  const t = threadNamed(name);
  if (!t) return undefined;
  return events.filter((e) => e.tid === t.id && e.ph !== 'M');
}

if (opts['thread-life']) {
  // Each thread's track opens with its start and closes with its exit.
  for (const name of opts['thread-life'].split(',')) {
    const track = trackOf(name);
    if (!track) { fail(`no thread named ${name}`); continue; }
    const starts = track.filter((e) => e.cat === 'thread' && e.name === 'thread start');
    const exits = track.filter((e) => e.cat === 'thread' && e.name === 'thread exit');
    if (starts.length !== 1 || exits.length !== 1) {
      fail(`thread ${name}: ${starts.length} start(s), ${exits.length} exit(s), want 1 and 1`);
      continue;
    }
    const t0 = starts[0].ts, t1 = exits[0].ts;
    for (const e of track) {
      const end = e.ph === 'X' ? e.ts + e.dur : e.ts;
      if (e.ts < t0 || end > t1) {
        fail(`thread ${name}: ${e.ph} ${e.name} at ${e.ts} outside its life ${t0}..${t1}`);
      }
    }
  }
}

if (opts['samples-on']) {
  // CPU samples with FN on their stack: at least MIN on THREAD, none
  // elsewhere (FN runs on THREAD only).
  const [tname, fn, min] = opts['samples-on'].split(':');
  const t = threadNamed(tname);
  const withFn = samples.filter((s) => frameChain(s.sf).some((n) => n.includes(fn)));
  const mine = t ? withFn.filter((s) => s.tid === t.id) : [];
  const elsewhere = withFn.length - mine.length;
  if (!t) fail(`no thread named ${tname}`);
  if (mine.length < Number(min)) {
    fail(`${mine.length} CPU samples with ${fn} on ${tname}, want >= ${min}`);
  }
  if (elsewhere > 0) fail(`${elsewhere} CPU samples with ${fn} on other threads`);
  if (t) console.log(`${mine.length} CPU samples with ${fn} on ${tname}`);
}

const lost = trace.otherData ? trace.otherData.lost_events : undefined;
if (typeof lost !== 'number') fail('otherData.lost_events missing');
if (opts['max-lost'] !== undefined && lost > Number(opts['max-lost'])) {
  fail(`${lost} events lost, want <= ${opts['max-lost']}`);
}

if (failures.length) {
  for (const f of failures) console.log(`FAIL: ${f}`);
  process.exit(1);
}
console.log(`ok: ${events.length} events, ${threads.length} threads, ` +
  `${model.events.filter((e) => e.ph === 'X').length} slices, ${samples.length} samples`);
