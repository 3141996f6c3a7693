import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { crc32, zipDirectory } from "../../../infra/aws/zip.js";

const hasUnzip = spawnSync("unzip", ["-v"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "gangway-zip-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("zipDirectory", () => {
  it("computes the standard CRC-32", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it("makes the same bytes for the same files", async () => {
    const src = join(dir, "same");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "index.mjs"), "export const handler = async () => 1;\n");
    writeFileSync(join(src, "sub", "x.proto"), "syntax = 'proto3';\n");
    const a = await zipDirectory(src);
    const b = await zipDirectory(src);
    expect(a.equals(b)).toBe(true);
    // End of central directory: two entries.
    expect(a.readUInt32LE(a.length - 22)).toBe(0x06054b50);
    expect(a.readUInt16LE(a.length - 22 + 10)).toBe(2);
  });

  it.skipIf(!hasUnzip)("unpacks with unzip to the same files, deflated and stored alike", async () => {
    const src = join(dir, "src");
    mkdirSync(join(src, "nested", "deeper"), { recursive: true });
    const big = "gangway ".repeat(50_000);
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
    writeFileSync(join(src, "index.mjs"), big);
    writeFileSync(join(src, "nested", "deeper", "noise.bin"), random);
    writeFileSync(join(src, "empty.txt"), "");
    const zip = await zipDirectory(src);
    expect(zip.length).toBeLessThan(big.length / 10);
    const file = join(dir, "out.zip");
    writeFileSync(file, zip);
    execFileSync("unzip", ["-tq", file]);
    const dest = join(dir, "dest");
    execFileSync("unzip", ["-q", file, "-d", dest]);
    expect(readFileSync(join(dest, "index.mjs"), "utf8")).toBe(big);
    expect(readFileSync(join(dest, "nested", "deeper", "noise.bin")).equals(random)).toBe(true);
    expect(readFileSync(join(dest, "empty.txt"), "utf8")).toBe("");
  });
});
