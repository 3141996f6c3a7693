#!/usr/bin/env node
// Entry point of the `gangway` command: registers tsx so the TypeScript sources run as they are.
import { register } from "tsx/esm/api";

// Quiet two warnings that say nothing to gangway's users: the AWS SDK's notice about Node 20's
// support window, and google-auth's probe of a GCE metadata server that off GCE is never there.
// `agent` and `deploy` may run on a GCE or TPU VM, whose service account they need: they probe.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
if (!["agent", "deploy"].includes(process.argv[2] ?? "")) process.env.METADATA_SERVER_DETECTION ??= "none";

register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
