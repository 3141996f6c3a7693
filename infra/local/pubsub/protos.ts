import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

// The .proto files are read at runtime from the installed client packages, never copied: the
// emulator then speaks exactly the API version the installed official client speaks.
function protoRoots(): { pubsub: string; common: string } {
  const require = createRequire(import.meta.url);
  const pubsubPkg = require.resolve("@google-cloud/pubsub/package.json");
  const pubsubRequire = createRequire(pubsubPkg);
  // google-gax does not export its package.json; its main file is build/src/index.js.
  const gaxMain = pubsubRequire.resolve("google-gax");
  return {
    pubsub: join(dirname(pubsubPkg), "build", "protos"),
    common: join(dirname(dirname(gaxMain)), "protos"),
  };
}

/** Options shared by every loaded type: camelCase fields, int64 as strings, enums as names. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
};

/** The Publisher and Subscriber service definitions, loaded from the installed `@google-cloud/pubsub`. */
export interface PubSubServiceDefinitions {
  publisher: grpc.ServiceDefinition;
  subscriber: grpc.ServiceDefinition;
  /** Every loaded package, for clients built in tests and benches. */
  grpcObject: grpc.GrpcObject;
}

let cached: PubSubServiceDefinitions | undefined;

/** Load (once per process) the Pub/Sub v1 services from the `.proto` files inside node_modules. */
export function loadPubSubServices(): PubSubServiceDefinitions {
  if (cached) return cached;
  const roots = protoRoots();
  const packageDefinition = protoLoader.loadSync("google/pubsub/v1/pubsub.proto", {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [roots.pubsub, roots.common],
  });
  const grpcObject = grpc.loadPackageDefinition(packageDefinition);
  const v1 = (grpcObject.google as grpc.GrpcObject).pubsub as grpc.GrpcObject;
  const service = (name: string) => {
    const ctor = (v1.v1 as grpc.GrpcObject)[name] as grpc.ServiceClientConstructor | undefined;
    if (!ctor) throw new Error(`google.pubsub.v1.${name} is missing from pubsub.proto`);
    return ctor.service;
  };
  cached = { publisher: service("Publisher"), subscriber: service("Subscriber"), grpcObject };
  return cached;
}
