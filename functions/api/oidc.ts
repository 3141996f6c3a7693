import { createPublicKey, type KeyObject, verify } from "node:crypto";

/** One RSA public key of a JSON Web Key Set. */
export interface Jwk {
  kty: string;
  n: string;
  e: string;
  kid?: string | undefined;
  alg?: string | undefined;
}

/**
 * Where a verifier gets its keys: Google's certs in production, the emulator's in tests. It is
 * told the key id the token names, so a source may fetch afresh for one it has not seen.
 */
export type KeySource = (kid?: string) => Promise<{ keys: Jwk[] }> | { keys: Jwk[] };

/** What a push token must say. */
export interface OidcExpectations {
  /** Accepted issuers (Google's tokens say `https://accounts.google.com` or `accounts.google.com`). */
  issuers: readonly string[];
  audience: string;
  /** Accepted pushers (service account emails); any when empty. */
  emails?: readonly string[] | undefined;
  /** Clock skew allowed on `exp`/`iat`, seconds (default 60). */
  skewSeconds?: number | undefined;
}

const b64json = (part: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown;
    return value && typeof value === "object" ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

/**
 * A verifier of OIDC bearer tokens on Pub/Sub pushes (RS256 JWTs): signature against the key
 * source's keys, issuer, audience, expiry and, when given, the pushing service account.
 * Answers why a token is refused, or `undefined` when it is good.
 *
 * @example
 * const check = createOidcVerifier(() => emulator.jwks(), { issuers: ["https://accounts.google.com"], audience: api });
 * const problem = await check(c.req.header("authorization"), Date.now());
 */
export function createOidcVerifier(keys: KeySource, expect: OidcExpectations) {
  const skew = expect.skewSeconds ?? 60;
  // A pusher reuses one token for up to an hour: a signature checked once against a key still in
  // the key set need not be checked again (RSA is the costly part of every push).
  const checked = new Map<string, string>();
  const keyObjects = new Map<string, KeyObject>();
  const idOf = (jwk: Jwk) => `${jwk.kid ?? ""}|${jwk.n}|${jwk.e}`;
  const signatureGood = (jwk: Jwk, signed: string, sig: string): boolean => {
    const id = idOf(jwk);
    if (checked.get(`${signed}.${sig}`) === id) return true;
    try {
      let key = keyObjects.get(id);
      if (!key) {
        key = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: "jwk" });
        if (keyObjects.size >= 64) keyObjects.clear();
        keyObjects.set(id, key);
      }
      if (!verify("RSA-SHA256", Buffer.from(signed), key, Buffer.from(sig, "base64url"))) return false;
    } catch {
      return false;
    }
    if (checked.size >= 1024) checked.clear();
    checked.set(`${signed}.${sig}`, id);
    return true;
  };
  return async (authorization: string | undefined, nowMs: number): Promise<string | undefined> => {
    const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(authorization ?? "");
    if (!m) return "expected an Authorization: Bearer <JWT> header";
    const [, h = "", p = "", sig = ""] = m;
    const header = b64json(h);
    const claims = b64json(p);
    if (!header || !claims) return "the token is not a JWT";
    if (header.alg !== "RS256") return `unsupported token algorithm ${String(header.alg)}`;
    const kid = typeof header.kid === "string" ? header.kid : undefined;
    const jwk = (await keys(kid)).keys.find((k) => header.kid === undefined || k.kid === header.kid);
    if (!jwk) return `no key ${String(header.kid)} to check the token with`;
    if (!signatureGood(jwk, `${h}.${p}`, sig)) return "the token's signature does not verify";
    const now = Math.floor(nowMs / 1000);
    if (typeof claims.exp !== "number" || claims.exp + skew < now) return "the token has expired";
    if (typeof claims.iat === "number" && claims.iat - skew > now)
      return "the token was issued in the future";
    if (typeof claims.iss !== "string" || !expect.issuers.includes(claims.iss))
      return `unexpected issuer ${String(claims.iss)}`;
    const aud = claims.aud;
    if (!(aud === expect.audience || (Array.isArray(aud) && aud.includes(expect.audience))))
      return `unexpected audience ${String(aud)}`;
    if (
      expect.emails?.length &&
      !(
        typeof claims.email === "string" &&
        claims.email_verified === true &&
        expect.emails.includes(claims.email)
      )
    ) {
      return `unexpected pusher ${String(claims.email)}`;
    }
    return undefined;
  };
}
