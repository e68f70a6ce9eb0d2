/** ZFS send stream parsing and validation (see docs/stream-format.md). */
export { Fletcher4, type Fletcher4Words } from './fletcher4.js';
export { peekStreamStart } from './peek.js';
export * from './records.js';
export type { StreamChecksum, StreamStart, StreamSummary, StreamValidatorOptions, SubstreamInfo } from './types.js';
export { StreamValidator } from './validator.js';
