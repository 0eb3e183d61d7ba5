/** Bounds on what one archive may make the applier do; every one can be changed by the caller. */
export interface UnpackLimits {
  /** Decompressed bytes, headers and padding included. */
  maxTotalBytes: number;
  /** Entries (files, directories, links, devices), not counting PAX / GNU meta headers. */
  maxEntries: number;
  /** Bytes of one normalised entry path. */
  maxPathLength: number;
  /** Components of one entry path. */
  maxPathDepth: number;
  /** Bytes of one PAX extended header or GNU long-name / long-link body. */
  maxPaxHeaderBytes: number;
  /** Decompressed ÷ compressed bytes, checked once the output passes COMPRESSION_RATIO_GRACE_BYTES. */
  maxCompressionRatio: number;
}

export const DEFAULT_LIMITS: Readonly<UnpackLimits> = Object.freeze({
  maxTotalBytes: 64 * 1024 ** 3,
  // A large distribution root holds a few hundred thousand entries; a million is an inode bomb.
  maxEntries: 500_000,
  maxPathLength: 4095,
  maxPathDepth: 256,
  maxPaxHeaderBytes: 1024 * 1024,
  maxCompressionRatio: 100,
});

/** Small archives of sparse content compress well; the ratio only counts after this much output. */
export const COMPRESSION_RATIO_GRACE_BYTES = 64 * 1024 * 1024;

export function resolveLimits(overrides: Partial<UnpackLimits> | undefined): UnpackLimits {
  const limits: UnpackLimits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_LIMITS)) throw new Error(`unknown unpack limit: ${key}`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new Error(`unpack limit ${key} must be a positive number, got ${String(value)}`);
    }
    limits[key as keyof UnpackLimits] = value;
  }
  return limits;
}
