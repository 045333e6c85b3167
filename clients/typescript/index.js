// A client for Vulcan's HTTP API: openapi-fetch, typed by schema.d.ts (what openapi-typescript
// generates from the server's OpenAPI document; clients/generate.sh), plus what a generic
// client lacks: reading server-sent events (a workload's log, a process's output) and an
// error that carries the server's reason.
import createClient from "openapi-fetch";

/** A client whose requests carry `apiKey` (as `Authorization: Bearer`). */
export function createVulcanClient({ baseUrl = "http://127.0.0.1:8080", apiKey, headers, ...options } = {}) {
  const all = { ...headers };
  if (apiKey) {
    all.Authorization = `Bearer ${apiKey}`;
  }
  return createClient({ ...options, baseUrl, headers: all });
}

/** A refusal: the HTTP status and the server's `{"error"}`, which says what to change. */
export class VulcanError extends Error {
  constructor(status, body) {
    const reason = typeof body?.error === "string" ? body.error : JSON.stringify(body);
    super(`${status}: ${reason}`);
    this.name = "VulcanError";
    this.status = status;
    this.requestId = body?.request_id;
  }
}

/** The data of an openapi-fetch result, or a `VulcanError` thrown for a refusal. */
export function ok({ data, error, response }) {
  if (error !== undefined || !response.ok) {
    throw new VulcanError(response.status, error);
  }
  return data;
}

/** The events of a `text/event-stream` body, as `{event, data, id}`. */
export async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [], id: undefined };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (event.data.length > 0) {
            yield { event: event.event, data: event.data.join("\n"), id: event.id };
          }
          event = { event: "message", data: [], id: undefined };
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") {
            event.data.push(value);
          } else if (field === "event" || field === "id") {
            event[field] = value;
          }
        }
      }
    }
  } finally {
    reader.releaseLock();
    body.cancel().catch(() => {});
  }
}

/**
 * A workload's log as it is written (a finished workload replays it): `{type: "log", line}`
 * per line, then `{type: "done", status, exit_code, error}`.
 */
export async function* workloadLogs(client, id, stream) {
  const result = await client.GET("/v1/workloads/{id}/logs", {
    params: { path: { id }, query: stream ? { stream } : {} },
    parseAs: "stream",
  });
  for await (const { event, data } of serverSentEvents(ok(result))) {
    if (event === "log") {
      yield { type: "log", line: JSON.parse(data) };
    } else if (event === "done") {
      yield { type: "done", ...JSON.parse(data) };
      return;
    }
  }
}
