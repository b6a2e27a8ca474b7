// The onnxruntime-web runner page: loads the model served by torchparity's
// loopback server into a wasm InferenceSession, then asks the server for one
// command at a time (run, time, quit) and posts the answers back, exchanging
// tensors as tensor files (docs/native-runner.md). Timing is done here around
// session.run with performance.now() (ort_web.py).
import { decode, encode, feeds, measure, outputs, timingConfig } from '/core.mjs';

const params = new URLSearchParams(location.search);
const oneLine = (err) => String(err && err.message ? err.message : err).split('\n')[0].slice(0, 500);
const answer = (status, body) => fetch(`/answer?status=${status}`, { method: 'POST', body: body ?? '' });

async function load() {
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.numThreads = Number(params.get('threads') || '1');
  const began = performance.now();
  const model = new Uint8Array(await (await fetch('/model.onnx')).arrayBuffer());
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['wasm'], graphOptimizationLevel: 'all',
  });
  const info = {
    user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated,
    // What ran: onnxruntime-web drops to 1 thread when the page is not cross-origin isolated.
    threads: ort.env.wasm.numThreads,
    load_s: (performance.now() - began) / 1000,
  };
  return { ort, session, info };
}

async function serve(ort, session) {
  const now = () => performance.now() / 1000;
  for (;;) {
    const line = (await (await fetch('/command')).text()).trim();
    const [command, ...words] = line.split(/\s+/);
    if (command === 'wait') continue; // the server's long poll timed out
    if (command === 'quit') return;
    try {
      const inputs = decode(new Uint8Array(await (await fetch('/inputs.bin')).arrayBuffer()));
      const feed = feeds(ort, session, inputs);
      if (command === 'run') {
        const file = encode(outputs(session, await session.run(feed)));
        await fetch('/outputs.bin', { method: 'POST', body: file });
        await answer('ok');
      } else if (command === 'time') {
        const result = await measure(() => session.run(feed), now, timingConfig(words));
        await answer('ok', JSON.stringify(result));
      } else {
        await answer('error', `unknown command ${command}`);
      }
    } catch (err) {
      await answer('error', `${command}: ${oneLine(err)}`);
    }
  }
}

async function main() {
  let loaded;
  try {
    loaded = await load();
  } catch (err) {
    await answer('error', `load: ${oneLine(err)}`);
    return;
  }
  await answer('ready', JSON.stringify(loaded.info));
  document.getElementById('state').textContent = 'ready';
  await serve(loaded.ort, loaded.session);
  document.getElementById('state').textContent = 'done';
}

main();
