// The official OpenAI SDK for Node (npm "openai", pinned in package.json)
// against a real dserve_server started with --http_port: a client this
// project did not write. Run by openai_sdk_test.sh (bazel) as
//   node openai_sdk_test.mjs <dserve_server> <dserve_worker> <openai module dir>
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [server, worker, sdkDir] = process.argv.slice(2);
const { default: OpenAI } = await import(pathToFileURL(path.join(sdkDir, 'index.mjs')).href);
const TMP = process.env.TEST_TMPDIR || '/tmp';
const TOKEN = 'sdk-test-token';
const failures = [];

function check(ok, what) {
  console.log((ok ? 'ok: ' : 'FAIL: ') + what);
  if (!ok) failures.push(what);
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// PNG signature, IHDR CRC-checked size, IEND at the end.
function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 45 || !buf.subarray(0, 8).equals(sig)) return null;
  if (buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  if (buf.toString('latin1', buf.length - 8, buf.length - 4) !== 'IEND') return null;
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

async function expectError(promise, status, what) {
  try {
    await promise;
    check(false, `${what}: expected HTTP ${status}, the call succeeded`);
    return null;
  } catch (e) {
    const body = e.error || {};
    check(e instanceof OpenAI.APIError && e.status === status &&
          typeof body.message === 'string' && typeof body.type === 'string' &&
          'param' in body && 'code' in body,
          `${what}: HTTP ${e.status} ${JSON.stringify(body)}`);
    return e;
  }
}

const grpcPort = await freePort();
const httpPort = await freePort();
fs.writeFileSync(path.join(TMP, 'token'), TOKEN + '\n');
const log = fs.openSync(path.join(TMP, 'server.log'), 'w');
const proc = spawn(server, [
  `--port=${grpcPort}`, `--http_port=${httpPort}`, '--host=127.0.0.1',
  '--replicas=1', '--worker_threads=1', '--queue_capacity=16',
  `--worker_binary=${worker}`, `--auth_token_file=${path.join(TMP, 'token')}`,
  '--grace_period_s=1',
], { stdio: ['ignore', log, log] });
const base = `http://127.0.0.1:${httpPort}`;

try {
  // /health answers as soon as the port is bound; /ready once a replica is.
  let ready = false;
  for (const end = Date.now() + 120000; Date.now() < end && !ready;) {
    try { ready = (await fetch(`${base}/ready`)).status === 200; } catch {}
    if (!ready) await new Promise((r) => setTimeout(r, 200));
  }
  check(ready, 'GET /ready answers 200 once a replica is ready');
  check((await fetch(`${base}/health`)).status === 200, 'GET /health answers 200');
  const noAuth = await fetch(`${base}/v1/models`);
  check(noAuth.status === 401 && (await noAuth.json()).error.type === 'authentication_error',
        'no token: 401 with an OpenAI error body');
  const lower = await fetch(`${base}/v1/models`, { headers: { authorization: `bearer ${TOKEN}` } });
  check(lower.status === 200, 'the "bearer" scheme is case-insensitive');

  const client = new OpenAI({ apiKey: TOKEN, baseURL: `${base}/v1`, maxRetries: 0 });

  const models = await client.models.list();
  const model = models.data.find((m) => m.is_default);
  check(model && model.object === 'model' && typeof model.id === 'string',
        `models.list() lists the default model: ${model && model.id}`);
  const h = model.size_step * 4;
  const w = 2 * h;
  const size = `${w}x${h}`;

  const images = await client.images.generate({
    model: model.id, prompt: 'a red circle on a blue background, top left',
    n: 2, size, response_format: 'b64_json', steps: 2, seed: 5,
  });
  check(images.data.length === 2, `images.generate n=2 returns 2 images`);
  const pngs = images.data.map((d) => Buffer.from(d.b64_json, 'base64'));
  for (const [i, png] of pngs.entries()) {
    const got = pngSize(png);
    check(got && got[0] === w && got[1] === h, `image ${i} is a valid ${size} PNG: ${got}`);
  }
  check(!pngs[0].equals(pngs[1]), 'the n images differ (seeds 5 and 6)');
  const again = await client.images.generate({
    model: model.id, prompt: 'a red circle on a blue background, top left',
    size, steps: 2, seed: 6,
  });
  check(Buffer.from(again.data[0].b64_json, 'base64').equals(pngs[1]),
        'seed 6 alone gives the second image of the n=2 request');

  await expectError(client.images.generate({ model: model.id, prompt: 'x', size: 'big' }),
                    400, 'size "big" is refused');
  const e = await expectError(
      client.images.generate({ model: model.id, prompt: 'x', size: `${w + 1}x${h}`, steps: 2 }),
      400, 'a width off the size step is refused by the gRPC path\'s validator');
  check(e && e.error.type === 'invalid_request_error' && e.error.code === 'invalid_argument' &&
        /width/.test(e.error.message), `  ... naming the width: ${e && e.error.message}`);
  const url = await expectError(
      client.images.generate({ model: model.id, prompt: 'x', response_format: 'url' }),
      400, 'response_format "url" is refused');
  check(url && url.error.param === 'response_format', '  ... with param response_format');
  await expectError(client.images.generate({ model: 'no-such-model', prompt: 'x' }),
                    404, 'an unknown model is 404');
  await expectError(new OpenAI({ apiKey: 'wrong', baseURL: `${base}/v1`, maxRetries: 0 })
                        .models.list(), 401, 'a wrong token is 401');

  // Videos: the async job API.
  const video = await client.videos.create({
    model: model.id, prompt: 'a red circle moving right', size,
    num_frames: 3, fps: 4, steps: 2, seed: 3,
  });
  check(video.object === 'video' && typeof video.id === 'string' &&
        ['queued', 'in_progress'].includes(video.status),
        `videos.create returns a job: ${video.id} ${video.status}`);
  let v = video;
  for (const end = Date.now() + 120000; Date.now() < end &&
       !['completed', 'failed'].includes(v.status);) {
    await new Promise((r) => setTimeout(r, 200));
    v = await client.videos.retrieve(video.id);
  }
  check(v.status === 'completed' && v.progress === 100 && v.size === size,
        `videos.retrieve reaches completed: ${JSON.stringify(v)}`);
  const content = Buffer.from(await (await client.videos.downloadContent(video.id)).arrayBuffer());
  check(content.length > 100 && content.toString('latin1', 4, 8) === 'ftyp',
        `videos.downloadContent returns an MP4 (${content.length} bytes)`);

  const listed = await client.videos.list();
  check(listed.data.some((x) => x.id === video.id), 'videos.list includes it');

  const long = await client.videos.create({
    model: model.id, prompt: 'slow', size, num_frames: 3, fps: 4,
    steps: model.max_steps || 200, seed: 4,
  });
  const deleted = await client.videos.delete(long.id);
  check(deleted.deleted === true && deleted.object === 'video.deleted' && deleted.id === long.id,
        `videos.delete answers ${JSON.stringify(deleted)}`);
  let d = await client.videos.retrieve(long.id);
  for (const end = Date.now() + 30000; Date.now() < end && d.status !== 'failed';) {
    await new Promise((r) => setTimeout(r, 100));
    d = await client.videos.retrieve(long.id);
  }
  check(d.status === 'failed' && d.error && d.error.code === 'cancelled',
        `a deleted video's job is cancelled: ${JSON.stringify(d.error)}`);
  await expectError(client.videos.downloadContent(long.id), 400,
                    'content of a cancelled video is refused');
  await expectError(client.videos.retrieve('no-such-video'), 404, 'an unknown video id is 404');

  // The server answers 413 without reading the body and closes the
  // connection, so a client still sending may see the 413 or a reset socket
  // (undici: "fetch failed" with a socket/EPIPE/ECONNRESET cause). Either
  // way the server must not have taken the body and must still serve.
  let bigOutcome;
  try {
    const big = await fetch(`${base}/v1/images/generations`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x'.repeat(5 << 20) }),
    });
    bigOutcome = `HTTP ${big.status}`;
  } catch (e) {
    const cause = e && e.cause ? (e.cause.code || e.cause.message || String(e.cause)) : String(e);
    bigOutcome = `connection closed (${cause})`;
  }
  check(bigOutcome === 'HTTP 413' || bigOutcome.startsWith('connection closed'),
        `a 5 MiB body is refused unread: ${bigOutcome}`);
  const after = await client.models.list();
  check(after.data.length >= 1, 'the server still serves after the oversized body');
} catch (err) {
  check(false, `unexpected error: ${err && err.stack}`);
} finally {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
}
if (failures.length) {
  console.log(fs.readFileSync(path.join(TMP, 'server.log'), 'utf8').slice(-4000));
  console.log(`${failures.length} FAILED`);
  process.exit(1);
}
console.log('PASSED');
