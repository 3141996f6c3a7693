import { PubSubInvalidArgument } from "./errors.js";

/** A page of a list call. */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/**
 * One page of `all`, sorted by name. The token is the last name of the previous page (base64url),
 * so pages stay stable while resources come and go between calls.
 */
export function page<T extends { name: string }>(
  all: T[],
  pageSize: number | undefined,
  pageToken: string | undefined,
): Page<T> {
  if (pageSize !== undefined && (pageSize < 0 || !Number.isInteger(pageSize))) {
    throw new PubSubInvalidArgument("page_size: must be a non-negative integer");
  }
  const size = Math.min(pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  let after = "";
  if (pageToken) {
    after = Buffer.from(pageToken, "base64url").toString("utf8");
    if (!after.startsWith("projects/"))
      throw new PubSubInvalidArgument("page_token: not a token this server gave");
  }
  const sorted = all.filter((x) => x.name > after).sort((a, b) => (a.name < b.name ? -1 : 1));
  const items = sorted.slice(0, size);
  const last = items[items.length - 1];
  const nextPageToken = sorted.length > size && last ? Buffer.from(last.name).toString("base64url") : "";
  return { items, nextPageToken };
}
