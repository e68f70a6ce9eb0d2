/** Reports one upload: its bytes, and when it started and ended (performance.now()). */
export type Timed = (bytes: number, startMs: number, endMs: number) => void;

/**
 * Whether chunks go up whole or as parallel parts (Backend.partUploadBytes): whichever moves
 * more bytes per second here, found by trying both. Parts fill a long link (each request is
 * bounded by its connection) but cost requests, part hashes and server work that a fast, near
 * server does not repay: on the loopback RGW they were 20 % slower, over a 40 ms link faster.
 *
 * A probe uploads `probe` chunks whole, then `probe` in parts, compares the two rates (bytes
 * over the wall time from the first start to the last end of each group, so parallel uploads
 * count as they overlap), and uses the faster for the next `keep` chunks; then probes again,
 * so a link that changes speed is followed.
 */
export class UploadShape {
  private phase: 'whole' | 'parts' | 'decided' = 'whole';
  private issued = 0;
  private choice: number | undefined;
  private readonly groups = { whole: new Group(), parts: new Group() };

  constructor(
    private readonly partBytes: number | undefined,
    private readonly probe = 3,
    private readonly keep = 48,
  ) {}

  /** The part size for the next chunk's upload (undefined: whole), decided before it is hashed. */
  next(): { partBytes: number | undefined; done: Timed } {
    if (!this.partBytes) return { partBytes: undefined, done: () => undefined };
    const phase = this.phase;
    this.issued++;
    if (phase !== 'decided' && this.issued >= this.probe) {
      this.issued = 0;
      this.phase = phase === 'whole' ? 'parts' : 'decided';
    } else if (phase === 'decided' && this.issued >= this.keep) {
      this.issued = 0;
      this.phase = 'whole';
      this.groups.whole = new Group();
      this.groups.parts = new Group();
    }
    if (phase === 'decided') return { partBytes: this.decide(), done: () => undefined };
    const group = this.groups[phase];
    return { partBytes: phase === 'parts' ? this.partBytes : undefined, done: (bytes, start, end) => group.add(bytes, start, end) };
  }

  /**
   * Parts when their group moved more bytes per second. Uploads lag behind hashing, so a probe
   * may still be under way: until each group has two uploads done, the last choice stands.
   */
  private decide(): number | undefined {
    const { whole, parts } = this.groups;
    if (whole.count >= 2 && parts.count >= 2) this.choice = parts.rate() > whole.rate() ? this.partBytes : undefined;
    return this.choice;
  }
}

class Group {
  count = 0;
  private bytes = 0;
  private first = Infinity;
  private last = -Infinity;

  add(bytes: number, startMs: number, endMs: number): void {
    this.count++;
    this.bytes += bytes;
    this.first = Math.min(this.first, startMs);
    this.last = Math.max(this.last, endMs);
  }

  rate(): number {
    return this.bytes / Math.max(1e-3, this.last - this.first);
  }
}
