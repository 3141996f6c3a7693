import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { definitionTemplate } from "../../../infra/state-machine.js";
import { gangwayInProcess } from "../../cli-in-process.js";

const dir = mkdtempSync(join(tmpdir(), "gangway-deploy-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = (argv: string[]) =>
  gangwayInProcess(argv, {
    cwd: dir,
    env: { ...process.env, AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined },
  });

describe("gangway deploy", () => {
  it("--dry-run bundles and synthesizes the real app and prints what it would deploy as one JSON line", async () => {
    writeFileSync(
      join(dir, "inventory.yaml"),
      "slices:\n  - name: pod-a\n    type: v4-8\n    hosts:\n      - {address: 10.0.0.2, workerId: 0, agent: '10.0.0.2:7070'}\n",
    );
    const r = await run([
      "deploy",
      "--target",
      "localstack",
      "--dry-run",
      "--stack-name",
      "gw-test",
      "--inventory",
      "inventory.yaml",
      "--push-service-account",
      "push@p.iam.gserviceaccount.com",
      "--out",
      "out",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const plan = JSON.parse(lines[0] ?? "") as {
      dryRun: boolean;
      stackName: string;
      endpoint: string;
      region: string;
      resources: Record<string, number>;
      assets: Array<{ asset: string; packaging: string; bytes: number; to: string }>;
      outputs: string[];
    };
    expect(plan).toMatchObject({
      dryRun: true,
      stackName: "gw-test",
      endpoint: "http://localhost:4566",
      region: "us-east-1",
    });
    expect(plan.resources).toMatchObject({
      "AWS::Lambda::Function": 10,
      "AWS::StepFunctions::StateMachine": 1,
      "AWS::SecretsManager::Secret": 3,
      "AWS::Lambda::Url": 1,
    });
    // Two code bundles (every step shares one), the inventory and the template.
    const zips = plan.assets.filter((a) => a.packaging === "zip");
    expect(zips).toHaveLength(2);
    for (const z of zips) expect(z.bytes).toBeGreaterThan(100_000);
    expect(plan.assets).toHaveLength(4);
    for (const a of plan.assets)
      expect(a.to).toMatch(/^s3:\/\/gangway-assets-000000000000-us-east-1\/gw-test\//);
    expect(plan.outputs).toEqual(
      expect.arrayContaining(["apiUrl", "stateMachineArn", "webhookSecretArn", "agentTokenSecretArn"]),
    );
    // --out keeps the assembly: the template holds the committed definition, names prefixed by the stack.
    const template = JSON.parse(
      readFileSync(join(dir, "out", "assembly", "gw-test.template.json"), "utf8"),
    ) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const machine = Object.values(template.Resources).find(
      (x) => x.Type === "AWS::StepFunctions::StateMachine",
    );
    expect(machine?.Properties.DefinitionString).toBe(definitionTemplate());
    expect(machine?.Properties.StateMachineName).toBe("gw-test-gangway-multislice");
  }, 120_000);

  it("says how to start LocalStack when nothing answers, before any slow work", async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    const r = await run(["deploy", "--target", "localstack", "--endpoint", `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `LocalStackUnreachable: LocalStack does not answer at http://127.0.0.1:${port}`,
    );
    expect(r.stderr).toContain("start it with `localstack start`");
    expect(r.stdout).toBe("");
  });

  it("refuses bad usage with exit code 2", async () => {
    expect((await run(["deploy"])).code).toBe(2);
    expect((await run(["deploy", "--target", "azure"])).stderr).toMatch(
      /expected localstack, aws or gcp-pubsub, got "azure"/,
    );
    expect((await run(["deploy", "--target", "aws", "--dry-run"])).stderr).toMatch(/--region or AWS_REGION/);
    expect(
      (await run(["deploy", "--target", "aws", "--region", "eu-west-1", "--endpoint", "http://x:1"])).code,
    ).toBe(2);
    expect((await run(["deploy", "--target", "localstack", "--endpoint", "localhost"])).code).toBe(2);
    expect(
      (await run(["deploy", "--target", "localstack", "--stack-name", "1bad", "--dry-run"])).code,
    ).not.toBe(0);
    expect((await run(["deploy", "--target", "gcp-pubsub"])).stderr).toMatch(/--api-url is required/);
  });
});
