import { createHash, timingSafeEqual } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * Checks `authorization: Bearer <token>` against the agent's token. Both sides are hashed first
 * so the comparison takes the same time whatever the length or content of the presented token.
 */
export function createTokenCheck(token: string): (metadata: Metadata) => boolean {
  if (token.length === 0) throw new Error("agent token must not be empty");
  const expected = digest(token);
  return (metadata) => {
    const values = metadata.get("authorization");
    if (values.length !== 1) return false;
    const value = values[0];
    if (typeof value !== "string" || !value.startsWith("Bearer ")) return false;
    return timingSafeEqual(digest(value.slice("Bearer ".length)), expected);
  };
}
