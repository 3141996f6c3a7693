import { z } from "zod";
import { GangwayError } from "../../core/errors.js";
import { describeValue, toValidationIssues, type ValidationIssue } from "../../core/validation.js";

/** Options of `deployPubSub`, as callers write them. */
export interface DeployPubSubOptions {
  /** The API's base URL; pushes go to `${apiUrl}/push/<route>`. https, or http on a loopback host. */
  apiUrl: string;
  /** The service account whose OIDC tokens Pub/Sub attaches to every push. */
  pushServiceAccount: string;
  /** `aud` claim of the push tokens; default `apiUrl`. */
  audience?: string;
  /** Deliveries before a message goes to its dead-letter topic (5–100); default 5. */
  maxDeliveryAttempts?: number;
  /** Retry policy's minimum backoff, seconds (0–600); default 1. */
  minBackoffSeconds?: number;
  /** Retry policy's maximum backoff, seconds (0–600); default 60. */
  maxBackoffSeconds?: number;
  /** How long the API may take to answer a push, seconds (10–600); default 30. */
  ackDeadlineSeconds?: number;
  /** Labels put on every resource, beside `managed-by: gangway`. */
  labels?: Record<string, string>;
  /** Read and report what would change; change nothing. */
  dryRun?: boolean;
  /** The project's number, to write it into the IAM commands (else they look it up). */
  projectNumber?: string;
  /**
   * Accept a plain-http `apiUrl` on any host, for an emulator reached over a private network
   * (Google itself pushes only to https endpoints). Default false: http only on loopback hosts.
   */
  allowHttp?: boolean;
}

/** Options after defaults: what the deployer works from. */
export type ResolvedDeployOptions = Required<Omit<DeployPubSubOptions, "projectNumber">> & {
  projectNumber?: string | undefined;
};

/** Options that do not parse; `issues` names each field path, what was expected and what was there. */
export class InvalidDeployOptions extends GangwayError {
  override readonly name = "InvalidDeployOptions";
  readonly code = "InvalidDeployOptions";
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[]) {
    super(`invalid Pub/Sub deploy options:\n${issues.map((i) => `  ${i.message}`).join("\n")}`, { issues });
    this.issues = issues;
  }

  /** The `{code, message, issues}` body every gangway edge answers with. */
  toJSON(): { code: string; message: string; issues: ValidationIssue[] } {
    return { code: this.code, message: this.message, issues: this.issues };
  }
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

const apiUrlSchema = (allowHttp: boolean) =>
  z.string().superRefine((value, ctx) => {
    const fail = (expected: string) =>
      ctx.addIssue({
        code: "custom",
        message: expected,
        params: { expected, got: describeValue(value) },
        input: value,
      });
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return fail("an absolute URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return fail("an https URL");
    if (url.protocol === "http:" && !allowHttp && !LOOPBACK.test(url.hostname)) {
      return fail("an https URL (http only on a loopback host, or with allowHttp)");
    }
    if (url.search || url.hash || url.username || url.password) {
      return fail("a base URL without query, fragment or credentials");
    }
  });

// Label rules as Google states them: lowercase letters, digits, `_` and `-`; keys start with a letter.
const LabelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  const entries = Object.entries(labels);
  if (entries.length > 63) {
    const expected = "at most 63 labels";
    ctx.addIssue({
      code: "custom",
      message: expected,
      params: { expected, got: `${entries.length}` },
      input: labels,
    });
  }
  for (const [key, value] of entries) {
    const keyOk = /^[a-z][a-z0-9_-]{0,62}$/.test(key);
    const expected = keyOk
      ? "a label value: [a-z0-9_-], at most 63 characters"
      : "a label key: a lowercase letter, then [a-z0-9_-], at most 63 characters";
    if (keyOk && /^[a-z0-9_-]{0,63}$/.test(value)) continue;
    const got = describeValue(keyOk ? value : key);
    ctx.addIssue({ code: "custom", path: [key], message: expected, params: { expected, got }, input: value });
  }
});

const deployOptionsSchema = (allowHttp: boolean) =>
  z
    .strictObject({
      apiUrl: apiUrlSchema(allowHttp),
      pushServiceAccount: z
        .string()
        .regex(/^[a-z0-9][a-z0-9._-]*@[a-z0-9-]+(\.[a-z0-9-]+)+$/i, "a service account email (name@domain)"),
      audience: z.string().min(1).max(2048).optional(),
      maxDeliveryAttempts: z.int().min(5).max(100).default(5),
      minBackoffSeconds: z.number().min(0).max(600).default(1),
      maxBackoffSeconds: z.number().min(0).max(600).default(60),
      ackDeadlineSeconds: z.int().min(10).max(600).default(30),
      labels: LabelsSchema.default({}),
      dryRun: z.boolean().default(false),
      projectNumber: z
        .string()
        .regex(/^\d{1,20}$/, "a project number (digits)")
        .optional(),
      allowHttp: z.boolean().default(false),
    })
    .superRefine((o, ctx) => {
      if (o.minBackoffSeconds > o.maxBackoffSeconds) {
        ctx.addIssue({
          code: "custom",
          path: ["minBackoffSeconds"],
          message: "minBackoffSeconds <= maxBackoffSeconds",
          params: {
            expected: `at most maxBackoffSeconds (${o.maxBackoffSeconds})`,
            got: describeValue(o.minBackoffSeconds),
          },
          input: o.minBackoffSeconds,
        });
      }
    });

/**
 * Check `deployPubSub`'s options and fill the defaults; throws {@link InvalidDeployOptions}
 * naming every problem (field path, expected, got).
 */
export function parseDeployOptions(input: unknown): ResolvedDeployOptions {
  // The URL's rule depends on a sibling field: read it first (it is checked with the rest).
  const allowHttp = (input as { allowHttp?: unknown } | null)?.allowHttp === true;
  const schema = deployOptionsSchema(allowHttp);
  const parsed = schema.safeParse(input, { reportInput: true });
  if (!parsed.success) {
    throw new InvalidDeployOptions(toValidationIssues(parsed.error.issues, [], { schema, input }));
  }
  const o = parsed.data;
  // One spelling of the base URL: no trailing slash, so endpoints never carry `//push`.
  const apiUrl = o.apiUrl.replace(/\/+$/, "");
  return { ...o, apiUrl, audience: o.audience ?? apiUrl };
}
