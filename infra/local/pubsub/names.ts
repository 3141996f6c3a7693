import { PubSubInvalidArgument } from "./errors.js";

// Google's rule for topic and subscription ids: 3–255 characters, starting with a letter, from
// letters, digits and `-_.~+%`, and not starting with "goog".
const RESOURCE_ID = /^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/;
const PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9\-_.:]{0,99}$/;

/** The kinds of resource names the emulator serves. */
export type ResourceKind = "topics" | "subscriptions" | "snapshots";

/** A parsed `projects/{project}/{kind}/{id}` name. */
export interface ResourceName {
  project: string;
  kind: ResourceKind;
  id: string;
}

/** Whether `id` is a valid topic/subscription id by Google's rules. */
export function isValidResourceId(id: string): boolean {
  return RESOURCE_ID.test(id) && !id.toLowerCase().startsWith("goog");
}

/**
 * Parse a full resource name or throw `PubSubInvalidArgument` naming the field and the rule.
 *
 * @example parseResourceName("projects/p/topics/jobs", "topics", "topic") // { project: "p", kind: "topics", id: "jobs" }
 */
export function parseResourceName(name: unknown, kind: ResourceKind, field: string): ResourceName {
  if (typeof name !== "string" || name === "") {
    throw new PubSubInvalidArgument(`${field}: a resource name projects/{project}/${kind}/{id} is required`);
  }
  const parts = name.split("/");
  const [p, project, k, id] = parts;
  if (parts.length !== 4 || p !== "projects" || k !== kind || project === undefined || id === undefined) {
    throw new PubSubInvalidArgument(
      `Invalid [${kind}] name: (name=${clip(name)}): ${field} must look like projects/{project}/${kind}/{id}`,
    );
  }
  if (!PROJECT_ID.test(project)) {
    throw new PubSubInvalidArgument(`Invalid [${kind}] name: (name=${clip(name)}): bad project id`);
  }
  if (!isValidResourceId(id)) {
    throw new PubSubInvalidArgument(
      `Invalid [${kind}] name: (name=${clip(name)}): the id must be 3-255 characters, start with a letter, ` +
        `use only letters, digits and -_.~+%, and not start with "goog"`,
    );
  }
  return { project, kind, id };
}

/** Parse `projects/{project}` (the parent of list calls) and return the project id. */
export function parseProjectName(name: unknown, field = "project"): string {
  if (typeof name !== "string" || !/^projects\/[^/]+$/.test(name)) {
    throw new PubSubInvalidArgument(`${field}: expected projects/{project}, got ${clip(String(name))}`);
  }
  const project = name.slice("projects/".length);
  if (!PROJECT_ID.test(project)) throw new PubSubInvalidArgument(`${field}: bad project id ${clip(project)}`);
  return project;
}

function clip(s: string): string {
  return s.length > 300 ? `${s.slice(0, 297)}...` : s;
}
