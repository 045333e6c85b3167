// The types of index.js. schema.d.ts is generated (clients/generate.sh): do not edit it.
import type { Client, ClientOptions } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

/** The document's named schemas: `Schemas["Workload"]`, `Schemas["DeployBody"]`, … */
export type Schemas = components["schemas"];

export type VulcanClient = Client<paths>;

export interface VulcanClientOptions extends ClientOptions {
  /** Sent as `Authorization: Bearer`. */
  apiKey?: string;
}

/** A client whose requests carry `apiKey` (as `Authorization: Bearer`). */
export declare function createVulcanClient(options?: VulcanClientOptions): VulcanClient;

/** A refusal: the HTTP status and the server's `{"error"}`, which says what to change. */
export declare class VulcanError extends Error {
  readonly status: number;
  readonly requestId?: string;
  constructor(status: number, body: unknown);
}

/** The data of an openapi-fetch result, or a `VulcanError` thrown for a refusal. */
export declare function ok<T>(result: { data?: T; error?: unknown; response: Response }): T;

export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** The events of a `text/event-stream` body. */
export declare function serverSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent, void, undefined>;

export type LogEvent =
  | { type: "log"; line: Schemas["LogLine"] }
  | {
      type: "done";
      status: Schemas["WorkloadStatus"];
      exit_code?: number | null;
      error?: string | null;
    };

/**
 * A workload's log as it is written (a finished workload replays it): a `log` event per
 * line, then one `done` event with how it ended.
 */
export declare function workloadLogs(
  client: VulcanClient,
  id: string,
  stream?: Schemas["StreamChoice"],
): AsyncGenerator<LogEvent, void, undefined>;
