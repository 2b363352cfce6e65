// Tally's Worker middleware: wraps a Worker's fetch handler, records one event per request and sends them to Tally's ingest in batches, after the response, never failing the Worker.

/** Ingest's limits for one request to `/v1/events` (README, Configuration and limits). */
const INGEST_MAX_EVENTS = 1000;
/** 1 MiB, less room for the array's brackets and commas, so a full batch is never a 413. */
const INGEST_MAX_BODY_BYTES = 1024 * 1024 - 4096;

/** Ingest's longest values (tally-core's validate.rs): a longer one would refuse the event. */
const MAX_ROUTE_CHARS = 512;
const MAX_DIMENSION_CHARS = 256;
const MAX_ERROR_MESSAGE_CHARS = 2048;
const MAX_METHOD_CHARS = 16;

const DEFAULTS = {
  name: "request",
  flushIntervalMs: 5000,
  maxBatchEvents: 100,
  maxBufferedEvents: 10000,
};

/** A Worker may keep working for 30 s after its response; a flush must start well within. */
const MAX_FLUSH_INTERVAL_MS = 20000;

/** How long before a retry of a failed send. */
const RETRY_DELAY_MS = 250;

/** At most this many path segments are kept by the default templating, so deep paths stay few. */
const MAX_TEMPLATE_SEGMENTS = 8;

/**
 * Wraps a Worker so every request it serves is reported to Tally.
 *
 * `options` is an object or a function of `env` returning one; whatever it leaves out
 * comes from `env`: `TALLY_ENDPOINT`, `TALLY_WRITE_KEY`, `TALLY_INSTANCE`,
 * `TALLY_VERSION`, `TALLY_FLUSH_INTERVAL_MS`, `TALLY_MAX_BATCH_EVENTS`.
 * `handler` is the Worker's default export (an object with `fetch`, whose other
 * handlers are kept) or a bare fetch function.
 */
export function withTally(options, handler) {
  const inner = typeof handler === "function" ? { fetch: handler } : handler;
  if (!inner || typeof inner.fetch !== "function") {
    throw new TypeError("withTally(options, handler): handler must have a fetch method");
  }
  const reporter = createReporter();
  const fetch = async function (request, env, ctx) {
    const started = Date.now();
    let response;
    try {
      response = await inner.fetch.call(this ?? inner, request, env, ctx);
    } catch (error) {
      reporter.record(request, env, ctx, started, 500, error);
      // Without the middleware the runtime would answer this exception itself.
      throw error;
    }
    reporter.record(request, env, ctx, started, response?.status, undefined);
    return response;
  };
  const wrapped = Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, { fetch });
  Object.defineProperty(wrapped, "tally", { value: reporter, enumerable: false });
  return wrapped;

  /** The batch of one wrapped Worker in one isolate, and how it is sent. */
  function createReporter() {
    const buffer = [];
    let timerStartedAt = null;
    let dropped = 0;

    return {
      record(request, env, ctx, started, status, error) {
        try {
          const config = resolve(options, env);
          if (!config.endpoint || !config.key) {
            warnOnce("missing-config", "Tally: no endpoint or write key (TALLY_ENDPOINT, TALLY_WRITE_KEY); not reporting");
            return;
          }
          if (buffer.length >= config.maxBufferedEvents) {
            // Ingest is unreachable for long: the isolate's memory matters more.
            dropped += 1;
            return;
          }
          buffer.push(buildEvent(request, config, started, status, error));
          schedule(ctx, config);
        } catch (failure) {
          warnOnce("record", `Tally: could not record a request: ${failure}`);
        }
      },
      /** Sends everything recorded so far now; resolves when done, never rejects. */
      flush(env) {
        return flushNow(resolve(options, env));
      },
      /** How many events are waiting, and how many were dropped with the buffer full. */
      stats() {
        return { buffered: buffer.length, dropped };
      },
    };

    function schedule(ctx, config) {
      if (buffer.length >= config.maxBatchEvents) {
        background(ctx, flushNow(config));
        return;
      }
      const now = Date.now();
      // A timer whose request's waitUntil was cut short never fires: start another.
      const lost = timerStartedAt !== null && now - timerStartedAt > config.flushIntervalMs + 30000;
      if (timerStartedAt === null || lost) {
        timerStartedAt = now;
        background(
          ctx,
          sleep(config.flushIntervalMs).then(() => {
            timerStartedAt = null;
            return flushNow(config);
          }),
        );
      }
    }

    async function flushNow(config) {
      try {
        const events = buffer.splice(0, buffer.length);
        for (const batch of batches(events, config.maxBatchEvents)) {
          await send(batch, config);
        }
      } catch (failure) {
        warnOnce("flush", `Tally: sending events failed: ${failure}`);
      }
    }
  }
}

/** The options in force for a request: given ones first, then `env`, then defaults. */
function resolve(options, env) {
  const given = (typeof options === "function" ? options(env) : options) ?? {};
  const vars = env ?? {};
  const number = (value, fallback, low, high) => {
    const n = Number(value ?? fallback);
    return Number.isFinite(n) ? Math.min(Math.max(n, low), high) : fallback;
  };
  return {
    endpoint: eventsUrl(given.endpoint ?? vars.TALLY_ENDPOINT),
    key: given.key ?? vars.TALLY_WRITE_KEY,
    instance: given.instance ?? vars.TALLY_INSTANCE,
    version: given.version ?? vars.TALLY_VERSION,
    name: given.name ?? DEFAULTS.name,
    routes: given.routes,
    flushIntervalMs: number(given.flushIntervalMs ?? vars.TALLY_FLUSH_INTERVAL_MS, DEFAULTS.flushIntervalMs, 0, MAX_FLUSH_INTERVAL_MS),
    maxBatchEvents: number(given.maxBatchEvents ?? vars.TALLY_MAX_BATCH_EVENTS, DEFAULTS.maxBatchEvents, 1, INGEST_MAX_EVENTS),
    maxBufferedEvents: number(given.maxBufferedEvents, DEFAULTS.maxBufferedEvents, 1, 1e6),
    fetch: given.fetch ?? globalThis.fetch.bind(globalThis),
    log: given.log ?? ((message) => console.warn(message)),
  };
}

/** Ingest's base URL, or its `/v1/events` URL, as the URL events are posted to. */
function eventsUrl(endpoint) {
  if (!endpoint) return undefined;
  const url = new URL(endpoint);
  if (!url.pathname.endsWith("/v1/events")) {
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/events`;
  }
  return url.toString();
}

/** One request as a Tally event (README, Sending events). */
function buildEvent(request, config, started, status, error) {
  const url = new URL(request.url);
  const event = {
    name: config.name,
    // Random per event and kept across retries, so a retried batch counts once.
    event_id: crypto.randomUUID(),
    timestamp: started,
    method: clip(request.method, MAX_METHOD_CHARS),
    route: clip(routeOf(request, url, config.routes), MAX_ROUTE_CHARS),
    duration_ms: Math.max(0, Date.now() - started),
  };
  if (Number.isInteger(status) && status >= 100 && status <= 599) event.status = status;
  if (error !== undefined) {
    event.error_class = clip(errorClass(error), MAX_DIMENSION_CHARS);
    event.error_message = clip(errorMessage(error), MAX_ERROR_MESSAGE_CHARS);
  }
  if (config.instance) event.instance = clip(String(config.instance), MAX_DIMENSION_CHARS);
  if (config.version) event.version = clip(String(config.version), MAX_DIMENSION_CHARS);
  return event;
}

/** The route a request is counted under: the configured function's or pattern's, else the templated path. */
function routeOf(request, url, routes) {
  if (typeof routes === "function") {
    try {
      const chosen = routes(request, url);
      if (chosen) return String(chosen);
    } catch {
      // A broken route function must not lose the request: the default still names it.
    }
  } else if (Array.isArray(routes)) {
    const chosen = matchRoute(url.pathname, routes);
    if (chosen) return chosen;
  }
  return templatePath(url.pathname);
}

/**
 * The first pattern that matches `path`: `:name` stands for one segment, a final `*`
 * for any rest (none included); anything else must be equal.
 */
export function matchRoute(path, patterns) {
  const segments = splitPath(path);
  for (const pattern of patterns) {
    const parts = splitPath(pattern);
    const rest = parts.at(-1) === "*";
    const fixed = rest ? parts.slice(0, -1) : parts;
    if (rest ? segments.length < fixed.length : segments.length !== fixed.length) continue;
    if (fixed.every((part, i) => (part.startsWith(":") ? segments[i] !== "" : part === segments[i]))) {
      return pattern;
    }
  }
  return undefined;
}

/**
 * A path with its ids collapsed to `:id`, so routes stay few: numbers, UUIDs, hex ids
 * of 8 or more digits and long tokens with digits in them; past 8 segments, `/*`.
 */
export function templatePath(path) {
  const segments = splitPath(path).map((segment) => (looksLikeId(segment) ? ":id" : segment));
  const kept = segments.slice(0, MAX_TEMPLATE_SEGMENTS);
  if (segments.length > MAX_TEMPLATE_SEGMENTS) kept.push("*");
  return `/${kept.join("/")}`;
}

function splitPath(path) {
  const trimmed = path.replace(/^\/+/, "").replace(/\/+$/, "");
  return trimmed === "" ? [] : trimmed.split("/");
}

function looksLikeId(segment) {
  if (/^\d+$/.test(segment)) return true;
  if (/^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(segment)) return true;
  if (/^[0-9a-f]{8,}$/i.test(segment) && /\d/.test(segment)) return true;
  if (segment.length >= 16 && /^[A-Za-z0-9_.~%-]+$/.test(segment) && /\d/.test(segment)) return true;
  return segment.length > 64;
}

/** An error's class: its name, or its constructor's when the name is the generic `Error`. */
function errorClass(error) {
  if (error === null || typeof error !== "object") return "Error";
  const name = typeof error.name === "string" && error.name ? error.name : undefined;
  const constructorName = typeof error.constructor === "function" ? error.constructor.name : undefined;
  if (name && name !== "Error") return name;
  if (constructorName && constructorName !== "Object") return constructorName;
  return name ?? "Error";
}

function errorMessage(error) {
  if (error !== null && typeof error === "object" && "message" in error) return String(error.message);
  return String(error);
}

function clip(text, chars) {
  const value = String(text ?? "");
  return value.length > chars ? value.slice(0, chars) : value;
}

/**
 * Splits events into batches ingest takes: at most `maxEvents` (and 1,000) events and
 * 1 MiB of JSON each.
 */
export function batches(events, maxEvents) {
  const encoder = new TextEncoder();
  const limit = Math.min(maxEvents, INGEST_MAX_EVENTS);
  const out = [];
  let current = [];
  let bytes = 2;
  for (const event of events) {
    const size = encoder.encode(JSON.stringify(event)).length + 1;
    if (current.length > 0 && (current.length >= limit || bytes + size > INGEST_MAX_BODY_BYTES)) {
      out.push(current);
      current = [];
      bytes = 2;
    }
    current.push(event);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Posts one batch; on a network error or a 5xx posts it once more with the same event
 * ids, and resends once the events ingest answered `not_queued`. Never throws.
 */
async function send(batch, config) {
  const first = await post(batch, config);
  let again = [];
  if (first.retry) {
    again = batch;
  } else if (first.notQueued.length > 0) {
    const ids = new Set(first.notQueued);
    again = batch.filter((event) => ids.has(event.event_id));
  }
  if (again.length === 0) return;
  await sleep(RETRY_DELAY_MS);
  const second = await post(again, config);
  if (second.retry || second.notQueued.length > 0) {
    config.log(`Tally: ${again.length} events not sent after a retry (${second.reason})`);
  }
}

/** One POST: whether to retry the whole batch, which events were not queued, and why. */
async function post(batch, config) {
  let response;
  try {
    response = await config.fetch(config.endpoint, {
      method: "POST",
      headers: {
        authorization: `Bearer ${config.key}`,
        "content-type": "application/json",
      },
      body: JSON.stringify(batch),
    });
  } catch (failure) {
    return { retry: true, notQueued: [], reason: `network error: ${failure}` };
  }
  const text = await response.text().catch(() => "");
  if (response.status >= 500) {
    return { retry: true, notQueued: [], reason: `${response.status} ${text.slice(0, 200)}` };
  }
  if (response.status >= 400) {
    // A refusal (bad key, bad event) is the same on every retry: say so once and drop.
    config.log(`Tally: ingest refused ${batch.length} events: ${response.status} ${text.slice(0, 200)}`);
    return { retry: false, notQueued: [], reason: `${response.status}` };
  }
  let notQueued = [];
  try {
    const results = JSON.parse(text).results ?? [];
    notQueued = results.filter((r) => r.status === "not_queued").map((r) => r.event_id);
  } catch {
    // A 2xx without the usual body: nothing to resend.
  }
  return { retry: false, notQueued, reason: "not_queued" };
}

/** Keeps the Worker alive for `promise` after its response, where the runtime allows. */
function background(ctx, promise) {
  const safe = promise.catch(() => {});
  if (ctx && typeof ctx.waitUntil === "function") ctx.waitUntil(safe);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const warned = new Set();

/** Logs a problem once per isolate: a log line per request would drown the Worker's own. */
function warnOnce(what, message) {
  if (warned.has(what)) return;
  warned.add(what);
  console.warn(message);
}
