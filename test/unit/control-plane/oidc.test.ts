import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOidcVerifier } from "../../../functions/api/oidc.js";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...(publicKey.export({ format: "jwk" }) as { kty: string; n: string; e: string }), kid: "k1" };
const NOW = 1_800_000_000;

function token(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: "RS256", kid: "k1" },
  key = privateKey,
) {
  const h = Buffer.from(JSON.stringify(header)).toString("base64url");
  const p = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `Bearer ${h}.${p}.${sign("RSA-SHA256", Buffer.from(`${h}.${p}`), key).toString("base64url")}`;
}
const good = {
  iss: "https://accounts.google.com",
  aud: "https://api",
  email: "push@x.iam",
  email_verified: true,
  iat: NOW - 10,
  exp: NOW + 3600,
};
const verify = createOidcVerifier(() => ({ keys: [jwk] }), {
  issuers: ["https://accounts.google.com"],
  audience: "https://api",
  emails: ["push@x.iam"],
});

describe("OIDC push tokens", () => {
  it("accepts a token signed by a known key for the right audience and pusher", async () => {
    expect(await verify(token(good), NOW * 1000)).toBeUndefined();
  });

  it.each([
    ["no header", undefined, "expected an Authorization"],
    ["garbage", "Bearer abc", "expected an Authorization"],
    ["an expired token", token({ ...good, exp: NOW - 3600 }), "expired"],
    ["another audience", token({ ...good, aud: "https://elsewhere" }), "unexpected audience"],
    ["another issuer", token({ ...good, iss: "https://evil" }), "unexpected issuer"],
    ["another pusher", token({ ...good, email: "who@x" }), "unexpected pusher"],
    ["an unknown key", token(good, { alg: "RS256", kid: "k2" }), "no key k2"],
    [
      "a forged signature",
      token(good, undefined, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey),
      "does not verify",
    ],
    ["alg none", token(good, { alg: "none", kid: "k1" }), "unsupported token algorithm"],
  ])("refuses %s", async (_what, authorization, message) => {
    expect(await verify(authorization, NOW * 1000)).toContain(message);
  });
});

describe("OIDC push tokens seen before", () => {
  it("still expire, and are refused once their key leaves the key set", async () => {
    let keys = [jwk];
    const check = createOidcVerifier(() => ({ keys }), {
      issuers: ["https://accounts.google.com"],
      audience: "https://api",
    });
    const once = token(good);
    expect(await check(once, NOW * 1000)).toBeUndefined();
    expect(await check(once, NOW * 1000)).toBeUndefined();
    expect(await check(once, (NOW + 7200) * 1000)).toContain("expired");
    // The same kid, another key (a rotation that reused the id): the old signature no longer holds.
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    keys = [{ ...(other.export({ format: "jwk" }) as { kty: string; n: string; e: string }), kid: "k1" }];
    expect(await check(once, NOW * 1000)).toContain("does not verify");
    keys = [];
    expect(await check(once, NOW * 1000)).toContain("no key");
  });
});
