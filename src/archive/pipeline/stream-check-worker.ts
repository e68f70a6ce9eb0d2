/**
 * Worker thread: walks the stream in order with the validator (every fletcher-4 checksum,
 * END records) and computes the whole-stream SHA-256, off the main thread.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { StreamValidator } from '../../stream/validator.js';
import { toWire } from '../../util/errors.js';
import type { StreamCheckReply, StreamCheckRequest } from './stream-check.js';

const validator = new StreamValidator();
const hash = createHash('sha256');
let failed = false;

function reply(msg: StreamCheckReply): void {
  parentPort!.postMessage(msg);
}

/** The error with its class, kind and offset: the main thread rebuilds it (a StreamFormatError stays one). */
function failure(err: unknown): StreamCheckReply {
  failed = true;
  return { type: 'error', error: toWire(err) };
}

parentPort!.on('message', (msg: StreamCheckRequest) => {
  if (failed) return;
  try {
    if (msg.type === 'chunk') {
      const bytes = new Uint8Array(msg.buffer, msg.offset, msg.length);
      validator.push(bytes);
      hash.update(bytes);
      reply({ type: 'chunk-done', seq: msg.seq });
    } else {
      const summary = validator.finish();
      reply({ type: 'finished', summary, sha256: hash.digest('hex') });
    }
  } catch (err) {
    reply(failure(err));
  }
});
