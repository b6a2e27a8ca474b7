// What the Node runner and the browser page share: the tensor file format of
// docs/native-runner.md (TPTENSOR v1), tensors to and from ONNX Runtime's JS
// API, and the timing loop of docs/measurement.md (as the C++ runner runs it).

const MAGIC = 'TPTENSOR';
const VERSION = 1;

// dtype code -> [ONNX Runtime type, element size]; bfloat16 (4) and complex
// (11, 12) have no ONNX Runtime JS tensor type.
const TYPES = {
  1: ['float64', 8], 2: ['float32', 4], 3: ['float16', 2], 5: ['int64', 8],
  6: ['int32', 4], 7: ['int16', 2], 8: ['int8', 1], 9: ['uint8', 1], 10: ['bool', 1],
};
const CODES = Object.fromEntries(Object.entries(TYPES).map(([code, [type]]) => [type, Number(code)]));
// Typed arrays over the raw little-endian bytes. float16 travels as its bits
// (Node 20 has no Float16Array); ONNX Runtime takes Uint16Array for float16.
const ARRAYS = {
  float64: Float64Array, float32: Float32Array, float16: Uint16Array, int64: BigInt64Array,
  int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

/** Decode a tensor file (Uint8Array) into [{name, type, dims, data}]. */
export function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder();
  if (bytes.byteLength < 16 || text.decode(bytes.subarray(0, 8)) !== MAGIC) {
    throw new Error('not a torchparity tensor file');
  }
  if (view.getUint32(8, true) !== VERSION) throw new Error('tensor file version is not 1');
  const count = view.getUint32(12, true);
  const out = [];
  let at = 16;
  for (let i = 0; i < count; i++) {
    const nameLen = view.getUint32(at, true);
    const name = text.decode(bytes.subarray(at + 4, at + 4 + nameLen));
    at += 4 + nameLen;
    const code = view.getUint8(at);
    const ndim = view.getUint8(at + 1);
    at += 4;
    if (!(code in TYPES)) throw new Error(`dtype code ${code} has no ONNX Runtime JS type`);
    const dims = [];
    for (let d = 0; d < ndim; d++) dims.push(Number(view.getBigInt64(at + 8 * d, true)));
    at += 8 * ndim;
    const nbytes = Number(view.getBigUint64(at, true));
    at += 8;
    const [type, size] = TYPES[code];
    // A copy: typed arrays need their element alignment.
    const raw = bytes.slice(at, at + nbytes);
    at += nbytes;
    out.push({ name, type, dims, data: new ARRAYS[type](raw.buffer, 0, nbytes / size) });
  }
  return out;
}

/** Encode [{name, type, dims, data}] as a tensor file (Uint8Array). */
export function encode(tensors) {
  const enc = new TextEncoder();
  const parts = [];
  const header = new Uint8Array(16);
  header.set(enc.encode(MAGIC));
  new DataView(header.buffer).setUint32(8, VERSION, true);
  new DataView(header.buffer).setUint32(12, tensors.length, true);
  parts.push(header);
  for (const t of tensors) {
    if (!(t.type in CODES)) throw new Error(`output ${t.name}: type ${t.type} has no tensor file code`);
    const name = enc.encode(t.name);
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const head = new Uint8Array(4 + name.length + 4 + 8 * t.dims.length + 8);
    const view = new DataView(head.buffer);
    view.setUint32(0, name.length, true);
    head.set(name, 4);
    let at = 4 + name.length;
    view.setUint8(at, CODES[t.type]);
    view.setUint8(at + 1, t.dims.length);
    at += 4;
    t.dims.forEach((d, i) => view.setBigInt64(at + 8 * i, BigInt(d), true));
    at += 8 * t.dims.length;
    view.setBigUint64(at, BigInt(data.byteLength), true);
    parts.push(head, data);
  }
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const file = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { file.set(p, at); at += p.byteLength; }
  return file;
}

/** The session's feeds for decoded input tensors, in the graph's input order. */
export function feeds(ort, session, inputs) {
  if (inputs.length !== session.inputNames.length) {
    throw new Error(`the ONNX graph takes ${session.inputNames.length} inputs, got ${inputs.length}`);
  }
  const feed = {};
  session.inputNames.forEach((name, i) => {
    const t = inputs[i];
    feed[name] = new ort.Tensor(t.type, t.data, t.dims);
  });
  return feed;
}

/** The outputs of a run as tensors to encode, in the graph's output order. */
export function outputs(session, result) {
  return session.outputNames.map((name) => {
    const t = result[name];
    return { name, type: t.type, dims: Array.from(t.dims), data: t.data };
  });
}

/** The timing loop of docs/measurement.md, awaiting ``call`` (one session.run);
 *  ``now`` gives seconds. Returns {samples_s, number, warmup_calls}. */
export async function measure(call, now, c) {
  const block = async (number) => {
    const start = now();
    for (let i = 0; i < number; i++) await call();
    return now() - start;
  };
  let warmupCalls = 0;
  let fastest = Infinity;
  const began = now();
  for (;;) {
    const t = await block(1);
    warmupCalls += 1;
    fastest = Math.min(fastest, t);
    const elapsed = now() - began;
    const settled = warmupCalls >= 2 && t <= 1.2 * fastest;
    if ((elapsed >= c.warmup_time && settled) || elapsed >= c.max_warmup_time) break;
  }
  const target = c.min_time / c.min_repeats;
  let number = 1;
  let t = 0;
  for (;;) {
    t = await block(number);
    if (t >= target || number >= 10000000) break;
    // Jump towards the target, at most x100 per step, at least x2.
    const next = Math.ceil(number * (target / Math.max(t, 1e-9)) * 1.2);
    number = Math.min(Math.max(2 * number, next), 100 * number);
  }
  const samples = [t / number];
  let total = t;
  while ((total < c.min_time || samples.length < c.min_repeats) &&
         samples.length < c.max_repeats && total < c.max_time) {
    t = await block(number);
    samples.push(t / number);
    total += t;
  }
  return { samples_s: samples, number, warmup_calls: warmupCalls };
}

/** The six numbers of a `time` command, by name. */
export function timingConfig(words) {
  const n = words.map(Number);
  if (n.length !== 6 || n.some(Number.isNaN)) throw new Error('time needs 6 numbers');
  const [min_time, min_repeats, max_repeats, max_time, warmup_time, max_warmup_time] = n;
  return { min_time, min_repeats, max_repeats, max_time, warmup_time, max_warmup_time };
}
