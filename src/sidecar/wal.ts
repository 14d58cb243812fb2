import { closeSync, existsSync, fdatasync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { CbftError } from '../errors.js';

/**
 * The sidecar's write-ahead log: one append-only file of checksummed records.
 *
 *   file   = magic[8] record*
 *   record = u32be(length) u32be(crc32(u32be(length) || payload)) payload[length]
 *
 * The checksum covers the length too, so a torn or bit-flipped length is caught like a torn
 * payload. Appends are buffered in memory and reach the disk in `sync()` (one write and one
 * fdatasync for everything appended since the last sync: group commit). On open, the file is
 * scanned; the first record that is truncated, oversized or fails its checksum ends the log: the
 * file is cut there (fsync'd) and the cut is reported, so the next append starts on a clean
 * boundary. Compaction (`rewrite`) writes the live records to a temporary file, fsyncs it, renames
 * it over the log and fsyncs the directory: a crash at any point leaves either the old or the new
 * log, never a mix.
 */
export const WAL_MAGIC = Buffer.from('CBFTWAL\x01', 'latin1');
export const RECORD_HEADER_BYTES = 8;
/** A record longer than this is treated as corruption (a torn length field), not allocated. */
export const MAX_RECORD_BYTES = 1024 * 1024 * 1024;

export const WalErrorCode = 'CBFT_ERR_WAL';

/** Compaction writes the new log through a buffer of this size. */
const REWRITE_CHUNK_BYTES = 1024 * 1024;

export interface WalTruncation {
  /** File offset where the log was cut. */
  offset: number;
  /** Bytes dropped from the end of the file. */
  droppedBytes: number;
  reason: 'torn-header' | 'torn-record' | 'bad-checksum' | 'bad-length';
}

export interface WalOpenResult {
  wal: WalFile;
  records: Uint8Array[];
  /** Set when a torn or corrupt tail was found and cut. */
  truncation?: WalTruncation;
  /** True when the file did not exist (a fresh replica). */
  created: boolean;
}

function checksum(lengthBytes: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(lengthBytes));
}

/** Encodes one record with its header (exported for tests that build damaged files). */
export function encodeWalRecord(payload: Uint8Array): Buffer {
  if (payload.length > MAX_RECORD_BYTES) throw new CbftError(WalErrorCode, `WAL record of ${payload.length} bytes exceeds ${MAX_RECORD_BYTES}`);
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(checksum(out.subarray(0, 4), payload), 4);
  out.set(payload, RECORD_HEADER_BYTES);
  return out;
}

function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}

/** Scans a log image; returns the intact records and where (and why) the intact prefix ends. */
export function scanWal(image: Buffer): { records: Uint8Array[]; end: number; reason?: WalTruncation['reason'] } {
  const records: Uint8Array[] = [];
  let off = WAL_MAGIC.length;
  while (off < image.length) {
    if (image.length - off < RECORD_HEADER_BYTES) return { records, end: off, reason: 'torn-header' };
    const length = image.readUInt32BE(off);
    if (length > MAX_RECORD_BYTES) return { records, end: off, reason: 'bad-length' };
    if (image.length - off - RECORD_HEADER_BYTES < length) return { records, end: off, reason: 'torn-record' };
    const payload = image.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + length);
    if (checksum(image.subarray(off, off + 4), payload) !== image.readUInt32BE(off + 4)) {
      return { records, end: off, reason: 'bad-checksum' };
    }
    // Copy: the image buffer is dropped after the scan, records outlive it.
    records.push(new Uint8Array(payload));
    off += RECORD_HEADER_BYTES + length;
  }
  return { records, end: off };
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class WalFile {
  private fd: number;
  /** End of what was written to the file (page cache). */
  private position: number;
  /** End of what an fdatasync has made durable. */
  private durablePosition: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;
  private syncInFlight: Promise<void> | undefined;
  /** Counters for metrics. */
  syncs = 0;
  bytesWritten = 0;

  private constructor(readonly path: string, fd: number, position: number) {
    this.fd = fd;
    this.position = position;
    this.durablePosition = position;
  }

  /** Opens (or creates) the log, cutting a torn or corrupt tail. */
  static open(path: string): WalOpenResult {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = path + '.compact';
    if (existsSync(tmp)) rmSync(tmp); // an interrupted compaction: the old log is still complete
    const created = !existsSync(path);
    const fd = openSync(path, created ? 'w+' : 'r+', 0o600);
    try {
      if (created) {
        writeSync(fd, WAL_MAGIC, 0, WAL_MAGIC.length, 0);
        fsyncSync(fd);
        fsyncDir(dirname(path));
        return { wal: new WalFile(path, fd, WAL_MAGIC.length), records: [], created };
      }
      const image = readAll(fd);
      if (image.length < WAL_MAGIC.length || !image.subarray(0, WAL_MAGIC.length).equals(WAL_MAGIC)) {
        // A file that does not even start with the magic is not a log we wrote (or was torn while
        // being created, before anything could have been recorded in it).
        if (image.length <= WAL_MAGIC.length && WAL_MAGIC.subarray(0, image.length).equals(image)) {
          ftruncateSync(fd, 0);
          writeSync(fd, WAL_MAGIC, 0, WAL_MAGIC.length, 0);
          fsyncSync(fd);
          return {
            wal: new WalFile(path, fd, WAL_MAGIC.length),
            records: [],
            created: false,
            truncation: { offset: 0, droppedBytes: image.length, reason: 'torn-header' },
          };
        }
        throw new CbftError(WalErrorCode, `${path}: not a cbft write-ahead log (bad magic); refusing to overwrite it`);
      }
      const scan = scanWal(image);
      let truncation: WalTruncation | undefined;
      if (scan.reason !== undefined) {
        truncation = { offset: scan.end, droppedBytes: image.length - scan.end, reason: scan.reason };
        ftruncateSync(fd, scan.end);
        fsyncSync(fd);
      }
      const result: WalOpenResult = { wal: new WalFile(path, fd, scan.end), records: scan.records, created: false };
      if (truncation) result.truncation = truncation;
      return result;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Bytes in the file, including appended records not yet synced. */
  get size(): number {
    return this.position + this.pendingBytes;
  }

  /** True when something appended is not durable yet (buffered, or written but not synced). */
  get dirty(): boolean {
    return this.pending.length > 0 || this.durablePosition < this.position;
  }

  /** Buffers a record; it is durable only after the next `sync()`. */
  append(payload: Uint8Array): void {
    if (this.closed) throw new CbftError(WalErrorCode, `${this.path}: append after close`);
    const rec = encodeWalRecord(payload);
    this.pending.push(rec);
    this.pendingBytes += rec.length;
  }

  /**
   * Writes everything appended so far to the file, i.e. to the operating system's page cache,
   * without waiting for the disk: from then on a crash of this process loses none of it (a crash
   * of the machine still may, until the next `sync`/`flush`).
   */
  write(): void {
    if (this.closed) return;
    this.writePending();
  }

  /** Writes the buffered records to the file (the page cache), without waiting for the disk. */
  private writePending(): void {
    if (this.pending.length === 0) return;
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off, this.position + off);
    this.position += buf.length;
    this.bytesWritten += buf.length;
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Writes everything appended so far and fdatasyncs it, blocking. A no-op when nothing is pending. */
  sync(): void {
    if (this.closed || !this.dirty) return;
    this.writePending();
    const target = this.position;
    fdatasyncSync(this.fd);
    this.durablePosition = Math.max(this.durablePosition, target);
    this.syncs++;
  }

  /**
   * Makes everything appended so far durable without blocking the event loop: the fdatasync runs
   * in libuv's thread pool. Concurrent callers share syncs (group commit): records appended while
   * one sync is in flight are covered by the next one.
   */
  async flush(): Promise<void> {
    if (this.closed) return;
    this.writePending();
    // Only what was appended before this call: later appends do not keep the caller waiting.
    const target = this.position;
    const file = this.fd;
    while (this.durablePosition < target && this.fd === file && !this.closed) {
      if (this.syncInFlight) {
        await this.syncInFlight;
        continue;
      }
      this.writePending();
      const upTo = this.position;
      this.syncInFlight = new Promise<void>((resolve, reject) => {
        fdatasync(file, (err) => {
          this.syncInFlight = undefined;
          if (err) return reject(err);
          if (this.fd === file) this.durablePosition = Math.max(this.durablePosition, upTo);
          this.syncs++;
          resolve();
        });
      });
      await this.syncInFlight;
    }
  }

  /** Bytes of the file known to be on disk. */
  get durableSize(): number {
    return this.durablePosition;
  }

  /** Resolves when no asynchronous sync is in flight (rewrite and close need that). */
  async idle(): Promise<void> {
    while (this.syncInFlight) await this.syncInFlight.catch(() => undefined);
  }

  get syncing(): boolean {
    return this.syncInFlight !== undefined;
  }

  /**
   * Replaces the whole log by `payloads` (compaction), taken one at a time, and returns how many
   * there were. Pending appends are dropped: the caller passes the complete live state. Atomic
   * with respect to crashes.
   */
  rewrite(payloads: Iterable<Uint8Array>): number {
    if (this.closed) throw new CbftError(WalErrorCode, `${this.path}: rewrite after close`);
    if (this.syncInFlight) throw new CbftError(WalErrorCode, `${this.path}: rewrite while a sync is in flight (await idle() first)`);
    const tmp = this.path + '.compact';
    const fd = openSync(tmp, 'w', 0o600);
    let position = 0;
    let count = 0;
    try {
      // Streamed through one 1 MiB buffer: the live state can be tens of MiB, and encoding it all
      // at once would double the process's memory for a moment (and fragment its heap for good).
      const chunk = Buffer.allocUnsafe(REWRITE_CHUNK_BYTES);
      let used = 0;
      const writeAll = (buf: Uint8Array, length: number) => {
        let off = 0;
        while (off < length) off += writeSync(fd, buf, off, length - off, position + off);
        position += length;
      };
      const put = (payload: Uint8Array) => {
        const size = RECORD_HEADER_BYTES + payload.length;
        if (used + size > chunk.length) {
          writeAll(chunk, used);
          used = 0;
        }
        if (size > chunk.length) {
          const rec = encodeWalRecord(payload);
          writeAll(rec, rec.length);
          return;
        }
        chunk.writeUInt32BE(payload.length, used);
        chunk.writeUInt32BE(checksum(chunk.subarray(used, used + 4), payload), used + 4);
        chunk.set(payload, used + RECORD_HEADER_BYTES);
        used += size;
      };
      chunk.set(WAL_MAGIC, 0);
      used = WAL_MAGIC.length;
      for (const p of payloads) {
        put(p);
        count++;
      }
      writeAll(chunk, used);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
    renameSync(tmp, this.path);
    fsyncDir(dirname(this.path));
    closeSync(this.fd);
    this.fd = fd;
    this.position = position;
    this.durablePosition = position;
    this.bytesWritten += position;
    this.syncs++;
    this.pending = [];
    this.pendingBytes = 0;
    return count;
  }

  close(): void {
    if (this.closed) return;
    if (this.syncInFlight) throw new CbftError(WalErrorCode, `${this.path}: close while a sync is in flight (await idle() first)`);
    this.sync();
    this.closed = true;
    closeSync(this.fd);
  }
}

export function walPath(dataDir: string): string {
  return join(dataDir, 'wal.log');
}
