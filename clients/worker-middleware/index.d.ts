// Types of Tally's Worker middleware (index.js): withTally and its options.

/** What a Worker's default export looks like, as far as the middleware cares. */
export interface FetchHandler<Env = unknown> {
  fetch(request: Request, env: Env, ctx: ExecutionContextLike): Response | Promise<Response>;
  [other: string]: unknown;
}

/** The part of a Worker's `ExecutionContext` the middleware uses. */
export interface ExecutionContextLike {
  waitUntil(promise: Promise<unknown>): void;
}

/** How the middleware reports. Whatever is left out comes from `env` (names in brackets), then the defaults. */
export interface TallyOptions {
  /** Ingest's base URL (`https://ingest.example.workers.dev`) or its `/v1/events` URL [`TALLY_ENDPOINT`]. Without it nothing is sent. */
  endpoint?: string;
  /** The project's write key, `tw_…` [`TALLY_WRITE_KEY`]. Without it nothing is sent. */
  key?: string;
  /** Which installation this is (a site id); Tally hashes it at ingest [`TALLY_INSTANCE`]. */
  instance?: string;
  /** The plugin's or API's version [`TALLY_VERSION`]. */
  version?: string;
  /** The events' name; default `"request"`. */
  name?: string;
  /**
   * The route a request counts under: patterns such as `"/posts/:id"` or `"/static/*"`
   * (the first match wins), or a function returning the route (or nothing). Unmatched
   * requests get their path with ids collapsed to `:id`.
   */
  routes?: string[] | ((request: Request, url: URL) => string | undefined | null);
  /** Longest wait before a batch is sent, ms; default 5000, at most 20000 [`TALLY_FLUSH_INTERVAL_MS`]. */
  flushIntervalMs?: number;
  /** A batch is sent as soon as it has this many events; default 100, at most 1000 [`TALLY_MAX_BATCH_EVENTS`]. */
  maxBatchEvents?: number;
  /** Events kept per isolate while ingest is unreachable; newer ones are dropped past it. Default 10000. */
  maxBufferedEvents?: number;
  /** The fetch used to send; default the global one. */
  fetch?: typeof fetch;
  /** Where failures to send are told; default `console.warn`. */
  log?: (message: string) => void;
}

/** The batch of one wrapped Worker in this isolate. */
export interface TallyReporter {
  /** Sends every recorded event now; never rejects. */
  flush(env?: unknown): Promise<void>;
  /** Events waiting, and events dropped because the buffer was full. */
  stats(): { buffered: number; dropped: number };
}

/** Wraps a Worker (its default export, or a bare fetch function) so every request is reported to Tally. */
export function withTally<Env, H extends FetchHandler<Env>>(
  options: TallyOptions | ((env: Env) => TallyOptions),
  handler: H,
): H & { readonly tally: TallyReporter };
export function withTally<Env>(
  options: TallyOptions | ((env: Env) => TallyOptions),
  handler: FetchHandler<Env>["fetch"],
): FetchHandler<Env> & { readonly tally: TallyReporter };

/** The first of `patterns` that matches `path`, if any. */
export function matchRoute(path: string, patterns: string[]): string | undefined;

/** `path` with ids collapsed to `:id` (numbers, UUIDs, hex ids, long tokens with digits). */
export function templatePath(path: string): string;

/** Events split into batches ingest accepts: at most `maxEvents` (and 1000) and 1 MiB each. */
export function batches<T>(events: T[], maxEvents: number): T[][];
