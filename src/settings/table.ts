/**
 * Every setting of a transfer, declared once. The command-line flags (src/cli/setting-flags.ts),
 * the keys of the `run` config file (src/config/config.ts) and the options of a backend
 * (src/storage/open.ts) are all derived from this table, so a setting exists everywhere it
 * makes sense under the same rules: same type, range, default and help text. docs/config.md
 * and README.md list them; test/settings/table.test.ts keeps those lists in step with the table.
 *
 * A leaf module: it imports nothing, so every layer may read it.
 */

/** size: bytes ("16M"); duration: milliseconds ("2m"); count: a whole number; file: a path. */
export type SettingType = 'size' | 'duration' | 'count' | 'bool' | 'string' | 'file' | 'env-name';

export type TargetKind = 'local' | 's3' | 'sftp';

export interface SettingSpec {
  readonly type: SettingType;
  /** As written on the command line ("16M", "2m", "6"); none: the backend or the environment decides. */
  readonly default?: string;
  /** Commander flag with its value placeholder; none: config file only (names of env variables). */
  readonly flag?: string;
  /** The same flag as another tool spells it (aws-cli's `--endpoint-url`), taking the same value. */
  readonly alias?: string;
  /** Key in the `run` config file: top level of a dataset (and defaults), or inside `s3:` / `sftp:`. */
  readonly yaml?: string;
  /** The environment variable its consumer reads when neither the flag nor the file sets it. */
  readonly env?: string;
  readonly help: string;
  /** The target kinds it changes anything for. */
  readonly targets: readonly TargetKind[];
  /** Which commands take the flag: every command with a target, or only those that upload. */
  readonly commands: 'target' | 'upload';
  /** Who consumes it: openBackend (storage/open.ts), or the archive writer (jobs/archive-stream.ts). */
  readonly use: 'backend' | 'archive';
  /** Range of a size (bytes), duration (ms) or count. */
  readonly min?: number;
  readonly max?: number;
  /** What a string must look like, and how to say so. */
  readonly pattern?: { readonly re: RegExp; readonly what: string };
  /** How a config value of this setting is described when it is wrong. */
  readonly what?: string;
}

const K = 1024;
const M = 1024 * K;
const G = 1024 * M;
const ALL = ['local', 's3', 'sftp'] as const;

export const SETTINGS = {
  // --- every command with a target (flag order = the order `--help` shows) ---
  s3Endpoint: {
    type: 'string',
    flag: '--s3-endpoint <url>',
    alias: '--endpoint-url <url>',
    yaml: 's3.endpoint',
    env: 'AWS_ENDPOINT_URL',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'S3 endpoint URL (default: AWS_ENDPOINT_URL or AWS)',
    pattern: { re: /^https?:\/\/(?![\s\S]*@)[^/\s@]/i, what: 'an http:// or https:// URL without credentials' },
  },
  s3PathStyle: {
    type: 'bool',
    flag: '--s3-path-style',
    yaml: 's3.path_style',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'path-style S3 addressing (default on when an endpoint is set)',
  },
  s3PartSize: {
    type: 'size',
    default: '16M',
    flag: '--s3-part-size <size>',
    yaml: 's3.part_size',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'S3 multipart part size',
    min: 5 * M,
    max: 5 * G,
  },
  s3Queue: {
    type: 'count',
    default: '4',
    flag: '--s3-queue <n>',
    yaml: 's3.queue',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'S3 parts uploaded in parallel per object',
    min: 1,
  },
  s3StorageClass: {
    type: 'string',
    flag: '--storage-class <class>',
    yaml: 's3.storage_class',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'S3 storage class for chunk objects',
    pattern: { re: /^[A-Z_]+$/, what: 'an S3 storage class such as STANDARD_IA' },
  },
  s3Region: {
    type: 'string',
    flag: '--s3-region <region>',
    yaml: 's3.region',
    env: 'AWS_REGION',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: "S3 region (default: AWS_REGION or the profile's, else us-east-1)",
    pattern: { re: /^[a-z0-9-]+$/i, what: 'a region name such as eu-central-1' },
  },
  s3Profile: {
    type: 'string',
    flag: '--s3-profile <name>',
    alias: '--profile <name>',
    yaml: 's3.profile',
    env: 'AWS_PROFILE',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'profile of the AWS shared config and credentials files',
  },
  s3Provider: {
    type: 'string',
    default: 'other',
    flag: '--s3-provider <name>',
    yaml: 's3.provider',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'S3 server kind whose quirks to follow: other (safe everywhere), aws, ceph, swift, b2',
    // The rows of src/storage/s3-quirks.ts (a leaf cannot import them; a test keeps both equal).
    pattern: { re: /^(other|aws|ceph|swift|b2)$/, what: 'one of other, aws, ceph, swift, b2' },
  },
  s3Timeout: {
    type: 'duration',
    default: '2m',
    flag: '--s3-timeout <duration>',
    yaml: 's3.timeout',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'a request whose connection is silent this long fails and is retried',
    min: 1,
  },
  s3CredentialsFile: {
    type: 'file',
    yaml: 's3.credentials_file',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'an AWS shared-credentials file for this target (with profile: that profile of it)',
  },
  s3AccessKeyIdEnv: {
    type: 'env-name',
    yaml: 's3.access_key_id_env',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'NAME of the environment variable holding the access key id',
  },
  s3SecretAccessKeyEnv: {
    type: 'env-name',
    yaml: 's3.secret_access_key_env',
    targets: ['s3'],
    commands: 'target',
    use: 'backend',
    help: 'NAME of the environment variable holding the secret access key',
  },
  retries: {
    type: 'count',
    default: '6',
    flag: '--retries <n>',
    yaml: 'retries',
    targets: ALL,
    commands: 'target',
    use: 'backend',
    help: 'attempts per storage request on transient failures (5xx, throttling, resets, timeouts)',
    min: 1,
  },
  retryTime: {
    type: 'duration',
    default: '2m',
    flag: '--retry-time <duration>',
    yaml: 'retry_time',
    targets: ALL,
    commands: 'target',
    use: 'backend',
    help: 'give up retrying a request after this long',
    min: 1,
  },
  sftpKey: {
    type: 'file',
    flag: '--sftp-key <file>',
    yaml: 'sftp.key',
    env: 'ZFS_OFFSITE_SFTP_KEY',
    targets: ['sftp'],
    commands: 'target',
    use: 'backend',
    help: 'SSH private key for sftp:// targets (env ZFS_OFFSITE_SFTP_KEY; passphrase in ZFS_OFFSITE_SFTP_PASSPHRASE)',
  },
  sftpKnownHosts: {
    type: 'file',
    flag: '--sftp-known-hosts <file>',
    yaml: 'sftp.known_hosts',
    env: 'ZFS_OFFSITE_SFTP_KNOWN_HOSTS',
    targets: ['sftp'],
    commands: 'target',
    use: 'backend',
    help: 'known_hosts file for sftp:// targets (env ZFS_OFFSITE_SFTP_KNOWN_HOSTS; default ~/.ssh/known_hosts)',
  },
  sftpAcceptNew: {
    type: 'bool',
    flag: '--sftp-accept-new',
    yaml: 'sftp.accept_new',
    targets: ['sftp'],
    commands: 'target',
    use: 'backend',
    help: 'record an SFTP server host key seen for the first time (never a changed one)',
  },
  sftpPasswordEnv: {
    type: 'env-name',
    yaml: 'sftp.password_env',
    env: 'ZFS_OFFSITE_SFTP_PASSWORD',
    targets: ['sftp'],
    commands: 'target',
    use: 'backend',
    help: 'NAME of the environment variable holding the SFTP password',
  },
  sftpPassphraseEnv: {
    type: 'env-name',
    yaml: 'sftp.passphrase_env',
    env: 'ZFS_OFFSITE_SFTP_PASSPHRASE',
    targets: ['sftp'],
    commands: 'target',
    use: 'backend',
    help: "NAME of the environment variable holding the SSH key's passphrase",
  },
  // --- commands that upload: put, send, run ---
  chunkSize: {
    // 16 MiB: peak memory stays under 256 MiB (≈ 115 MiB + 6 chunks) and objects stay large
    // enough that per-request costs vanish (bench: 16 MiB and 64 MiB chunks upload at the same
    // speed). 1M is the writer's minimum (MIN_CHUNK_SIZE in src/archive/pipeline/writer.ts).
    type: 'size',
    default: '16M',
    flag: '--chunk-size <size>',
    yaml: 'chunk_size',
    targets: ALL,
    commands: 'upload',
    use: 'archive',
    help: 'raw bytes per chunk object',
    min: M,
    max: G,
  },
  compressionLevel: {
    type: 'count',
    default: '3',
    flag: '--compression-level <n>',
    yaml: 'compression_level',
    targets: ALL,
    commands: 'upload',
    use: 'archive',
    help: 'zstd level (1-19; incompressible chunks use a faster one)',
    min: -7,
    max: 19,
  },
  parallel: {
    type: 'count',
    default: '2',
    flag: '--parallel <n>',
    yaml: 'parallel',
    targets: ALL,
    commands: 'upload',
    use: 'archive',
    help: 'chunk uploads in flight',
    min: 1,
  },
  bwlimit: {
    type: 'size',
    flag: '--bwlimit <rate>',
    yaml: 'bwlimit',
    targets: ALL,
    commands: 'upload',
    use: 'backend',
    help: 'upload bandwidth limit in bytes per second, e.g. 20M (average over the stream)',
    min: K,
    what: 'a rate in bytes per second such as 20M or 512K',
  },
  stallTimeout: {
    type: 'duration',
    default: '15m',
    flag: '--stall-timeout <duration>',
    yaml: 'stall_timeout',
    targets: ALL,
    commands: 'upload',
    use: 'archive',
    help: 'fail when the stream produces no data for this long (0 = never)',
    min: 0,
  },
  objectLock: {
    // In the config file a number of days (`object_lock: { days: 30 }`, src/config/config.ts);
    // on the command line any duration. S3 only: other targets refuse it (jobs/object-lock.ts).
    type: 'duration',
    flag: '--object-lock <duration>',
    yaml: 'object_lock.days',
    targets: ['s3'],
    commands: 'upload',
    use: 'archive',
    help: 'S3 Object Lock: retain every object of the stream this long, and extend the chain it depends on (docs/object-lock.md)',
    min: 1,
  },
  objectLockMode: {
    // No table default: governance is applied where the lock is (archive-stream.ts), so a
    // command without --object-lock carries no lock setting at all.
    type: 'string',
    flag: '--object-lock-mode <mode>',
    yaml: 'object_lock.mode',
    targets: ['s3'],
    commands: 'upload',
    use: 'archive',
    help: 'governance (default: a key allowed to bypass it can lift it) or compliance (nobody can, not even the account owner)',
    pattern: { re: /^(governance|compliance)$/, what: 'governance or compliance' },
  },
} as const satisfies Record<string, SettingSpec>;

type Specs = typeof SETTINGS;
export type SettingName = keyof Specs;

type ValueOf<T extends SettingType> = T extends 'size' | 'duration' | 'count' ? number : T extends 'bool' ? boolean : string;

/** Parsed values: sizes in bytes, durations in milliseconds; a setting not given is absent. */
export type SettingValues = { -readonly [N in SettingName]?: ValueOf<Specs[N]['type']> };

type NamesFor<U extends SettingSpec['use']> = { [N in SettingName]: Specs[N]['use'] extends U ? N : never }[SettingName];

/** What openBackend takes (storage/open.ts). */
export type BackendSettings = Pick<SettingValues, NamesFor<'backend'>>;
/** What the archive writer takes besides progress (jobs/archive-stream.ts). */
export type ArchiveSettingValues = Required<Pick<SettingValues, Exclude<NamesFor<'archive'>, 'objectLock' | 'objectLockMode'>>> & Pick<SettingValues, 'objectLock' | 'objectLockMode'>;

type Camel<S extends string> = S extends `${infer A}_${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;

/** The settings of a config section as config.ts resolves them: `s3.part_size` → `{ partSize }`. */
export type SectionSettings<Sec extends 's3' | 'sftp' | 'object_lock'> = {
  -readonly [N in SettingName as Specs[N] extends { yaml: `${Sec}.${infer Key}` } ? Camel<Key> : never]?: ValueOf<Specs[N]['type']>;
};
/** The settings at the top level of a dataset entry, under their table names. */
export type TopSettings = {
  -readonly [N in SettingName as Specs[N] extends { yaml: `${string}.${string}` } ? never : Specs[N] extends { yaml: string } ? N : never]?: ValueOf<Specs[N]['type']>;
};

/** `part_size` → `partSize`: the field a config key is resolved into. */
export function camelKey(key: string): string {
  return key.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase());
}

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export function settingSpec(name: SettingName): SettingSpec {
  return SETTINGS[name];
}

/** The settings read from the config file at one level: top ('') or inside `s3:` / `sftp:`. */
export function yamlSettings(section: '' | 's3' | 'sftp' | 'object_lock'): { name: SettingName; key: string }[] {
  const out: { name: SettingName; key: string }[] = [];
  for (const name of SETTING_NAMES) {
    const yaml: string | undefined = settingSpec(name).yaml;
    if (yaml === undefined) continue;
    const dot = yaml.indexOf('.');
    if ((dot < 0 ? '' : yaml.slice(0, dot)) === section) out.push({ name, key: yaml.slice(dot + 1) });
  }
  return out;
}
