// Unit tests of the middleware's pure parts and of its sending, with a fake fetch and context: run with `cargo xtask test js` (or `node --test test/*.test.js` here).

import { test } from "node:test";
import assert from "node:assert/strict";

import { batches, matchRoute, templatePath, withTally } from "../index.js";

test("the default route collapses ids and keeps words", () => {
  const cases = [
    ["/", "/"],
    ["", "/"],
    ["/hello", "/hello"],
    ["/posts/123", "/posts/:id"],
    ["/posts/123/", "/posts/:id"],
    ["/posts/9f8e7d6c-5b4a-4321-8765-0123456789ab/comments", "/posts/:id/comments"],
    ["/blobs/deadbeef42", "/blobs/:id"],
    ["/blobs/deadbeef", "/blobs/deadbeef"],
    ["/v2/users", "/v2/users"],
    ["/t/abcDEF123456ghiJKL", "/t/:id"],
    ["/x/" + "a".repeat(65), "/x/:id"],
    ["/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/*"],
  ];
  for (const [path, expected] of cases) {
    assert.equal(templatePath(path), expected, path);
  }
});

test("route patterns match whole segments, the first one wins", () => {
  const patterns = ["/posts/:id", "/posts/:id/comments", "/static/*", "/posts/new"];
  assert.equal(matchRoute("/posts/7", patterns), "/posts/:id");
  assert.equal(matchRoute("/posts/new", patterns), "/posts/:id");
  assert.equal(matchRoute("/posts/7/comments", patterns), "/posts/:id/comments");
  assert.equal(matchRoute("/static", patterns), "/static/*");
  assert.equal(matchRoute("/static/css/site.css", patterns), "/static/*");
  assert.equal(matchRoute("/posts", patterns), undefined);
  assert.equal(matchRoute("/posts/7/likes", patterns), undefined);
  assert.equal(matchRoute("/other", patterns), undefined);
});

test("batches stay within the event count and ingest's limits", () => {
  const events = Array.from({ length: 2500 }, (_, i) => ({ name: "request", i }));
  assert.deepEqual(batches(events, 100).map((b) => b.length), Array(25).fill(100));
  assert.deepEqual(batches(events, 5000).map((b) => b.length), [1000, 1000, 500]);
  assert.deepEqual(batches([], 100), []);

  const big = Array.from({ length: 600 }, () => ({ name: "request", error_message: "é".repeat(1000) }));
  const split = batches(big, 1000);
  assert.equal(split.flat().length, 600);
  assert.ok(split.length > 1);
  for (const batch of split) {
    assert.ok(new TextEncoder().encode(JSON.stringify(batch)).length <= 1024 * 1024);
  }
});

/** A context whose waitUntil promises a test can await. */
function fakeContext() {
  const pending = [];
  return { waitUntil: (p) => pending.push(p), settled: () => Promise.all(pending), pending };
}

/** A fetch that answers with `statuses` in turn (an Error throws) and records each call. */
function fakeFetch(statuses) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, events: JSON.parse(init.body) });
    const next = statuses.shift() ?? 202;
    if (next instanceof Error) throw next;
    return new Response(JSON.stringify({ results: [] }), { status: next });
  };
  return { fetch, calls };
}

function worker(options, handler) {
  const logs = [];
  return {
    logs,
    wrapped: withTally(
      { endpoint: "https://ingest.test", key: "tw_k", flushIntervalMs: 0, log: (m) => logs.push(m), ...options },
      handler ?? { fetch: () => new Response("ok") },
    ),
  };
}

test("a request is reported after the response, with an event id", async () => {
  const { fetch, calls } = fakeFetch([]);
  const { wrapped } = worker({ fetch, version: "2.0", instance: "site" });
  const ctx = fakeContext();
  const response = await wrapped.fetch(new Request("https://p.test/posts/5?q=1", { method: "PUT" }), {}, ctx);
  assert.equal(await response.text(), "ok");
  assert.equal(calls.length, 0, "nothing is sent before the response");
  await ctx.settled();
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "https://ingest.test/v1/events");
  assert.equal(calls[0].init.headers.authorization, "Bearer tw_k");
  const [event] = calls[0].events;
  assert.match(event.event_id, /^[0-9a-f-]{36}$/);
  assert.equal(event.method, "PUT");
  assert.equal(event.route, "/posts/:id");
  assert.equal(event.status, 200);
  assert.equal(event.version, "2.0");
  assert.equal(event.instance, "site");
});

test("a thrown error is recorded and thrown on", async () => {
  const { fetch, calls } = fakeFetch([]);
  class QuotaError extends Error {}
  const { wrapped } = worker({ fetch }, {
    fetch: () => {
      throw new QuotaError("x".repeat(5000));
    },
  });
  const ctx = fakeContext();
  await assert.rejects(wrapped.fetch(new Request("https://p.test/q"), {}, ctx), QuotaError);
  await ctx.settled();
  const [event] = calls[0].events;
  assert.equal(event.status, 500);
  assert.equal(event.error_class, "QuotaError");
  assert.equal(event.error_message.length, 2048);
});

test("a 5xx or network error is retried once with the same ids; a 4xx is not", async () => {
  for (const [statuses, sends] of [
    [[503, 503], 2],
    [[new TypeError("connection refused"), 202], 2],
    [[new TypeError("down"), new TypeError("down")], 2],
    [[401], 1],
    [[202], 1],
  ]) {
    const { fetch, calls } = fakeFetch([...statuses]);
    const { wrapped, logs } = worker({ fetch });
    const ctx = fakeContext();
    await wrapped.fetch(new Request("https://p.test/a"), {}, ctx);
    await ctx.settled();
    assert.equal(calls.length, sends, String(statuses));
    assert.deepEqual(calls.at(-1).events, calls[0].events);
    if (statuses.at(-1) !== 202) assert.equal(logs.length, 1, String(statuses));
  }
});

test("events ingest did not queue are sent once more", async () => {
  const calls = [];
  const fetch = async (url, init) => {
    const events = JSON.parse(init.body);
    calls.push(events);
    const results = events.map((e, i) => ({ event_id: e.event_id, index: i, status: i === 1 && calls.length === 1 ? "not_queued" : "accepted" }));
    return new Response(JSON.stringify({ results }), { status: 202 });
  };
  const { wrapped } = worker({ fetch, maxBatchEvents: 3, flushIntervalMs: 1000 });
  const ctx = fakeContext();
  for (let i = 0; i < 3; i += 1) await wrapped.fetch(new Request(`https://p.test/${i}`), {}, ctx);
  await Promise.all(ctx.pending.slice(1));
  assert.equal(calls.length, 2);
  assert.deepEqual(calls[1], [calls[0][1]]);
});

test("requests gather into one batch until it is full", async () => {
  const { fetch, calls } = fakeFetch([]);
  const { wrapped } = worker({ fetch, maxBatchEvents: 3, flushIntervalMs: 1000 });
  const ctx = fakeContext();
  for (let i = 0; i < 7; i += 1) await wrapped.fetch(new Request(`https://p.test/${i}`), {}, ctx);
  // The first waitUntil is the interval's timer; the others are the full batches.
  await Promise.all(ctx.pending.slice(1));
  assert.deepEqual(calls.map((c) => c.events.length), [3, 3]);
  assert.deepEqual(wrapped.tally.stats(), { buffered: 1, dropped: 0 });
  await wrapped.tally.flush();
  assert.deepEqual(calls.map((c) => c.events.length), [3, 3, 1]);
});

test("with nowhere to send, the Worker still answers and nothing is kept", async () => {
  const wrapped = withTally({}, () => new Response("fine"));
  const response = await wrapped.fetch(new Request("https://p.test/"), {}, fakeContext());
  assert.equal(await response.text(), "fine");
  assert.deepEqual(wrapped.tally.stats(), { buffered: 0, dropped: 0 });
});

test("the buffer is bounded while ingest is unreachable", async () => {
  const { wrapped } = worker({ fetch: fakeFetch([]).fetch, maxBufferedEvents: 2, flushIntervalMs: 1000 });
  for (let i = 0; i < 5; i += 1) await wrapped.fetch(new Request("https://p.test/"), {}, fakeContext());
  assert.deepEqual(wrapped.tally.stats(), { buffered: 2, dropped: 3 });
});

test("options come from env when not given", async () => {
  const { fetch, calls } = fakeFetch([]);
  const wrapped = withTally({ fetch, flushIntervalMs: 0 }, () => new Response("ok"));
  const ctx = fakeContext();
  const env = { TALLY_ENDPOINT: "https://in.test/base/", TALLY_WRITE_KEY: "tw_env", TALLY_VERSION: "3" };
  await wrapped.fetch(new Request("https://p.test/"), env, ctx);
  await ctx.settled();
  assert.equal(calls[0].url, "https://in.test/base/v1/events");
  assert.equal(calls[0].init.headers.authorization, "Bearer tw_env");
  assert.equal(calls[0].events[0].version, "3");
});
