import { describe, expect, it } from "vitest";
import { main } from "../../../cli/main.js";

async function run(argv: string[]) {
  let out = "";
  let err = "";
  const code = await main(argv, {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
    signal: AbortSignal.abort(),
  });
  return { code, out, err };
}

describe("gangway pubsub-emulator (arguments)", () => {
  it("prints its usage", async () => {
    const r = await run(["pubsub-emulator", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("--state-dir DIR");
  });

  it.each([[["--port", "http"]], [["--port", "70000"]], [["--port"]], [["--state-dir"]], [["--colour"]]])(
    "refuses %j with exit code 2",
    async (args) => {
      const r = await run(["pubsub-emulator", ...args]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/gangway: /);
      expect(r.out).toBe("");
    },
  );
});
