import { describe, expect, it } from "vitest";
import { InvalidDeployOptions, parseDeployOptions } from "../../../infra/gcp/deploy-options.js";
import { pubsubServiceAgentSteps } from "../../../infra/gcp/iam-steps.js";

const SA = "gangway-push@proj-1.iam.gserviceaccount.com";

function issuesOf(input: unknown) {
  try {
    parseDeployOptions(input);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidDeployOptions);
    return (e as InvalidDeployOptions).issues;
  }
  throw new Error("expected the options to be refused");
}

describe("deployPubSub options", () => {
  it("fills the defaults and takes the audience from the API URL without its trailing slash", () => {
    expect(
      parseDeployOptions({ apiUrl: "https://api.example.com/gangway/", pushServiceAccount: SA }),
    ).toEqual({
      apiUrl: "https://api.example.com/gangway",
      pushServiceAccount: SA,
      audience: "https://api.example.com/gangway",
      maxDeliveryAttempts: 5,
      minBackoffSeconds: 1,
      maxBackoffSeconds: 60,
      ackDeadlineSeconds: 30,
      labels: {},
      dryRun: false,
      allowHttp: false,
    });
    const o = parseDeployOptions({
      apiUrl: "http://127.0.0.1:8080",
      pushServiceAccount: SA,
      audience: "gangway-api",
      projectNumber: "123456789012",
    });
    expect(o.audience).toBe("gangway-api");
    expect(o.projectNumber).toBe("123456789012");
    expect(parseDeployOptions({ apiUrl: "http://localhost:1", pushServiceAccount: SA }).apiUrl).toBe(
      "http://localhost:1",
    );
    expect(parseDeployOptions({ apiUrl: "http://[::1]:9/", pushServiceAccount: SA }).apiUrl).toBe(
      "http://[::1]:9",
    );
    // An emulator on a private network: plain http only when asked for.
    expect(
      parseDeployOptions({ apiUrl: "http://10.0.0.5:8080", pushServiceAccount: SA, allowHttp: true }).apiUrl,
    ).toBe("http://10.0.0.5:8080");
  });

  it.each([
    [
      "plain http to a public host",
      { apiUrl: "http://api.example.com" },
      'apiUrl: expected an https URL (http only on a loopback host, or with allowHttp), got string "http://api.example.com"',
    ],
    ["a relative URL", { apiUrl: "/push" }, 'apiUrl: expected an absolute URL, got string "/push"'],
    [
      "a URL with a query",
      { apiUrl: "https://api.example.com/?x=1" },
      "apiUrl: expected a base URL without query, fragment or credentials",
    ],
    ["another scheme", { apiUrl: "ftp://api.example.com" }, "apiUrl: expected an https URL"],
    [
      "a service account that is not an email",
      { pushServiceAccount: "gangway-push" },
      'pushServiceAccount: expected a service account email (name@domain), got string "gangway-push"',
    ],
    [
      "too few delivery attempts",
      { maxDeliveryAttempts: 3 },
      "maxDeliveryAttempts: expected a number at least 5, got integer 3",
    ],
    [
      "a fractional ack deadline",
      { ackDeadlineSeconds: 12.5 },
      "ackDeadlineSeconds: expected int, got number 12.5",
    ],
    [
      "a minimum backoff above the maximum",
      { minBackoffSeconds: 30, maxBackoffSeconds: 10 },
      "minBackoffSeconds: expected at most maxBackoffSeconds (10), got integer 30",
    ],
    [
      "a backoff over ten minutes",
      { maxBackoffSeconds: 601 },
      "maxBackoffSeconds: expected a number at most 600",
    ],
    ["an upper-case label key", { labels: { Team: "ml" } }, "labels.Team: expected a label key"],
    ["a label value with a space", { labels: { team: "m l" } }, "labels.team: expected a label value"],
    [
      "an unknown option",
      { apiURL: "https://x" },
      "apiURL: expected one of the known fields apiUrl, pushServiceAccount, audience",
    ],
    [
      "a project number with letters",
      { projectNumber: "proj-1" },
      "projectNumber: expected a project number",
    ],
  ])("refuses %s, naming the field, what was expected and what was there", (_what, patch, message) => {
    const issues = issuesOf({ apiUrl: "https://api.example.com", pushServiceAccount: SA, ...patch });
    expect(issues.map((i) => i.message).join("\n")).toContain(message);
  });

  it("answers every problem at once as {code, message, issues}", () => {
    let error: InvalidDeployOptions | undefined;
    try {
      parseDeployOptions({ apiUrl: 42, maxDeliveryAttempts: 500 });
    } catch (e) {
      error = e as InvalidDeployOptions;
    }
    expect(error?.name).toBe("InvalidDeployOptions");
    const body = JSON.parse(JSON.stringify(error)) as { code: string; message: string; issues: unknown[] };
    expect(body.code).toBe("InvalidDeployOptions");
    expect(body.issues).toEqual([
      {
        path: "apiUrl",
        expected: "string",
        got: "integer 42",
        message: "apiUrl: expected string, got integer 42",
      },
      {
        path: "pushServiceAccount",
        expected: "string",
        got: "nothing",
        message: "pushServiceAccount: expected string, got nothing",
      },
      {
        path: "maxDeliveryAttempts",
        expected: "a number at most 100",
        got: "integer 500",
        message: "maxDeliveryAttempts: expected a number at most 100, got integer 500",
      },
    ]);
    expect(body.message).toContain("maxDeliveryAttempts: expected a number at most 100");
  });
});

describe("IAM steps for the Pub/Sub service agent", () => {
  const input = {
    project: "proj-1",
    pushServiceAccount: SA,
    deadLetterTopics: ["t-dead-letter"],
    pushSubscriptions: ["t-push"],
  };

  it("looks the project number up when it is not given, and grants the three roles", () => {
    expect(pubsubServiceAgentSteps(input)).toEqual([
      "PROJECT_NUMBER=$(gcloud projects describe proj-1 --format='value(projectNumber)')",
      `gcloud iam service-accounts add-iam-policy-binding ${SA} --project=proj-1 --member="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" --role=roles/iam.serviceAccountTokenCreator`,
      `gcloud pubsub topics add-iam-policy-binding t-dead-letter --project=proj-1 --member="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" --role=roles/pubsub.publisher`,
      `gcloud pubsub subscriptions add-iam-policy-binding t-push --project=proj-1 --member="serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" --role=roles/pubsub.subscriber`,
    ]);
  });

  it("writes a known project number in, and quotes what the shell would read otherwise", () => {
    const steps = pubsubServiceAgentSteps({ ...input, projectNumber: "42", project: "odd project" });
    expect(steps).toHaveLength(3);
    expect(steps[0]).toContain("service-42@gcp-sa-pubsub.iam.gserviceaccount.com");
    expect(steps[0]).toContain("--project='odd project'");
  });
});
