import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { behaveJob, startTestStack } from "./harness.js";

// The console in real headless Chromium (Debian's, driven by playwright-core), against a running
// stack: it shows a job that went through a preemption. `.ci/run` installs Chromium; on a machine
// without it this file is skipped outside CI and fails in CI.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const available = existsSync(CHROMIUM);

describe.skipIf(!available && !process.env.CI)("the console in Chromium", () => {
  let t: Awaited<ReturnType<typeof startTestStack>>;
  let browser: Browser;
  beforeAll(async () => {
    t = await startTestStack("v4-16x2");
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it("shows a job that went through a preemption", async () => {
    const r = await t.runJob(
      behaveJob("shown", { kind: "tpu", type: "v4-16", slices: 2 }, ["--sleep", "1200"]),
      {
        onRunning: async (attempt, slices) => {
          if (attempt === 1) await t.stack.provider.preemptSlice(slices[1] ?? "");
        },
      },
    );
    expect(r.status).toBe("SUCCEEDED");
    const page = await browser.newPage();
    await page.goto(`${t.stack.api}/console`);
    await page.click(`tr[data-job="${r.jobId}"] a`);
    await page.waitForURL(`**/console/jobs/${r.jobId}`);
    expect(await page.textContent("#job-status")).toBe("SUCCEEDED");
    expect(await page.locator('svg.graph g[data-visited="true"]').count()).toBeGreaterThanOrEqual(10);
    expect(await page.locator('svg.graph g[data-state="Succeeded"]').getAttribute("data-visited")).toBe(
      "true",
    );
    await expect.poll(() => page.locator(".attempt").count()).toBe(3);
    const preempted = page.locator('.attempt[data-attempt="1"] li[data-error="Preempted"]');
    expect(await preempted.textContent()).toMatch(/preempted/);
    expect(await page.locator("table.hosts tbody tr").count()).toBe(4);
    const shot = await page.screenshot({ fullPage: true });
    expect(shot.byteLength).toBeGreaterThan(10_000);
    await page.close();
  });
});
