/** The embedded Step Functions engine: `createSfnEngine` + `startSfnServer`. */
export { createSfnEngine, type SfnEngine, type SfnEngineOptions } from "./engine.js";
export { SfnApiError, StatesError } from "./errors.js";
export type { LambdaTarget } from "./lambda.js";
export { type SfnServer, startSfnServer } from "./server.js";
