/**
 * Streaming validator for ZFS send streams: fed arbitrary-sized chunks, it walks every record,
 * verifies every checksum and the stream structure, and summarizes what it saw (docs/stream-format.md). It keeps at most one 312-byte record header; payloads (up to 16 MiB) are never
 * gathered, each piece is checksummed as it arrives.
 *
 * The checks are the stream-level ones of `zfs receive` ("What the validator refuses" there): magic, header type, feature bits,
 * framing, per-record trailing checksums (when non-zero), END checksums (always), completeness,
 * and for compound streams the header END and the conclusion END. Like `zfs receive` it refuses
 * anything after the first complete top-level stream. It does not re-run the kernel's per-record
 * content validators (object ids, block sizes…): the checksums already prove the records are
 * what the sender wrote.
 */
import { StreamFormatError } from '../util/errors.js';
import { Fletcher4 } from './fletcher4.js';
import {
  BeginFlag,
  type BeginRecord,
  DEDUP_FEATURES,
  detectByteOrder,
  DRR_NUMTYPES,
  DrrType,
  drrTypeName,
  Feature,
  featureNames,
  HeaderType,
  isZero,
  MAX_BEGIN_PAYLOAD,
  MAX_RECORD_PAYLOAD,
  parseBegin,
  payloadSize,
  readChecksum,
  readU32,
  RECORD_SIZE,
  TRAILING_CHECKSUM_OFFSET,
  unknownFeatureBits,
} from './records.js';
import type { StreamSummary, StreamValidatorOptions, SubstreamInfo } from './types.js';

export { peekStreamStart } from './peek.js';
export type { StreamChecksum, StreamStart, StreamSummary, StreamValidatorOptions, SubstreamInfo } from './types.js';

/** Where we are in the grammar (docs/stream-format.md, "Stream grammar"). */
type Phase =
  | 'start' // expecting the top-level BEGIN
  | 'substream' // inside BEGIN(hdrtype 1) … END
  | 'compound-header' // after BEGIN(hdrtype 2) and its nvlist, expecting the header END
  | 'compound-body' // between substreams: a BEGIN or the conclusion END
  | 'done'; // the first complete top-level stream has ended; nothing may follow

/** The substream being walked. */
interface OpenSubstream {
  begin: BeginRecord;
  start: number;
  records: number;
}

/** Bytes needed to tell a send stream from anything else (the magic ends at offset 16). */
const MAGIC_END = 16;

export class StreamValidator {
  private readonly allowUnknownFeatures: boolean;
  private readonly checksum = new Fletcher4();
  /** A record header that straddles chunks is assembled here; nothing else is kept. */
  private readonly headerBuffer = new Uint8Array(RECORD_SIZE);
  private headerFill = 0;
  private payloadRemaining = 0;
  private payloadOf = '';
  /** Stream offset of the next byte to consume. */
  private offset = 0;
  private seen = 0;
  private phase: Phase = 'start';
  private topLittleEndian = true;
  private compound = false;
  private header: StreamSummary['header'];
  private current: OpenSubstream | undefined;
  private readonly substreams: SubstreamInfo[] = [];
  private failure: StreamFormatError | undefined;

  constructor(options: StreamValidatorOptions = {}) {
    this.allowUnknownFeatures = options.allowUnknownFeatures ?? false;
  }

  /** Bytes pushed so far. */
  get bytesSeen(): number {
    return this.seen;
  }

  /** Feed the next piece of the stream, of any size. Throws StreamFormatError on the first problem. */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    this.seen += chunk.length;
    this.guard(() => this.consume(chunk));
  }

  /** The stream has ended: throws StreamFormatError unless it was complete. */
  finish(): StreamSummary {
    if (this.failure) throw this.failure;
    this.guard(() => this.checkComplete());
    return {
      littleEndian: this.topLittleEndian,
      compound: this.compound,
      ...(this.header ? { header: this.header } : {}),
      substreams: this.substreams.slice(),
      totalBytes: this.offset,
    };
  }

  private guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      if (err instanceof StreamFormatError) this.failure = err;
      throw err;
    }
  }

  private consume(chunk: Uint8Array): void {
    const length = chunk.length;
    let pos = 0;
    while (pos < length) {
      if (this.payloadRemaining > 0) {
        const take = Math.min(this.payloadRemaining, length - pos);
        this.checksum.update(chunk.subarray(pos, pos + take));
        pos += take;
        this.offset += take;
        this.payloadRemaining -= take;
        if (this.payloadRemaining === 0) this.checksum.endBuffer();
        continue;
      }
      if (this.phase === 'done') {
        throw new StreamFormatError('corrupt', 'unexpected data after the end of the stream (trailing garbage or a second concatenated stream)', this.offset);
      }
      if (this.headerFill === 0 && length - pos >= RECORD_SIZE) {
        // Common case: the whole header is in this chunk; look at it in place.
        const header = chunk.subarray(pos, pos + RECORD_SIZE);
        pos += RECORD_SIZE;
        this.offset += RECORD_SIZE;
        this.onHeader(header, this.offset - RECORD_SIZE);
        continue;
      }
      const take = Math.min(RECORD_SIZE - this.headerFill, length - pos);
      this.headerBuffer.set(chunk.subarray(pos, pos + take), this.headerFill);
      const before = this.headerFill;
      this.headerFill += take;
      pos += take;
      this.offset += take;
      // Reject a non-stream as soon as its magic can be seen, rather than after 312 bytes.
      if (this.phase === 'start' && before < MAGIC_END && this.headerFill >= MAGIC_END) this.checkFirstMagic();
      if (this.headerFill === RECORD_SIZE) {
        this.headerFill = 0;
        this.onHeader(this.headerBuffer, this.offset - RECORD_SIZE);
      }
    }
  }

  private checkFirstMagic(): void {
    if (detectByteOrder(this.headerBuffer) === undefined) {
      throw new StreamFormatError('bad-magic', 'not a ZFS send stream: bad magic number in the first record', 0);
    }
  }

  private onHeader(header: Uint8Array, at: number): void {
    switch (this.phase) {
      case 'start':
        return this.onFirstRecord(header, at);
      case 'compound-header':
        return this.onCompoundHeaderEnd(header, at);
      case 'compound-body':
        return this.onCompoundBodyRecord(header, at);
      case 'substream':
        return this.onSubstreamRecord(header, at);
      case 'done':
        throw new Error('unreachable: header after the end of the stream');
    }
  }

  private onFirstRecord(header: Uint8Array, at: number): void {
    const littleEndian = detectByteOrder(header);
    if (littleEndian === undefined) {
      throw new StreamFormatError('bad-magic', 'not a ZFS send stream: bad magic number in the first record', at);
    }
    const type = readU32(header, 0, littleEndian);
    if (type !== DrrType.BEGIN) {
      throw new StreamFormatError('corrupt', `not a ZFS send stream: the first record is ${drrTypeName(type)}, not BEGIN`, at);
    }
    const begin = this.parseAndCheckBegin(header, at);
    this.topLittleEndian = littleEndian;
    this.checksum.reset(littleEndian).update(header);
    if (begin.headerType === HeaderType.COMPOUND) {
      this.compound = true;
      this.header = { toname: begin.toname, featureFlags: begin.featureFlags, nvlistBytes: begin.payloadLength };
      this.phase = 'compound-header';
    } else {
      this.openSubstream(begin, at);
    }
    this.expectPayload(begin.payloadLength, 'BEGIN');
  }

  /** The compound header's END: its checksum covers the header BEGIN and nvlist (docs/stream-format.md, "Compound streams"). */
  private onCompoundHeaderEnd(header: Uint8Array, at: number): void {
    const type = readU32(header, 0, this.topLittleEndian);
    const context = `(compound stream header ${this.header?.toname})`;
    if (type !== DrrType.END) {
      throw new StreamFormatError('corrupt', `compound stream header is followed by a ${drrTypeName(type)} record instead of its END ${context}`, at);
    }
    if (!this.checksum.matches(header, 8)) {
      throw new StreamFormatError('corrupt', `incorrect header checksum in the compound stream header END ${context}`, at);
    }
    // libzfs leaves this END's trailing checksum zero, so nothing covers its other fields; the
    // sender zeroes them (toguid included), so anything non-zero there is corruption.
    const unchecked = isZero(header, TRAILING_CHECKSUM_OFFSET, 32);
    if (unchecked && !(isZero(header, 4, 4) && isZero(header, 40, TRAILING_CHECKSUM_OFFSET - 40))) {
      throw new StreamFormatError('corrupt', `unexpected non-zero bytes in the compound stream header END ${context}`, at);
    }
    this.sumAndCheckTrailing(header, at, context);
    this.phase = 'compound-body';
  }

  private onCompoundBodyRecord(header: Uint8Array, at: number): void {
    // A substream may come from a host of the other byte order; only its BEGIN can tell.
    const type = readU32(header, 0, this.topLittleEndian);
    if (type === DrrType.BEGIN) {
      const begin = this.parseAndCheckBegin(header, at);
      if (begin.headerType !== HeaderType.SUBSTREAM) {
        throw new StreamFormatError('corrupt', `compound stream nested inside a compound stream (${begin.toname})`, at);
      }
      this.checksum.reset(begin.littleEndian).update(header);
      this.openSubstream(begin, at);
      this.expectPayload(begin.payloadLength, 'BEGIN');
      return;
    }
    if (type !== DrrType.END) {
      throw new StreamFormatError('corrupt', `expected a BEGIN record or the conclusion END in the compound stream, found ${drrTypeName(type)}`, at);
    }
    // The conclusion END is all zero but its type (libzfs writes it so, and no checksum covers
    // it, so anything else there would be undetected corruption).
    const context = `(conclusion of compound stream ${this.header?.toname})`;
    if (!isZero(header, 4, RECORD_SIZE - 4)) {
      throw new StreamFormatError('corrupt', `malformed conclusion END record: only its type may be non-zero ${context}`, at);
    }
    if (this.substreams.length === 0) {
      throw new StreamFormatError('corrupt', `compound stream contains no substreams ${context}`, at);
    }
    this.phase = 'done';
  }

  private onSubstreamRecord(header: Uint8Array, at: number): void {
    const sub = this.current!;
    const littleEndian = sub.begin.littleEndian;
    const type = readU32(header, 0, littleEndian);
    const context = `(substream ${sub.begin.toname})`;
    if (type === DrrType.BEGIN) {
      // Tell a second stream spliced in from a record whose type field got corrupted.
      const reason = detectByteOrder(header) === undefined ? 'without the BEGIN magic: corrupt record' : 'the previous END is missing';
      throw new StreamFormatError('corrupt', `BEGIN record inside a substream, ${reason} ${context}`, at);
    }
    if (type >= DRR_NUMTYPES) {
      throw new StreamFormatError('corrupt', `unknown record type ${type}: corrupt stream ${context}`, at);
    }
    sub.records++;
    if (type === DrrType.END) {
      // The END checksum covers everything before this header and is always checked ("END checksum" there).
      if (!this.checksum.matches(header, 8)) throw new StreamFormatError('corrupt', `END checksum mismatch ${context}`, at);
      this.sumAndCheckTrailing(header, at, context);
      this.closeSubstream(header, at);
      return;
    }
    this.sumAndCheckTrailing(header, at, context);
    const size = payloadSize(header, littleEndian);
    if (size > MAX_RECORD_PAYLOAD) {
      throw new StreamFormatError('corrupt', `${drrTypeName(type)} record claims a ${size}-byte payload, above the 16 MiB maximum ${context}`, at);
    }
    this.expectPayload(size, drrTypeName(type));
  }

  /**
   * Sum a non-BEGIN header into the running checksum, verifying its trailing checksum against
   * the state after bytes [0, 280) — unless it is all zero, which ZFS treats as "not checked".
   */
  private sumAndCheckTrailing(header: Uint8Array, at: number, context: string): void {
    this.checksum.update(header.subarray(0, TRAILING_CHECKSUM_OFFSET));
    if (!isZero(header, TRAILING_CHECKSUM_OFFSET, 32) && !this.checksum.matches(header, TRAILING_CHECKSUM_OFFSET)) {
      const type = drrTypeName(readU32(header, 0, this.checksum.littleEndian));
      throw new StreamFormatError('corrupt', `checksum mismatch in ${type} record ${context}`, at);
    }
    this.checksum.update(header.subarray(TRAILING_CHECKSUM_OFFSET, RECORD_SIZE));
  }

  private parseAndCheckBegin(header: Uint8Array, at: number): BeginRecord {
    const begin = parseBegin(header, at);
    const what = `BEGIN record of ${JSON.stringify(begin.toname)}`;
    if (begin.headerType !== HeaderType.SUBSTREAM && begin.headerType !== HeaderType.COMPOUND) {
      throw new StreamFormatError('corrupt', `unsupported stream header type ${begin.headerType} in ${what}`, at);
    }
    if (!begin.toname.includes('@')) {
      throw new StreamFormatError('corrupt', `${what} does not name a snapshot (no '@' in toname)`, at);
    }
    if ((begin.featureFlags & DEDUP_FEATURES) !== 0) {
      throw new StreamFormatError('corrupt', `deduplicated stream (legacy zfs send -D) cannot be received by current ZFS; convert it with 'zstream redup' first (${what})`, at);
    }
    const unknown = unknownFeatureBits(begin.featureFlags);
    if (unknown !== 0 && !this.allowUnknownFeatures) {
      throw new StreamFormatError('corrupt', `unsupported feature flags 0x${unknown.toString(16)} in ${what} (zfs receive would reject it)`, at);
    }
    if (begin.payloadLength > MAX_BEGIN_PAYLOAD) {
      throw new StreamFormatError('corrupt', `${what} carries a ${begin.payloadLength}-byte nvlist, above the 64 MiB limit of zfs receive`, at);
    }
    return begin;
  }

  private openSubstream(begin: BeginRecord, at: number): void {
    this.current = { begin, start: at, records: 1 };
    this.phase = 'substream';
  }

  private closeSubstream(endHeader: Uint8Array, at: number): void {
    const { begin, start, records } = this.current!;
    this.substreams.push({
      toname: begin.toname,
      toguid: begin.toguid,
      fromguid: begin.fromguid,
      creationTime: begin.creationTime,
      objsetType: begin.objsetType,
      beginFlags: begin.flags,
      featureFlags: begin.featureFlags,
      features: featureNames(begin.featureFlags),
      raw: (begin.featureFlags & Feature.RAW) !== 0,
      clone: (begin.flags & BeginFlag.CLONE) !== 0,
      records,
      bytes: at + RECORD_SIZE - start,
      endChecksum: readChecksum(endHeader, 8, begin.littleEndian),
      nvlistBytes: begin.payloadLength,
    });
    this.current = undefined;
    this.phase = this.compound ? 'compound-body' : 'done';
  }

  private expectPayload(size: number, recordType: string): void {
    this.payloadRemaining = size;
    this.payloadOf = recordType;
  }

  private checkComplete(): void {
    const at = this.offset;
    if (at === 0) throw new StreamFormatError('corrupt', 'empty input: not a ZFS send stream', 0);
    if (this.payloadRemaining > 0) {
      throw new StreamFormatError('truncated', `stream ends inside a ${this.payloadOf} payload: truncated${this.where()}`, at);
    }
    if (this.headerFill > 0) {
      if (this.phase === 'start') {
        if (this.headerFill < MAGIC_END) {
          throw new StreamFormatError('corrupt', `input of ${at} bytes is too short to be a ZFS send stream`, at);
        }
        throw new StreamFormatError('truncated', 'stream ends inside its first BEGIN record: truncated', at);
      }
      throw new StreamFormatError('truncated', `stream ends inside a record header (${this.headerFill} of ${RECORD_SIZE} bytes): truncated${this.where()}`, at);
    }
    switch (this.phase) {
      case 'substream':
        throw new StreamFormatError('truncated', `stream ended without an END record: truncated${this.where()}`, at);
      case 'compound-header':
        throw new StreamFormatError('truncated', `compound stream ended right after its header BEGIN: truncated${this.where()}`, at);
      case 'compound-body':
        throw new StreamFormatError('truncated', `compound stream ended without its conclusion END record: truncated${this.where()}`, at);
      case 'start':
      case 'done':
        return;
    }
  }

  private where(): string {
    if (this.current) return ` (substream ${this.current.begin.toname})`;
    if (this.header) return ` (compound stream ${this.header.toname})`;
    return '';
  }
}
