#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size: V8 otherwise grows the young generation of this thread towards 3 × 16 MiB
// over a long stream, so peak memory crept up with stream length (put to S3: 216 MiB at 1 GiB,
// 250 MiB at 8 GiB; with the flag 219 MiB at 8 GiB, no slower). Only a start-up flag can set it.
// The installed command (package.json "bin", the Docker entrypoint): everything else is in
// program.ts, so that importing the program never runs it.
import { redactText } from '../util/redact.js';
import { main } from './program.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`zfs-offsite: internal error: ${redactText(String(err))}\n`);
    process.exitCode = 1;
  },
);
