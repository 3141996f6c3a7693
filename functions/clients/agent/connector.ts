import type { AgentConnector, AgentPort } from "../../ports.js";
import { type AgentClient, type AgentClientOptions, createAgentClient } from "./client.js";

/**
 * The control plane's way to host agents: one pooled gRPC client per `host:port`, every call
 * carrying the bearer token (and TLS when given).
 *
 * @example
 * const agents = createAgentConnector({ token });
 * await agents.agent("127.0.1.1:40111").health();
 */
export function createAgentConnector(options: AgentClientOptions): AgentConnector & { close(): void } {
  const clients = new Map<string, AgentClient>();
  return {
    agent(address: string): AgentPort {
      let client = clients.get(address);
      if (!client) {
        client = createAgentClient(address, options);
        clients.set(address, client);
      }
      return client;
    },
    close() {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}
