import { z } from "zod";
import { GangwayError } from "../../core/errors.js";
import { toValidationIssues } from "../../core/validation.js";
import { createOidcVerifier, type Jwk, type OidcExpectations } from "./oidc.js";

/** Where Google publishes the public keys (a JWKS) that sign its OIDC tokens, Pub/Sub pushes' included. */
export const GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs";

/** The `iss` claims Google's OIDC tokens carry (both spellings are in use). */
export const GOOGLE_ISSUERS: readonly string[] = ["https://accounts.google.com", "accounts.google.com"];

/** Google's certs could not be had (network, HTTP status, malformed JWKS) and none are cached. */
export class GoogleCertsUnavailable extends GangwayError {
  override readonly name = "GoogleCertsUnavailable";
}

/** Options of {@link googleCertsKeySource}. */
export interface GoogleCertsOptions {
  /** JWKS address; default {@link GOOGLE_CERTS_URL}. */
  url?: string;
  /** The fetch to use (tests inject one); default the global fetch. */
  fetch?: typeof fetch;
  /** Clock in milliseconds; default `Date.now`. */
  now?: () => number;
  /** How long keys stay fresh when the response names no `max-age` (ms); default one hour. */
  defaultMaxAgeMs?: number;
  /**
   * Least time between two fetches made for an unknown key id or after a failure, while keys are
   * cached (ms); default 30 s. A token naming a forged `kid` thus costs at most one fetch per interval.
   */
  minRefetchIntervalMs?: number;
  /** Give up on one fetch after this long (ms); default 10 s. */
  timeoutMs?: number;
}

/**
 * A key source over Google's certs. Assignable to the verifier's `KeySource`; called with the
 * key id a token names, it refetches the certs when that id is not cached (Google rotates keys).
 */
export type GoogleKeySource = (kid?: string) => Promise<{ keys: Jwk[] }>;

const JwksSchema = z.object({
  keys: z.array(
    z.object({
      kty: z.string(),
      n: z.string().optional(),
      e: z.string().optional(),
      kid: z.string().optional(),
      alg: z.string().optional(),
      use: z.string().optional(),
    }),
  ),
});

/** Seconds of freshness a response allows: `max-age` less `Age`; undefined when it says nothing. */
function freshSeconds(cacheControl: string | null, age: string | null): number | undefined {
  if (!cacheControl) return undefined;
  if (/(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)/i.test(cacheControl)) return 0;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl);
  if (!m) return undefined;
  const already = age && /^\d+$/.test(age.trim()) ? Number(age.trim()) : 0;
  return Math.max(0, Number(m[1]) - already);
}

async function fetchCerts(
  url: string,
  fetchImpl: typeof fetch,
  timeoutMs: number,
): Promise<{ keys: Jwk[]; freshSeconds: number | undefined }> {
  let res: Response;
  try {
    res = await fetchImpl(url, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: "application/json" },
    });
  } catch (e) {
    throw new GoogleCertsUnavailable(
      `fetching ${url} failed: ${(e as Error).message}`,
      { url },
      { cause: e },
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new GoogleCertsUnavailable(`fetching ${url} answered HTTP ${res.status}`, {
      url,
      status: res.status,
    });
  }
  let raw: unknown;
  try {
    raw = await res.json();
  } catch (e) {
    throw new GoogleCertsUnavailable(`${url} did not answer JSON`, { url }, { cause: e });
  }
  const parsed = JwksSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    const issues = toValidationIssues(parsed.error.issues);
    throw new GoogleCertsUnavailable(
      `${url} did not answer a JWKS: ${issues.map((i) => i.message).join("; ")}`,
      {
        url,
        issues,
      },
    );
  }
  // Only RSA signing keys can check RS256 tokens; anything else in the set is skipped.
  const keys: Jwk[] = [];
  for (const k of parsed.data.keys) {
    if (k.kty !== "RSA" || !k.n || !k.e || (k.use !== undefined && k.use !== "sig")) continue;
    keys.push({ kty: k.kty, n: k.n, e: k.e, kid: k.kid, alg: k.alg });
  }
  if (keys.length === 0) throw new GoogleCertsUnavailable(`${url} answered no RSA signing key`, { url });
  return { keys, freshSeconds: freshSeconds(res.headers.get("cache-control"), res.headers.get("age")) };
}

/**
 * Google's OIDC public keys as a verifier's key source: fetched on first use, cached for the
 * response's `Cache-Control: max-age`, refetched when stale or when a token names an unknown key
 * id (at most once per `minRefetchIntervalMs`), concurrent fetches shared, and the last good keys
 * served when a refetch fails. Throws {@link GoogleCertsUnavailable} only when no keys were ever had.
 *
 * @example
 * const keys = googleCertsKeySource();
 * const check = createGooglePushVerifier(keys, { audience: apiUrl, emails: [pushServiceAccount] });
 */
export function googleCertsKeySource(options: GoogleCertsOptions = {}): GoogleKeySource {
  const url = options.url ?? GOOGLE_CERTS_URL;
  const fetchImpl = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const defaultMaxAgeMs = options.defaultMaxAgeMs ?? 3_600_000;
  const minInterval = options.minRefetchIntervalMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let cached: { keys: Jwk[]; expiresAt: number } | undefined;
  let lastAttemptAt = Number.NEGATIVE_INFINITY;
  let inflight: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    inflight ??= (async () => {
      lastAttemptAt = now();
      try {
        const got = await fetchCerts(url, fetchImpl, timeoutMs);
        const ttl = got.freshSeconds === undefined ? defaultMaxAgeMs : got.freshSeconds * 1000;
        cached = { keys: got.keys, expiresAt: now() + ttl };
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  return async (kid?: string) => {
    if (inflight !== undefined) {
      try {
        await inflight;
      } catch (e) {
        // Waiters on a failed first fetch share its failure rather than each fetching again.
        if (!cached) throw e;
      }
    }
    const have = cached;
    if (!have) {
      await refresh();
      return { keys: cached?.keys ?? [] };
    }
    const stale = now() >= have.expiresAt;
    const missing = kid !== undefined && !have.keys.some((k) => k.kid === kid);
    if ((stale || missing) && now() - lastAttemptAt >= minInterval) {
      // A failed refetch keeps the last good keys: Google's old keys stay valid for a while.
      await refresh().catch(() => undefined);
    }
    return { keys: (cached ?? have).keys };
  };
}

/**
 * A push-token verifier against Google's keys ({@link createOidcVerifier} with Google's issuers by
 * default), whose key source is told each token's key id, so a rotated key is fetched at
 * once. Make it once and reuse it: the verifier remembers signatures it has checked.
 * Answers why a token is refused, or `undefined` when it is good.
 */
export function createGooglePushVerifier(
  keys: GoogleKeySource,
  expect: Omit<OidcExpectations, "issuers"> & { issuers?: readonly string[] },
): (authorization: string | undefined, nowMs: number) => Promise<string | undefined> {
  // The verifier hands the source the token's key id: it fetches only for one not yet cached.
  return createOidcVerifier(keys, { ...expect, issuers: expect.issuers ?? GOOGLE_ISSUERS });
}
