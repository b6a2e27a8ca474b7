// The onnxruntime-node runner: loads one .onnx model into an InferenceSession
// and answers the runner protocol of docs/native-runner.md on stdin/stdout
// (run, time, quit), exchanging tensors as tensor files in --workdir.
//   node node_runner.mjs --artifact M.onnx --workdir DIR --threads N --parent-pid PID
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { decode, encode, feeds, measure, outputs, timingConfig } from './core.mjs';

const PREFIX = '@@torchparity ';
const require = createRequire(import.meta.url);

function args() {
  const a = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['artifact', 'workdir', 'threads']) {
    if (!a[key]) throw new Error(`--${key} is required`);
  }
  return a;
}

const say = (status, payload) =>
  process.stdout.write(`${PREFIX}${status}${payload === undefined ? '' : ' ' + payload}\n`);
const oneLine = (err) => String(err && err.message ? err.message : err).split('\n')[0].slice(0, 500);

async function main() {
  const a = args();
  if (a['parent-pid']) {
    // Exit with the parent (a worker killed for --timeout): signal 0 only checks.
    setInterval(() => {
      try { process.kill(Number(a['parent-pid']), 0); } catch { process.exit(3); }
    }, 1000).unref();
  }
  const began = performance.now();
  let ort, session;
  try {
    ort = require('onnxruntime-node');
    session = await ort.InferenceSession.create(a.artifact, {
      executionProviders: ['cpu'],
      intraOpNumThreads: Number(a.threads),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    say('error', 'load: ' + oneLine(err));
    process.exit(1);
  }
  const version = require('onnxruntime-node/package.json').version;
  say('ready', JSON.stringify({
    onnxruntime_node: version, node: process.versions.node,
    load_s: (performance.now() - began) / 1000, threads: Number(a.threads),
  }));
  const now = () => performance.now() / 1000;
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [command, ...words] = line.trim().split(/\s+/);
    try {
      if (command === 'quit') break;
      const inputs = decode(new Uint8Array(readFileSync(join(a.workdir, 'inputs.bin'))));
      const feed = feeds(ort, session, inputs);
      if (command === 'run') {
        const file = join(a.workdir, 'outputs.bin');
        writeFileSync(file + '.tmp', encode(outputs(session, await session.run(feed))));
        renameSync(file + '.tmp', file);
        say('ok');
      } else if (command === 'time') {
        const config = timingConfig(words);
        say('ok', JSON.stringify(await measure(() => session.run(feed), now, config)));
      } else {
        say('error', `unknown command ${command}`);
      }
    } catch (err) {
      say('error', `${command}: ${oneLine(err)}`);
    }
  }
  process.exit(0);
}

main().catch((err) => { say('error', oneLine(err)); process.exit(1); });
