// The onnxruntime-node generation loop (--mode generate): a Node service's
// greedy loop over the past-kv-io .onnx file (optimum's layout: input_ids,
// attention_mask, position_ids, past_key_values.N.key/value in; logits,
// present.N.key/value out). Prefill, then one token per sequence per decode
// call, each call's present tensors fed back as the next call's past.
//   node generate_runner.mjs --artifact M.onnx --inputs IN.bin --outputs OUT.bin
//        --steps N --threads T
// IN.bin (tensor file): input_ids [B,P] and attention_mask [B,P] (int64),
// past_key_values.* (the empty past, [B,H,0,D]), and optionally forced [B,N]
// (int64: teacher forcing, forced[:, i] fed at decode call i; else greedy, the
// argmax of each step's logits, ties to the lowest id). OUT.bin: prefill_logits
// [B,P,V] and step_logits [N+1,B,V] (step_logits[i] chooses token i+1; [0] is
// prefill's last position). One JSON line on stdout: versions and timings.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { decode, encode } from './core.mjs';

const require = createRequire(import.meta.url);

function args() {
  const a = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['artifact', 'inputs', 'outputs', 'steps', 'threads']) {
    if (!a[key]) throw new Error(`--${key} is required`);
  }
  return a;
}

/** Row b's logits at sequence position `at` of a [B,S,V] tensor. */
function rowLogits(t, b, at) {
  const [, seq, vocab] = t.dims;
  const start = (b * seq + at) * vocab;
  return t.data.subarray(start, start + vocab);
}

/** argmax, ties to the lowest id (as torch.argmax). */
function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

const int64 = (ort, values, dims) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);

async function generate(ort, session, inputs, steps) {
  const byName = Object.fromEntries(inputs.map((t) => [t.name, t]));
  const ids = byName.input_ids;
  const [batch, promptLen] = ids.dims;
  const mask = Array.from(byName.attention_mask.data, Number);
  const forced = byName.forced ? Array.from(byName.forced.data, Number) : null;
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  // Positions count real tokens only (left padding: 0 there), as generate() does.
  const rows = Array.from({ length: batch }, (_, b) => mask.slice(b * promptLen, (b + 1) * promptLen));
  const positions = rows.flatMap((r) => { let c = -1; return r.map((m) => Math.max((c += m), 0)); });
  const next = rows.map((r) => r.reduce((s, m) => s + m, 0));
  let feed = {
    input_ids: new ort.Tensor('int64', ids.data, ids.dims),
    attention_mask: int64(ort, mask, [batch, promptLen]),
    position_ids: int64(ort, positions, [batch, promptLen]),
  };
  for (const n of pastNames) feed[n] = new ort.Tensor(byName[n].type, byName[n].data, byName[n].dims);
  const times = [];
  let began = performance.now();
  let out = await session.run(feed);
  times.push(performance.now() - began);
  const prefill = out.logits;
  const vocab = prefill.dims[2];
  const steps_ = [Float32Array.from({ length: batch * vocab }, (_, k) =>
    rowLogits(prefill, Math.floor(k / vocab), promptLen - 1)[k % vocab])];
  let width = promptLen;
  for (let i = 0; i < steps; i++) {
    const last = steps_[steps_.length - 1];
    const tokens = Array.from({ length: batch }, (_, b) =>
      forced ? forced[b * steps + i] : argmax(last.subarray(b * vocab, (b + 1) * vocab)));
    for (let b = batch - 1; b >= 0; b--) rows[b].push(1);
    width += 1;
    feed = {
      input_ids: int64(ort, tokens, [batch, 1]),
      attention_mask: int64(ort, rows.flat(), [batch, width]),
      position_ids: int64(ort, next, [batch, 1]),
    };
    pastNames.forEach((n) => { feed[n] = out[n.replace('past_key_values.', 'present.')]; });
    next.forEach((p, b) => { next[b] = p + 1; });
    began = performance.now();
    out = await session.run(feed);
    times.push(performance.now() - began);
    steps_.push(Float32Array.from(out.logits.data));
  }
  const stepData = new Float32Array(steps_.length * batch * vocab);
  steps_.forEach((s, i) => stepData.set(s, i * batch * vocab));
  return {
    tensors: [
      { name: 'prefill_logits', type: 'float32', dims: Array.from(prefill.dims), data: prefill.data },
      { name: 'step_logits', type: 'float32', dims: [steps_.length, batch, vocab], data: stepData },
    ],
    times_ms: times,
  };
}

async function main() {
  const a = args();
  const ort = require('onnxruntime-node');
  const session = await ort.InferenceSession.create(a.artifact, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Number(a.threads),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const inputs = decode(new Uint8Array(readFileSync(a.inputs)));
  const result = await generate(ort, session, inputs, Number(a.steps));
  writeFileSync(a.outputs + '.tmp', encode(result.tensors));
  renameSync(a.outputs + '.tmp', a.outputs);
  process.stdout.write(JSON.stringify({
    onnxruntime_node: require('onnxruntime-node/package.json').version,
    node: process.versions.node,
    prefill_ms: result.times_ms[0],
    decode_ms: result.times_ms.slice(1),
  }) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
