/** Task tokens of `.waitForTaskToken` tasks: who waits on each, and which ones timed out. */
import { randomBytes } from "node:crypto";

/** Outcome a token is settled with. */
export type TokenOutcome = { output: string } | { error: string; cause: string };

/** A task waiting on its token. */
export interface TokenWaiter {
  executionArn: string;
  settle(outcome: TokenOutcome): void;
  heartbeat(): void;
}

const TOKEN_RE = /^AQ[A-Za-z0-9_-]{40,}$/;
const TIMED_OUT_MEMORY = 10_000;

/** The registry; tokens look like AWS's (opaque, `AQ…`), so a malformed one answers `InvalidToken`. */
export class TokenRegistry {
  private readonly waiters = new Map<string, TokenWaiter>();
  private readonly timedOut = new Set<string>();

  /** A new opaque token. */
  static create(): string {
    return `AQ${randomBytes(48).toString("base64url")}`;
  }

  /** Is this text shaped like a token this engine hands out? */
  static wellFormed(token: string): boolean {
    return TOKEN_RE.test(token);
  }

  register(token: string, waiter: TokenWaiter): void {
    this.waiters.set(token, waiter);
  }

  unregister(token: string): void {
    this.waiters.delete(token);
  }

  get(token: string): TokenWaiter | undefined {
    return this.waiters.get(token);
  }

  /** Remember that a token's task timed out, so callers hear `TaskTimedOut` rather than `TaskDoesNotExist`. */
  markTimedOut(token: string): void {
    this.waiters.delete(token);
    this.timedOut.add(token);
    if (this.timedOut.size > TIMED_OUT_MEMORY) {
      const first = this.timedOut.values().next().value;
      if (first !== undefined) this.timedOut.delete(first);
    }
  }

  isTimedOut(token: string): boolean {
    return this.timedOut.has(token);
  }
}
