import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Check an HTTP `Authorization: Bearer <token>` header in constant time. */
export function createTokenCheckForHeader(token: string): (header: string | undefined) => boolean {
  if (token.length === 0) throw new Error("admin token must not be empty");
  const expected = digest(token);
  return (header) => {
    if (typeof header !== "string" || !header.startsWith("Bearer ")) return false;
    return timingSafeEqual(digest(header.slice("Bearer ".length)), expected);
  };
}
