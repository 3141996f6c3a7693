import { createHmac, timingSafeEqual } from "node:crypto";

/** How far a signed request's timestamp may be from now (replays outside it are refused). */
export const SIGNATURE_WINDOW_SECONDS = 300;

/** The signature of a webhook body: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export function signBody(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** Why a signature was refused, or `undefined` when it is good. */
export function signatureProblem(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  body: string,
  nowSeconds: number,
): string | undefined {
  const { timestamp, signature } = headers;
  if (timestamp === undefined || signature === undefined)
    return "missing X-Gangway-Timestamp or X-Gangway-Signature";
  if (!/^\d{1,12}$/.test(timestamp)) return "X-Gangway-Timestamp: expected unix seconds";
  if (Math.abs(nowSeconds - Number(timestamp)) > SIGNATURE_WINDOW_SECONDS) {
    return `X-Gangway-Timestamp: outside the ${SIGNATURE_WINDOW_SECONDS / 60}-minute window`;
  }
  if (!/^sha256=[0-9a-f]{64}$/.test(signature)) return "X-Gangway-Signature: expected sha256=<64 hex digits>";
  const expected = Buffer.from(signBody(secret, timestamp, body));
  const given = Buffer.from(signature);
  // Same length by the format check above, so the comparison itself takes constant time.
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return "X-Gangway-Signature: does not match";
  return undefined;
}
