import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** Path of the agent's service definition. */
export const AGENT_PROTO_PATH = join(dirname(fileURLToPath(import.meta.url)), "agent.proto");

/** How messages are presented: camelCase fields, int64 as numbers, every default filled in. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: false,
  oneofs: false,
};

let cached: grpc.ServiceDefinition | undefined;

/** The `gangway.agent.v1.HostAgent` service definition (loaded once per process). */
export function hostAgentServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const def = protoLoader.loadSync(AGENT_PROTO_PATH, PROTO_LOADER_OPTIONS);
    cached = def["gangway.agent.v1.HostAgent"] as grpc.ServiceDefinition;
  }
  return cached;
}

/** Full method names, as on the wire (for raw calls in tests and tools). */
export const METHOD_PATH_PREFIX = "/gangway.agent.v1.HostAgent/";

/** Trailer metadata carrying the agent's serialized error (binary, JSON inside) on a failed call. */
export const ERROR_TRAILER = "gangway-error-bin";
