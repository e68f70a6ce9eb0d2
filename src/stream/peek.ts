/**
 * Identify a stream from its first bytes, so the archiver can name an object before the
 * validator has seen the end of the stream. Nothing is verified beyond what is needed to find
 * the BEGIN records; the StreamValidator does the real checking.
 */
import { StreamFormatError } from '../util/errors.js';
import { DrrType, drrTypeName, Feature, HeaderType, MAX_BEGIN_PAYLOAD, parseBegin, readU32, RECORD_SIZE } from './records.js';
import type { StreamStart } from './types.js';

/**
 * `buf` holds the first bytes of a stream. Returns undefined while more bytes are needed: one
 * record for a simple stream; for a compound stream the header BEGIN, its nvlist, the header END
 * and the first substream's BEGIN. Throws StreamFormatError for input that is not a send stream.
 */
export function peekStreamStart(buf: Uint8Array): StreamStart | undefined {
  if (buf.length < RECORD_SIZE) {
    // Still reject a non-stream early if its magic is already visible.
    if (buf.length >= 16) parseBegin(padToRecord(buf), 0);
    return undefined;
  }
  const top = parseBegin(buf.subarray(0, RECORD_SIZE), 0);
  if (readU32(buf, 0, top.littleEndian) !== DrrType.BEGIN) {
    throw new StreamFormatError('corrupt', 'not a ZFS send stream: the first record is not a BEGIN', 0);
  }
  const summary = { compound: false, littleEndian: top.littleEndian, toname: top.toname };
  const firstOf = (b: typeof top): StreamStart['first'] => ({
    toname: b.toname,
    toguid: b.toguid,
    fromguid: b.fromguid,
    creationTime: b.creationTime,
    featureFlags: b.featureFlags,
    raw: (b.featureFlags & Feature.RAW) !== 0,
  });
  if (top.headerType === HeaderType.SUBSTREAM) return { ...summary, first: firstOf(top) };
  if (top.headerType !== HeaderType.COMPOUND) {
    throw new StreamFormatError('corrupt', `unsupported stream header type ${top.headerType} in the first BEGIN record`, 0);
  }
  if (top.payloadLength > MAX_BEGIN_PAYLOAD) {
    throw new StreamFormatError('corrupt', `compound stream header nvlist of ${top.payloadLength} bytes exceeds 64 MiB`, 0);
  }
  const headerEnd = RECORD_SIZE + top.payloadLength;
  const firstBegin = headerEnd + RECORD_SIZE;
  if (buf.length < firstBegin + RECORD_SIZE) return undefined;
  const endType = readU32(buf, headerEnd, top.littleEndian);
  if (endType !== DrrType.END) {
    throw new StreamFormatError('corrupt', `compound stream header is followed by ${drrTypeName(endType)}, not END`, headerEnd);
  }
  const nextType = readU32(buf, firstBegin, top.littleEndian);
  if (nextType === DrrType.END) {
    throw new StreamFormatError('corrupt', 'compound stream contains no substreams', firstBegin);
  }
  if (nextType !== DrrType.BEGIN) {
    throw new StreamFormatError('corrupt', `expected the first substream's BEGIN, found ${drrTypeName(nextType)}`, firstBegin);
  }
  const first = parseBegin(buf.subarray(firstBegin, firstBegin + RECORD_SIZE), firstBegin);
  return { ...summary, compound: true, first: firstOf(first) };
}

function padToRecord(buf: Uint8Array): Uint8Array {
  const record = new Uint8Array(RECORD_SIZE);
  record.set(buf);
  return record;
}
