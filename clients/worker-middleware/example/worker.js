// An example plugin Worker wrapped in Tally's middleware; the end-to-end test e2e/tests/middleware.rs runs it under wrangler.

import { withTally } from "../index.js";

/** A plugin's own error class, so reports show which failure it was. */
class PluginError extends Error {}

export default withTally({ routes: ["/posts/:slug/comments", "/static/*"] }, {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/hello") {
      return new Response("hello\n");
    }
    const post = url.pathname.match(/^\/posts\/(\d+)$/);
    if (post) {
      return Response.json({ post: Number(post[1]) });
    }
    if (/^\/posts\/[^/]+\/comments$/.test(url.pathname) && request.method === "POST") {
      return new Response(null, { status: 201 });
    }
    if (url.pathname === "/boom") {
      throw new PluginError("the plugin broke on purpose");
    }
    return new Response("not found\n", { status: 404 });
  },
});
