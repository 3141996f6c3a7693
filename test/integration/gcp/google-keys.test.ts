import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGooglePushVerifier,
  GOOGLE_ISSUERS,
  googleCertsKeySource,
} from "../../../functions/api/google-keys.js";
import { createOidcVerifier } from "../../../functions/api/oidc.js";

// A real HTTP server stands in for https://www.googleapis.com/oauth2/v3/certs; the tokens are
// real RS256 JWTs signed with keys made here, shaped like Google's push tokens.
const AUDIENCE = "https://gangway.example.test";
const PUSHER = "gangway-push@proj.iam.gserviceaccount.com";

function keyPair(kid: string) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pub = publicKey.export({ format: "jwk" }) as { kty: string; n: string; e: string };
  return { kid, privateKey, jwk: { ...pub, kid, alg: "RS256", use: "sig" } };
}
const current = keyPair("2024-a");
const next = keyPair("2024-b");
const stranger = keyPair("2024-a");

function token(kid: string, key: KeyObject, nowMs: number, claims: Record<string, unknown> = {}) {
  const h = Buffer.from(JSON.stringify({ alg: "RS256", kid, typ: "JWT" })).toString("base64url");
  const now = Math.floor(nowMs / 1000);
  const p = Buffer.from(
    JSON.stringify({
      aud: AUDIENCE,
      azp: "1234567890",
      email: PUSHER,
      email_verified: true,
      exp: now + 3600,
      iat: now,
      iss: "https://accounts.google.com",
      sub: "1234567890",
      ...claims,
    }),
  ).toString("base64url");
  return `Bearer ${h}.${p}.${sign("RSA-SHA256", Buffer.from(`${h}.${p}`), key).toString("base64url")}`;
}

let server: Server;
let url: string;
let served = [current.jwk];
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    if (req.url !== "/oauth2/v3/certs") {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, {
        "content-type": "application/json; charset=UTF-8",
        "cache-control": "public, max-age=21600, must-revalidate, no-transform",
      })
      .end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth2/v3/certs`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe("Google push tokens checked against a certs endpoint over HTTP", () => {
  it("accepts a good token and refuses wrong audience, issuer, expiry and signature", async () => {
    served = [current.jwk];
    const before = requests;
    const now = Date.now();
    const verify = createOidcVerifier(googleCertsKeySource({ url }), {
      issuers: GOOGLE_ISSUERS,
      audience: AUDIENCE,
      emails: [PUSHER],
    });
    const sign_ = (claims: Record<string, unknown> = {}) =>
      token(current.kid, current.privateKey, now, claims);
    expect(await verify(sign_(), now)).toBeUndefined();
    expect(await verify(sign_({ iss: "accounts.google.com" }), now)).toBeUndefined();
    expect(await verify(sign_({ aud: "https://elsewhere.test" }), now)).toContain("unexpected audience");
    expect(await verify(sign_({ iss: "https://evil.test" }), now)).toContain("unexpected issuer");
    expect(await verify(sign_({ exp: Math.floor(now / 1000) - 3600 }), now)).toContain("expired");
    expect(await verify(sign_({ email: "someone@else.test" }), now)).toContain("unexpected pusher");
    expect(await verify(token(current.kid, stranger.privateKey, now), now)).toContain("does not verify");
    // Seven checks, one fetch: the keys are cached for the response's max-age.
    expect(requests - before).toBe(1);
  });

  it("fetches a rotated key when a token names it, at most once per interval", async () => {
    served = [current.jwk];
    const before = requests;
    const clock = { t: Date.now() };
    const source = googleCertsKeySource({ url, now: () => clock.t, minRefetchIntervalMs: 30_000 });
    const verify = createGooglePushVerifier(source, { audience: AUDIENCE, emails: [PUSHER] });
    expect(await verify(token(current.kid, current.privateKey, clock.t), clock.t)).toBeUndefined();
    expect(requests - before).toBe(1);

    // Google publishes the next key beside the current one. Right after a fetch, an unknown kid
    // does not fetch again; once the interval has passed, the first token naming it does.
    served = [current.jwk, next.jwk];
    expect(await verify(token(next.kid, next.privateKey, clock.t), clock.t)).toContain(`no key ${next.kid}`);
    expect(requests - before).toBe(1);
    clock.t += 30_000;
    expect(await verify(token(next.kid, next.privateKey, clock.t), clock.t)).toBeUndefined();
    expect(await verify(token(current.kid, current.privateKey, clock.t), clock.t)).toBeUndefined();
    expect(requests - before).toBe(2);

    // Forged key ids cost one fetch per interval, however many come.
    for (let i = 0; i < 20; i++) {
      clock.t += 1_000;
      const refusal = await verify(token(`forged-${i}`, stranger.privateKey, clock.t), clock.t);
      expect(refusal).toContain("no key");
    }
    expect(requests - before).toBe(2);
    clock.t += 10_000;
    await verify(token("forged-last", stranger.privateKey, clock.t), clock.t);
    expect(requests - before).toBe(3);
  });

  it("picks up a rotation without a key-id hint once the cached set goes stale", async () => {
    served = [current.jwk];
    const clock = { t: Date.now() };
    const source = googleCertsKeySource({ url, now: () => clock.t });
    const verify = createOidcVerifier(source, { issuers: GOOGLE_ISSUERS, audience: AUDIENCE });
    expect(await verify(token(current.kid, current.privateKey, clock.t), clock.t)).toBeUndefined();
    served = [next.jwk];
    expect(await verify(token(next.kid, next.privateKey, clock.t), clock.t)).toContain("no key");
    clock.t += 21_600_000;
    expect(await verify(token(next.kid, next.privateKey, clock.t), clock.t)).toBeUndefined();
    expect(await verify(token(current.kid, current.privateKey, clock.t), clock.t)).toContain("no key");
  });
});
