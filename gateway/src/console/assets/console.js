// The Cairn operator console. Every page polls its JSON under /console/api/
// every POLL_MS and redraws its live part; text from the cluster (keys,
// bucket names) only ever goes into the page as text nodes, never as markup.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = ms / 1000;
  if (s < 1) return ms.toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "–";
}

function badge(state, label) {
  return el("span", { class: "badge " + state, "data-state": state }, label || state);
}

function usageBar(used, capacity) {
  const share = capacity > 0 ? Math.min(1, used / capacity) : 0;
  return svg("svg", { class: "bar", viewBox: "0 0 120 10" },
    svg("rect", { class: "track", x: 0, y: 0, width: 120, height: 10, rx: 3 }),
    svg("rect", { class: share > 0.85 ? "fill full" : "fill", x: 0, y: 0, width: (120 * share).toFixed(1), height: 10, rx: 3 }));
}

function stat(label, value, id, alert) {
  return el("div", { class: alert ? "stat alert" : "stat" },
    el("div", { class: "label" }, label),
    el("div", { class: "value", id }, value));
}

// `headers` null: a table of facts, no header row.
function table(headers, rows, attrs) {
  return el("table", attrs || {},
    headers && el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label || h)))),
    el("tbody", {}, rows));
}

// A line chart of `series` ({name, color, values}) over `times` (ms).
function chart(times, series, unit) {
  const W = 900, H = 180, L = 60, B = 20, T = 8;
  const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const max = Math.max(1e-9, ...all) * 1.1;
  const node = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  node.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B }));
  node.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  node.append(svg("text", { x: 4, y: T + 10 }, unit(max)));
  node.append(svg("text", { x: 4, y: H - B }, unit(0)));
  if (times.length > 0) {
    node.append(svg("text", { x: L, y: H - 4 }, time(times[0])));
    node.append(svg("text", { x: W - 70, y: H - 4 }, time(times[times.length - 1])));
  }
  const x = (i) => L + (times.length <= 1 ? 0 : (i / (times.length - 1)) * (W - L - 4));
  const y = (v) => H - B - (v / max) * (H - B - T);
  for (const s of series) {
    const points = s.values
      .map((v, i) => (v === null || v === undefined ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
      .filter((p) => p !== null);
    node.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
  }
  const legend = el("div", { class: "legend" },
    series.map((s) => el("span", {}, el("i", { class: "swatch", "data-color": s.color }), s.name)));
  // Swatch colours as SVG (a style attribute would need 'unsafe-inline').
  for (const swatch of legend.querySelectorAll("i")) {
    swatch.replaceWith(svg("svg", { width: 10, height: 10 },
      svg("rect", { width: 10, height: 10, rx: 2, fill: swatch.dataset.color })));
  }
  return el("div", { class: "panel" }, legend, node);
}

// ---- the API ----

class SignedOut extends Error {}

async function api(path, options) {
  const response = await fetch("/console/api" + path, {
    credentials: "same-origin",
    ...options,
    headers: { "content-type": "application/json", "x-cairn-console": "1", ...(options || {}).headers },
  });
  if (response.status === 401) throw new SignedOut();
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((body && body.error) || response.statusText);
  return body;
}

// ---- pages: each has `title`, `static(params)` (built once per visit)
// and `live(params, data)` with `load(params)` for the data ----

const pages = {};

pages.cluster = {
  title: "Cluster",
  load: () => api("/cluster"),
  live(_, data) {
    const racks = data.racks.map((rack) => el("div", { class: "panel rack", "data-rack": rack.rack },
      el("h2", {}, rack.rack),
      table(["Node", "State", { label: "Used", num: true }, "", { label: "Chunks", num: true }, { label: "Heartbeat", num: true }],
        rack.nodes.map((n) => el("tr", { "data-node": n.id, "data-state": n.state },
          el("td", { class: "mono" }, n.id),
          el("td", { class: "state" }, badge(n.state)),
          el("td", { class: "num" }, `${bytes(n.used_bytes)} / ${bytes(n.capacity_bytes)}`),
          el("td", {}, usageBar(n.used_bytes, n.capacity_bytes)),
          el("td", { class: "num" }, n.chunk_count),
          el("td", { class: "num" }, duration(n.heartbeat_age_ms) + " ago"))))));
    const counts = {};
    for (const rack of data.racks) for (const n of rack.nodes) counts[n.state] = (counts[n.state] || 0) + 1;
    const summary = el("div", { class: "stats" },
      ["up", "suspect", "down", "draining", "retired"].map((s) =>
        stat(`nodes ${s}`, counts[s] || 0, `nodes-${s}`, s === "down" && counts[s] > 0)));
    const events = table(["When", "Node", "Change"], data.events.map((e) =>
      el("tr", {}, el("td", {}, time(e.at_ms)), el("td", { class: "mono" }, e.node),
        el("td", {}, e.from ? badge(e.from) : "registered", " → ", badge(e.to)))), { id: "events" });
    const meta = table(["Replica", "URL", "State", { label: "Groups", num: true }, { label: "Leading", num: true }],
      data.metadata.map((r) => el("tr", {},
        el("td", {}, r.replica), el("td", { class: "mono" }, r.url), el("td", {}, badge(r.up ? "up" : "down")),
        el("td", { class: "num" }, r.up ? r.groups : "–"), el("td", { class: "num" }, r.up ? r.leading : "–"))));
    return [summary, el("h2", {}, "Racks and nodes"), el("div", { class: "racks" }, racks),
      el("h2", {}, "Metadata replicas"), el("div", { class: "panel" }, meta),
      el("h2", {}, "Last state changes"), el("div", { class: "panel" }, events)];
  },
};

pages.durability = {
  title: "Durability",
  load: () => api("/durability"),
  live(_, data) {
    const c = data.census;
    const max = Math.max(1, ...c.rows.map((r) => r.blobs));
    // Losses left: how many more every pattern of which is survived (m, or
    // r+1 for an LRC, minus those already lost). Between that and k chunks
    // an LRC blob may or may not decode.
    const left = (r) => r.shape === null ? null : r.healthy - (r.width - r.shape.tolerated);
    const verdict = (r) => {
      if (r.shape === null) return "–";
      if (r.healthy >= r.width) return badge("up", "full");
      if (left(r) >= 0) return badge("suspect", "degraded");
      if (r.healthy >= r.shape.k) return badge("down", "may be unreadable");
      return badge("down", "unreadable");
    };
    const rows = c.rows.map((r) => el("tr", { "data-width": r.width, "data-healthy": r.healthy },
      el("td", {}, `${r.healthy} of ${r.width}`),
      el("td", {}, verdict(r)),
      el("td", { class: "num" }, r.shape === null ? "?" : Math.max(0, left(r))),
      el("td", { class: "num" }, r.blobs),
      el("td", {}, svg("svg", { class: "bar", viewBox: "0 0 120 10" },
        svg("rect", { class: "track", width: 120, height: 10, rx: 3 }),
        svg("rect", { class: "fill", width: (120 * r.blobs / max).toFixed(1), height: 10, rx: 3 })))));
    const classes = table(["Stored as", { label: "Overhead", num: true }, "Pieces", "Losses readable", { label: "P(unreadable)", num: true }],
      data.classes.map((k) => k.error
        ? el("tr", {}, el("td", {}, k.name), el("td", { colspan: 4, class: "error" }, k.error))
        : el("tr", {}, el("td", {}, k.name), el("td", { class: "num" }, k.overhead.toFixed(2) + "×"),
          el("td", {}, `${k.pieces} in ${k.racks} racks`), el("td", {}, `${k.losses_readable} (${k.racks_readable} racks)`),
          el("td", { class: "num" }, k.p_unreadable.toExponential(1)))));
    return [
      el("div", { class: "stats" },
        stat("blobs with chunks", c.blobs, "blobs-total"),
        stat("blobs below full width", c.at_risk, "blobs-at-risk", c.at_risk > 0),
        stat("blobs below k (unreadable)", c.unreadable, "blobs-unreadable", c.unreadable > 0),
        stat("census taken", time(c.taken_ms))),
      el("h2", {}, "Healthy chunks per blob, now"),
      el("div", { class: "panel" }, table(["Healthy", "", { label: "Losses left", num: true }, { label: "Blobs", num: true }, ""], rows, { id: "histogram" }),
        el("p", { class: "muted" }, "A chunk is healthy when its node is up. Objects up to ", bytes(data.inline_max),
          " live inline in the catalogue, replicated with it, and have no chunks.")),
      el("h2", {}, "What the nodes up now give each class"),
      el("div", { class: "panel" }, classes,
        el("p", { class: "muted" }, `Model: a node fails with q_node = ${data.model.q_node}, a rack with q_rack = ${data.model.q_rack}, within one repair window.`)),
    ];
  },
};

pages.repair = {
  title: "Repair",
  load: () => api("/repair"),
  live(_, data) {
    const s = data.status;
    const reasons = table(["Reason", { label: "Queued", num: true }],
      Object.entries(s.queued_by_reason || {}).map(([reason, n]) =>
        el("tr", {}, el("td", {}, reason.replace("_", " ")), el("td", { class: "num" }, n))));
    const lost = data.lost.length === 0
      ? el("p", { class: "muted" }, "No node is lost or draining.")
      : table(["Node", "Why", { label: "Chunks still placed on it", num: true }],
        data.lost.map((l) => el("tr", { "data-lost": l.node }, el("td", { class: "mono" }, l.node),
          el("td", {}, badge(l.why === "lost" ? "down" : "draining", l.why)), el("td", { class: "num" }, l.chunks_left))));
    const h = data.history;
    const times = h.map((p) => p.at_ms);
    return [
      el("div", { class: "stats", id: "repair-stats" },
        stat("queued", s.queued, "repair-queued", s.queued > 0),
        stat("in progress", s.in_progress, "repair-in-progress"),
        stat("chunks repaired", s.repaired_chunks, "repair-repaired"),
        stat("failures", s.failures, "repair-failures", s.failures > 0),
        stat("throughput", data.chunks_per_sec.toFixed(1) + " chunks/s", "repair-throughput"),
        stat("ETA", data.eta_secs === null ? "–" : duration(data.eta_secs * 1000), "repair-eta"),
        stat("bytes read", bytes(s.bytes_read), "repair-bytes-read"),
        stat("bytes rebuilt", bytes(s.bytes_rebuilt), "repair-bytes-rebuilt"),
        stat("read amplification", s.read_amplification.toFixed(2) + "×", "repair-amplification"),
        stat("cross-rack bytes", bytes(s.cross_rack_bytes), "repair-cross-rack"),
        stat("garbage chunks deleted", s.garbage_deleted)),
      el("h2", {}, "Per lost or draining node"), el("div", { class: "panel" }, lost),
      el("h2", {}, "Queue by reason"), el("div", { class: "panel" }, reasons),
      el("h2", {}, "By storage class"), el("div", { class: "panel" }, table(
        ["Class", { label: "Repaired", num: true }, { label: "Read", num: true }, { label: "Rebuilt", num: true },
          { label: "Read amplification", num: true }, { label: "Cross-rack", num: true }],
        Object.entries(s.by_class || {}).map(([name, c]) => el("tr", { "data-class": name },
          el("td", { class: "mono" }, name), el("td", { class: "num" }, c.repaired_chunks),
          el("td", { class: "num" }, bytes(c.bytes_read)), el("td", { class: "num" }, bytes(c.bytes_rebuilt)),
          el("td", { class: "num" }, (c.bytes_rebuilt ? c.bytes_read / c.bytes_rebuilt : 0).toFixed(2) + "×"),
          el("td", { class: "num" }, bytes(c.cross_rack_bytes)))))),
      el("h2", {}, "Last hour: queue"),
      chart(times, [
        { name: "queued", color: "#d69e2e", values: h.map((p) => p.repair.queued) },
        { name: "in progress", color: "#2b6cb0", values: h.map((p) => p.repair.in_progress) },
      ], (v) => v.toFixed(0)),
      el("h2", {}, "Last hour: throughput"),
      chart(times, [
        { name: "read /s", color: "#805ad5", values: h.map((p) => p.repair.bytes_read_per_sec) },
        { name: "rebuilt /s", color: "#1f9d55", values: h.map((p) => p.repair.bytes_rebuilt_per_sec) },
        { name: "cross-rack /s", color: "#d64545", values: h.map((p) => p.repair.cross_rack_bytes_per_sec) },
      ], bytes),
    ];
  },
};

pages.scrub = {
  title: "Scrub jobs",
  load: () => api("/scrub"),
  static() {
    const form = el("form", { class: "panel inline-form", id: "scrub-form" },
      el("label", {}, "Bucket (all if empty)", el("input", { name: "bucket" })),
      el("label", {}, "Prefix", el("input", { name: "prefix" })),
      el("label", {}, "Rate MB/s (0: unlimited)", el("input", { name: "rate", type: "number", min: 0, value: 0 })),
      el("label", {}, "Repeat every (s, empty: once)", el("input", { name: "every", type: "number", min: 0 })),
      el("button", { class: "primary", type: "submit", id: "scrub-start" }, "Schedule scrub"),
      el("span", { id: "scrub-error", class: "error" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      try {
        await api("/scrub", {
          method: "POST",
          body: JSON.stringify({
            bucket: f.get("bucket"), prefix: f.get("prefix"),
            rate_bytes_per_sec: Math.round(Number(f.get("rate") || 0) * 1e6),
            every_secs: f.get("every") ? Number(f.get("every")) : null,
          }),
        });
        form.querySelector("#scrub-error").textContent = "";
        refresh();
      } catch (err) {
        form.querySelector("#scrub-error").textContent = err.message;
      }
    });
    return [form];
  },
  live(_, data) {
    if (data.jobs.length === 0) return [el("p", { class: "muted" }, "No scrub jobs yet.")];
    return data.jobs.filter((j) => j.spec.kind === "scrub" || j.spec.kind === undefined).map((job) => {
      const run = job.current || job.last;
      const r = run ? run.results : null;
      const progress = job.current && job.current.objects_total > 0
        ? `${Math.round(100 * r.objects_checked / job.current.objects_total)}% of ${job.current.objects_total} objects`
        : run ? `${r.objects_checked} objects` : "not run yet";
      const scope = [job.spec.scope.bucket || "every bucket", job.spec.scope.prefix ? `prefix ${job.spec.scope.prefix}` : null].filter(Boolean).join(", ");
      const cancel = job.state === "pending" || job.state === "running"
        ? el("button", { class: "small", type: "button", "data-cancel": job.id, onclick: async () => { await api(`/scrub/${job.id}/cancel`, { method: "POST" }); refresh(); } }, "Cancel")
        : null;
      const findings = r ? [...r.corrupt.map((f) => ["corrupt", f]), ...r.missing.map((f) => ["missing", f])] : [];
      return el("div", { class: "panel", "data-job": job.id },
        el("h2", {}, `Job ${job.id} `, badge(job.state), " ", cancel),
        el("p", {}, `${scope}; ${job.spec.rate_bytes_per_sec ? bytes(job.spec.rate_bytes_per_sec) + "/s" : "unlimited rate"}`,
          job.spec.every_secs ? `, every ${duration(job.spec.every_secs * 1000)}` : ", once", `; runs ${job.runs}; ${progress}`),
        r ? el("p", {}, `checked ${r.chunks_healthy + r.chunks_corrupt + r.chunks_missing} chunks (${bytes(r.bytes_checked)}): `,
          `${r.chunks_healthy} healthy, ${r.chunks_corrupt} corrupt, ${r.chunks_missing} missing, ${r.chunks_unreachable} unreachable; `,
          `${r.repairs_queued} repairs queued; inline ${r.inline_checked} checked, ${r.inline_corrupt.length} corrupt`) : null,
        findings.length === 0 ? null : table(["Finding", "Object", "Blob", "Chunk", "Node", "Corrupt blocks"],
          findings.map(([kind, f]) => el("tr", { "data-finding": kind },
            el("td", {}, badge(kind)), el("td", { class: "mono" }, `${f.bucket}/${f.key}`), el("td", { class: "mono" }, f.blob.slice(0, 12)),
            el("td", { class: "num" }, f.index), el("td", { class: "mono" }, f.node), el("td", {}, (f.blocks || []).join(", "))))));
    });
  },
};

pages.buckets = {
  title: "Buckets",
  load: () => api("/buckets"),
  live(_, data) {
    if (data.buckets.length === 0) return [el("p", { class: "muted" }, "No buckets yet.")];
    return [el("div", { class: "panel" }, table(["Bucket", "Owner", "Versioning", "Created"],
      data.buckets.map((b) => el("tr", { "data-bucket": b.name },
        el("td", {}, el("a", { href: "#/objects?bucket=" + encodeURIComponent(b.name) }, b.name)),
        el("td", {}, b.owner), el("td", {}, b.versioning), el("td", {}, new Date(b.created_ms).toLocaleString())))))];
  },
};

function objectLink(bucket, key) {
  return "#/object?bucket=" + encodeURIComponent(bucket) + "&key=" + encodeURIComponent(key);
}

function prefixLink(bucket, prefix) {
  return "#/objects?bucket=" + encodeURIComponent(bucket) + "&prefix=" + encodeURIComponent(prefix);
}

pages.objects = {
  title: "Buckets",
  load: (p) => api(`/objects?bucket=${encodeURIComponent(p.bucket)}&prefix=${encodeURIComponent(p.prefix || "")}&cursor=${encodeURIComponent(p.cursor || "")}`),
  live(p, data) {
    const levels = (data.prefix || "").split("/").filter(Boolean);
    const crumbs = el("p", { class: "crumbs" }, el("a", { href: "#/buckets" }, "buckets"), " / ",
      el("a", { href: prefixLink(data.bucket, "") }, data.bucket),
      levels.map((level, i) => [" / ", el("a", { href: prefixLink(data.bucket, levels.slice(0, i + 1).join("/") + "/") }, level)]));
    const rows = data.entries.map((e) => e.prefix !== undefined
      ? el("tr", {}, el("td", {}, el("a", { href: prefixLink(data.bucket, e.prefix) }, e.prefix.slice((data.prefix || "").length))), el("td", {}), el("td", {}))
      : el("tr", { "data-key": e.key }, el("td", {}, el("a", { href: objectLink(data.bucket, e.key) }, e.key.slice((data.prefix || "").length))),
        el("td", { class: "num" }, bytes(e.size)), el("td", {}, new Date(e.modified_ms).toLocaleString())));
    const next = data.next ? el("a", { href: prefixLink(data.bucket, data.prefix) + "&cursor=" + encodeURIComponent(data.next) }, "next page →") : null;
    return [crumbs, el("div", { class: "panel" }, table(["Key", { label: "Size", num: true }, "Modified"], rows, { id: "objects" }), next)];
  },
};

pages.object = {
  title: "Object",
  load: (p) => api(`/object?bucket=${encodeURIComponent(p.bucket)}&key=${encodeURIComponent(p.key)}`),
  live(p, o) {
    const crumbs = el("p", { class: "crumbs" }, el("a", { href: "#/buckets" }, "buckets"), " / ",
      el("a", { href: prefixLink(o.bucket, "") }, o.bucket), " / ", el("span", { class: "mono" }, o.key));
    const facts = table(null, [
      ["Size", bytes(o.size) + ` (${o.size} bytes)`], ["ETag", o.etag], ["Version", o.version_id],
      ["Content type", o.content_type || "–"], ["Created", new Date(o.created_ms).toLocaleString()],
      ["Integrity root", o.root], ["Encryption at rest", o.encryption || "none"],
      ["Stored", o.inline ? `inline in the catalogue, ${o.inline.bytes} bytes, blake3 ${o.inline.blake3}` : `${o.parts.length} part(s) as chunks`],
    ].map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, v))), { id: "object-facts" });
    const parts = o.parts.map((part) => el("div", { class: "panel", "data-part": part.number },
      el("h2", {}, `Part ${part.number}: blob `, el("span", { class: "mono" }, part.blob), ` — ${bytes(part.size)}, ${part.class}, blocks of ${bytes(part.block_size)}`),
      table(["Chunk", "Node", "Rack", "Node state", "Chunk state", "Merkle root"],
        part.chunks.map((c) => el("tr", { "data-chunk": c.index },
          el("td", { class: "num" }, c.index), el("td", { class: "mono" }, c.node), el("td", {}, c.rack || "?"),
          el("td", {}, badge(c.node_state)), el("td", {}, badge(c.state)), el("td", { class: "mono" }, c.merkle_root))))));
    return [crumbs, el("div", { class: "panel" }, facts), parts];
  },
};

pages.traffic = {
  title: "Traffic",
  load: () => api("/traffic"),
  live(_, data) {
    const s = data.samples;
    const times = s.map((p) => p.at_ms);
    const last = s.length ? s[s.length - 1] : null;
    const ms = (v) => v.toFixed(v < 10 ? 1 : 0) + " ms";
    return [
      el("div", { class: "stats" },
        stat("GET/s", last ? last.get_per_sec.toFixed(1) : "–", "traffic-get-rate"),
        stat("PUT/s", last ? last.put_per_sec.toFixed(1) : "–", "traffic-put-rate"),
        stat("bytes in/s", last ? bytes(last.bytes_in_per_sec) : "–"),
        stat("bytes out/s", last ? bytes(last.bytes_out_per_sec) : "–"),
        stat("GET p99", last && last.get_p99_ms !== null ? ms(last.get_p99_ms) : "–"),
        stat("PUT p99", last && last.put_p99_ms !== null ? ms(last.put_p99_ms) : "–")),
      el("p", { class: "muted" }, `This gateway's requests, sampled every ${data.every_secs} s over the last hour; latency to the response head.`),
      el("h2", {}, "Requests per second"),
      chart(times, [
        { name: "GET", color: "#2b6cb0", values: s.map((p) => p.get_per_sec) },
        { name: "PUT", color: "#1f9d55", values: s.map((p) => p.put_per_sec) },
      ], (v) => v.toFixed(0)),
      el("h2", {}, "Bytes per second"),
      chart(times, [
        { name: "in", color: "#1f9d55", values: s.map((p) => p.bytes_in_per_sec) },
        { name: "out", color: "#2b6cb0", values: s.map((p) => p.bytes_out_per_sec) },
      ], bytes),
      el("h2", {}, "Latency"),
      chart(times, [
        { name: "GET p50", color: "#63b3ed", values: s.map((p) => p.get_p50_ms) },
        { name: "GET p99", color: "#2b6cb0", values: s.map((p) => p.get_p99_ms) },
        { name: "PUT p50", color: "#68d391", values: s.map((p) => p.put_p50_ms) },
        { name: "PUT p99", color: "#1f9d55", values: s.map((p) => p.put_p99_ms) },
      ], ms),
    ];
  },
};

// ---- routing and polling ----

let current = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "cluster";
  const [name, query] = hash.split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  return { name: pages[name] ? name : "cluster", params };
}

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("page").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  current = null;
}

function openPage() {
  const { name, params } = route();
  const page = pages[name];
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.page === name || (name.startsWith("object") && a.dataset.page === "buckets"));
  }
  const live = el("div", { id: "live" });
  document.getElementById("page").replaceChildren(
    el("h1", { id: "page-title" }, page.title), ...(page.static ? page.static(params) : []), live);
  document.title = `${page.title} · Cairn console`;
  current = { page, params, live };
  refresh();
}

async function refresh() {
  if (!current) return;
  const view = current;
  const status = document.getElementById("status");
  try {
    const data = await view.page.load(view.params);
    if (current !== view) return;
    view.live.replaceChildren(...view.page.live(view.params, data).flat(Infinity).filter(Boolean));
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.classList.remove("error");
  } catch (err) {
    if (err instanceof SignedOut) return showLogin();
    if (current !== view) return;
    status.textContent = "not updated: " + err.message;
    status.classList.add("error");
    view.live.replaceChildren(el("p", { class: "error", id: "page-error" }, err.message));
  }
}

async function start() {
  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch("/console/api/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        user: document.getElementById("login-user").value,
        password: document.getElementById("login-password").value,
      }),
    });
    if (response.ok) {
      document.getElementById("login-password").value = "";
      openPage();
    } else {
      showLogin(await response.text());
    }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/logout", { method: "POST" }).catch(() => {});
    showLogin("Signed out.");
  });
  window.addEventListener("hashchange", () => { if (current) openPage(); });
  setInterval(refresh, POLL_MS);
  try {
    await api("/session");
    openPage();
  } catch (err) {
    showLogin(err instanceof SignedOut ? "" : err.message);
  }
}

document.addEventListener("DOMContentLoaded", start);
