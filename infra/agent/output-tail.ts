/** The last `capacity` bytes of a stream, and how many bytes it carried in all. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private kept = 0;
  /** Bytes seen since the start, kept or not. */
  total = 0;

  constructor(readonly capacity: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.capacity <= 0) return;
    const piece = chunk.length > this.capacity ? chunk.subarray(chunk.length - this.capacity) : chunk;
    this.chunks.push(piece);
    this.kept += piece.length;
    while (this.kept > this.capacity) {
      const first = this.chunks[0];
      if (!first) break;
      const excess = this.kept - this.capacity;
      if (first.length <= excess) {
        this.chunks.shift();
        this.kept -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.kept -= excess;
      }
    }
  }

  /** The kept tail, at most `maxBytes` of it (0 or more than kept: all of it). */
  read(maxBytes = 0): Buffer {
    const all = Buffer.concat(this.chunks, this.kept);
    return maxBytes > 0 && maxBytes < all.length ? all.subarray(all.length - maxBytes) : all;
  }
}
