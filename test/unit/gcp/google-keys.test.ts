import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createGooglePushVerifier,
  GOOGLE_ISSUERS,
  googleCertsKeySource,
} from "../../../functions/api/google-keys.js";
import { createOidcVerifier } from "../../../functions/api/oidc.js";

const T0 = 1_800_000_000_000;
const AUDIENCE = "https://api.example.test";
const PUSHER = "push@proj.iam.gserviceaccount.com";

function keyPair(kid: string) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pub = publicKey.export({ format: "jwk" }) as { kty: string; n: string; e: string };
  return { privateKey, jwk: { ...pub, kid, alg: "RS256", use: "sig" } };
}
const k1 = keyPair("k1");
const k2 = keyPair("k2");

function token(kid: string, key: KeyObject, nowMs: number, claims: Record<string, unknown> = {}) {
  const h = Buffer.from(JSON.stringify({ alg: "RS256", kid, typ: "JWT" })).toString("base64url");
  const now = Math.floor(nowMs / 1000);
  const body = {
    iss: "https://accounts.google.com",
    aud: AUDIENCE,
    email: PUSHER,
    email_verified: true,
    sub: "1234",
    iat: now,
    exp: now + 3600,
    ...claims,
  };
  const p = Buffer.from(JSON.stringify(body)).toString("base64url");
  return `Bearer ${h}.${p}.${sign("RSA-SHA256", Buffer.from(`${h}.${p}`), key).toString("base64url")}`;
}

/** A fake certs endpoint: answers what `answer` says now, counts calls. */
function fakeCerts(initial: { keys: unknown[] }, headers: Record<string, string> = {}) {
  const state = {
    calls: 0,
    body: initial as unknown,
    status: 200,
    headers,
    fail: false,
  };
  const fetchImpl = (async (url: string | URL | Request) => {
    state.calls++;
    if (state.fail) throw new TypeError(`fetch failed: ${String(url)}`);
    return new Response(JSON.stringify(state.body), {
      status: state.status,
      headers: { "content-type": "application/json", ...state.headers },
    });
  }) as typeof fetch;
  return { state, fetchImpl };
}

function clock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe("googleCertsKeySource", () => {
  it("fetches once and keeps the keys for the response's max-age", async () => {
    const { state, fetchImpl } = fakeCerts({ keys: [k1.jwk] }, { "cache-control": "public, max-age=600" });
    const c = clock();
    const source = googleCertsKeySource({ url: "https://certs.test/x", fetch: fetchImpl, now: c.now });
    expect((await source()).keys.map((k) => k.kid)).toEqual(["k1"]);
    c.t += 599_000;
    await source("k1");
    expect(state.calls).toBe(1);
    c.t += 1_000;
    state.body = { keys: [k1.jwk, k2.jwk] };
    expect((await source()).keys.map((k) => k.kid)).toEqual(["k1", "k2"]);
    expect(state.calls).toBe(2);
  });

  it("subtracts the response's Age from max-age, and keeps keys an hour when no max-age is given", async () => {
    const aged = fakeCerts({ keys: [k1.jwk] }, { "cache-control": "max-age=600", age: "500" });
    const c = clock();
    const a = googleCertsKeySource({ fetch: aged.fetchImpl, now: c.now });
    await a();
    c.t += 100_000;
    await a();
    expect(aged.state.calls).toBe(2);

    const bare = fakeCerts({ keys: [k1.jwk] });
    const d = clock();
    const b = googleCertsKeySource({ fetch: bare.fetchImpl, now: d.now });
    await b();
    d.t += 3_599_000;
    await b();
    expect(bare.state.calls).toBe(1);
    d.t += 1_000;
    await b();
    expect(bare.state.calls).toBe(2);
  });

  it("refetches when a token names an unknown key id, so a rotated key verifies at once", async () => {
    const { state, fetchImpl } = fakeCerts({ keys: [k1.jwk] }, { "cache-control": "max-age=3600" });
    const c = clock();
    const source = googleCertsKeySource({ fetch: fetchImpl, now: c.now });
    const verify = createGooglePushVerifier(source, { audience: AUDIENCE, emails: [PUSHER] });
    expect(await verify(token("k1", k1.privateKey, c.t), c.t)).toBeUndefined();
    c.t += 60_000;
    state.body = { keys: [k1.jwk, k2.jwk] };
    expect(await verify(token("k2", k2.privateKey, c.t), c.t)).toBeUndefined();
    expect(state.calls).toBe(2);
  });

  it("fetches at most once per interval for key ids it cannot find (forged kids)", async () => {
    const { state, fetchImpl } = fakeCerts({ keys: [k1.jwk] }, { "cache-control": "max-age=3600" });
    const c = clock();
    const source = googleCertsKeySource({ fetch: fetchImpl, now: c.now, minRefetchIntervalMs: 30_000 });
    await source();
    c.t += 30_000;
    for (let i = 0; i < 50; i++) await source(`forged-${i}`);
    expect(state.calls).toBe(2);
    c.t += 29_999;
    await source("forged-again");
    expect(state.calls).toBe(2);
    c.t += 1;
    await source("forged-again");
    expect(state.calls).toBe(3);
  });

  it("shares one fetch among concurrent callers", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const fetchImpl = (async () => {
      calls++;
      await gate;
      return new Response(JSON.stringify({ keys: [k1.jwk] }));
    }) as typeof fetch;
    const source = googleCertsKeySource({ fetch: fetchImpl, now: clock().now });
    const pending = Array.from({ length: 10 }, (_, i) => source(i % 2 ? "k1" : undefined));
    release();
    const answers = await Promise.all(pending);
    expect(calls).toBe(1);
    expect(answers.every((a) => a.keys[0]?.kid === "k1")).toBe(true);
  });

  it("keeps serving the last good keys when a refetch fails, and retries after the interval", async () => {
    const { state, fetchImpl } = fakeCerts({ keys: [k1.jwk] }, { "cache-control": "max-age=60" });
    const c = clock();
    const source = googleCertsKeySource({ fetch: fetchImpl, now: c.now, minRefetchIntervalMs: 10_000 });
    const verify = createOidcVerifier(source, { issuers: GOOGLE_ISSUERS, audience: AUDIENCE });
    await source();
    c.t += 61_000;
    state.status = 503;
    expect(await verify(token("k1", k1.privateKey, c.t), c.t)).toBeUndefined();
    expect(state.calls).toBe(2);
    state.status = 200;
    state.fail = true;
    c.t += 5_000;
    expect((await source()).keys.map((k) => k.kid)).toEqual(["k1"]);
    expect(state.calls).toBe(2);
    c.t += 5_000;
    expect((await source()).keys.map((k) => k.kid)).toEqual(["k1"]);
    expect(state.calls).toBe(3);
    state.fail = false;
    state.body = { keys: [k2.jwk] };
    c.t += 10_000;
    expect((await source()).keys.map((k) => k.kid)).toEqual(["k2"]);
  });

  it("fails with GoogleCertsUnavailable when it never had keys", async () => {
    const down = fakeCerts({ keys: [] });
    down.state.fail = true;
    const source = googleCertsKeySource({ url: "https://certs.test/down", fetch: down.fetchImpl });
    await expect(source()).rejects.toMatchObject({
      name: "GoogleCertsUnavailable",
      message: expect.stringContaining("https://certs.test/down"),
    });
    const verify = createOidcVerifier(source, { issuers: GOOGLE_ISSUERS, audience: AUDIENCE });
    await expect(verify(token("k1", k1.privateKey, T0), T0)).rejects.toMatchObject({
      name: "GoogleCertsUnavailable",
    });
  });

  it("refuses a body that is not a JWKS, naming the field, and skips keys it cannot use", async () => {
    const bad = fakeCerts({ keys: [{ n: "x" }] });
    await expect(googleCertsKeySource({ fetch: bad.fetchImpl })()).rejects.toMatchObject({
      name: "GoogleCertsUnavailable",
      message: expect.stringContaining("keys[0].kty: expected string, got nothing"),
    });
    const mixed = fakeCerts({
      keys: [{ kty: "EC", crv: "P-256", x: "a", y: "b", kid: "ec" }, { ...k1.jwk, use: "enc" }, k2.jwk],
    });
    expect((await googleCertsKeySource({ fetch: mixed.fetchImpl })()).keys.map((k) => k.kid)).toEqual(["k2"]);
    const none = fakeCerts({ keys: [{ kty: "EC", kid: "ec" }] });
    await expect(googleCertsKeySource({ fetch: none.fetchImpl })()).rejects.toThrow(/no RSA signing key/);
  });
});
