#!/usr/bin/env node
/**
 * The server's limit for `npm run bench`: stdin uploaded as ONE object with @aws-sdk/lib-storage
 * (the library our S3 backend uses), no compression, no hashing of our own, nothing else.
 *
 *   node lib-storage-ingest.mjs BUCKET KEY [PART_MIB=16] [QUEUE=4] < stream
 *
 * Endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_REGION. Path-style; checksums only WHEN_REQUIRED (Ceph RGW 16 answers 411 to the SDK's
 * default aws-chunked CRC32 bodies).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const [bucket, key, partMiB = '16', queue = '4'] = process.argv.slice(2);
if (!bucket || !key) {
  console.error('usage: lib-storage-ingest.mjs BUCKET KEY [PART_MIB] [QUEUE] < stream');
  process.exit(2);
}
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const client = new S3Client({
  endpoint: process.env.AWS_ENDPOINT_URL,
  region: process.env.AWS_REGION || 'us-east-1',
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const upload = new Upload({
  client,
  params: { Bucket: bucket, Key: key, Body: process.stdin },
  partSize: Number(partMiB) * 1024 * 1024,
  queueSize: Number(queue),
  leavePartsOnError: false,
});
await upload.done();
client.destroy();
