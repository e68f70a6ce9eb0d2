/**
 * Results of walking a send stream. Plain data only (numbers, strings, bigints, arrays), so they
 * survive structured cloning between worker threads.
 */

/** fletcher-4 (a, b, c, d) as stored in an END record. */
export type StreamChecksum = [bigint, bigint, bigint, bigint];

/** One `BEGIN … END` substream: the unit `zfs receive` turns into one snapshot. */
export interface SubstreamInfo {
  /** `pool/fs@snap` of the snapshot this substream creates. */
  toname: string;
  /** GUID of that snapshot; equal on the source and every replica (use it for chains). */
  toguid: bigint;
  /** GUID of the incremental source, 0n for a full stream. */
  fromguid: bigint;
  /** Creation time of the to-snapshot, Unix seconds. */
  creationTime: number;
  /** `dmu_objset_type_t`: 2 = filesystem, 3 = volume. */
  objsetType: number;
  /** BEGIN `drr_flags` (CLONE 0x1, CI_DATA 0x2, FREERECORDS 0x4, SPILL_BLOCK 0x8). */
  beginFlags: number;
  /** `DMU_BACKUP_FEATURE_*` bits (already shifted down from versioninfo). */
  featureFlags: number;
  /** Names of the known bits of featureFlags, e.g. ['SA_SPILL', 'LZ4', 'COMPRESSED', 'RAW']. */
  features: string[];
  /** Raw (`zfs send -w` of an encrypted dataset): needs a raw-received target for incrementals. */
  raw: boolean;
  /** DRR_FLAG_CLONE: the incremental source lives in another filesystem (a clone's origin). */
  clone: boolean;
  /** Records in the substream, counting its BEGIN and END. */
  records: number;
  /** Bytes from the start of its BEGIN to the end of its END. */
  bytes: number;
  /** The END record's checksum: fletcher-4 of the whole substream, a content fingerprint. */
  endChecksum: StreamChecksum;
  /** Length of the BEGIN nvlist payload (0 if none). */
  nvlistBytes: number;
}

/** A complete, intact top-level stream. */
export interface StreamSummary {
  /** Byte order of the top-level BEGIN (substreams of a compound stream re-detect their own). */
  littleEndian: boolean;
  /** A `-I`/`-R`/`-p`/`--holds` package: header BEGIN+END, substreams, conclusion END. */
  compound: boolean;
  /** The compound header: toname is that of the last snapshot. */
  header?: { toname: string; featureFlags: number; nvlistBytes: number };
  substreams: SubstreamInfo[];
  /** Size of the whole stream. */
  totalBytes: number;
}

/** What the first bytes of a stream say about it, before it has been validated. */
export interface StreamStart {
  compound: boolean;
  littleEndian: boolean;
  /** Top-level BEGIN's toname; for a compound stream the header's (the LAST snapshot). */
  toname: string;
  /** The first real substream's BEGIN (for compound streams, the one after the header END). */
  first: {
    toname: string;
    toguid: bigint;
    fromguid: bigint;
    creationTime: number;
    featureFlags: number;
    raw: boolean;
  };
}

export interface StreamValidatorOptions {
  /**
   * Accept feature bits OpenZFS does not define (default false: `zfs receive` rejects them, so
   * such a stream could never be restored by the zfs that made it).
   */
  allowUnknownFeatures?: boolean;
}
