import { generateKeyPair, generateKeyPairSync, type KeyObject, randomUUID, sign } from "node:crypto";

/** Issuer of the tokens, as on Google's push tokens. */
export const PUSH_TOKEN_ISSUER = "https://accounts.google.com";

/** One RSA public key in JWK form (RFC 7517), as in Google's certs endpoint. */
export interface PublicJwk {
  kty: string;
  n: string;
  e: string;
  kid: string;
  alg: "RS256";
  use: "sig";
}

/** A JSON Web Key Set: `{ keys: [...] }`. */
export interface JsonWebKeySet {
  keys: PublicJwk[];
}

/** Claims of a push token: who pushed (`email`), to whom (`aud`), when. */
export interface PushTokenClaims {
  iss: string;
  aud: string;
  email: string;
  email_verified: true;
  sub: string;
  iat: number;
  exp: number;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

/**
 * Signs OIDC-style push tokens (RS256 JWTs) with a key pair of its own, and publishes the
 * public half as a JWKS so receivers can check who pushed — the same checks as against Google's keys.
 */
export class PushTokenSigner {
  readonly kid = randomUUID();
  private keys: { privateKey: KeyObject; jwk: PublicJwk } | undefined;
  private preparing: Promise<void> | undefined;
  private readonly cache = new Map<string, { token: string; exp: number }>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  /**
   * Generate the key pair off the event loop (an RSA key costs a few hundred milliseconds of CPU,
   * which would otherwise stall the first push); resolves at once when it exists.
   */
  prepare(): Promise<void> {
    if (this.keys) return Promise.resolve();
    this.preparing ??= new Promise<void>((resolve) => {
      generateKeyPair("rsa", { modulusLength: 2048 }, (err, publicKey, privateKey) => {
        if (!err && !this.keys) this.keys = this.keysOf(privateKey, publicKey);
        resolve(); // on error, keyPair() makes one synchronously
      });
    });
    return this.preparing;
  }

  private keysOf(privateKey: KeyObject, publicKey: KeyObject) {
    const pub = publicKey.export({ format: "jwk" }) as { kty: string; n: string; e: string };
    const jwk: PublicJwk = { kty: pub.kty, n: pub.n, e: pub.e, kid: this.kid, alg: "RS256", use: "sig" };
    return { privateKey, jwk };
  }

  // Made on first use when prepare() was not awaited: most emulator runs never push with a token.
  private keyPair(): { privateKey: KeyObject; jwk: PublicJwk } {
    if (!this.keys) {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      this.keys = this.keysOf(privateKey, publicKey);
    }
    return this.keys;
  }

  /** The public keys, e.g. to serve at a `jwks_uri` or hand to a verifier. */
  jwks(): JsonWebKeySet {
    return { keys: [{ ...this.keyPair().jwk }] };
  }

  /** A token for `email` pushing to `audience`; reused until five minutes before it expires. */
  token(email: string, audience: string): string {
    const now = Math.floor(this.nowMs() / 1000);
    const key = `${email}\n${audience}`;
    const hit = this.cache.get(key);
    if (hit && hit.exp - 300 > now) return hit.token;
    const claims: PushTokenClaims = {
      iss: PUSH_TOKEN_ISSUER,
      aud: audience,
      email,
      email_verified: true,
      sub: email,
      iat: now,
      exp: now + 3600,
    };
    const header = { alg: "RS256", typ: "JWT", kid: this.kid };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), this.keyPair().privateKey);
    const token = `${signingInput}.${b64url(signature)}`;
    this.cache.set(key, { token, exp: claims.exp });
    return token;
  }
}
