// slotgate's live topology page. Polls api/topology at most once a second (the next poll
// starts a second after the previous one ended) and redraws in place, keeping keyboard
// focus. Everything is built with textContent: node names come from the cluster and are
// never parsed as HTML. No framework, no network access beyond this origin.
"use strict";

const POLL_MS = 1000;
const SLOTS = 16384;
// Shard colours; the legend and every tooltip say the same in text.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function colour(shard) {
  return shard < 0 ? "transparent" : COLOURS[shard % COLOURS.length];
}

function num(value, digits) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") return value;
  return digits === undefined ? String(value) : value.toFixed(digits);
}

function since(ms) {
  if (!ms) return "";
  const age = Math.max(0, Math.round((Date.now() - ms) / 1000));
  const when = new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  if (age < 120) return `since ${when} (${age}s ago)`;
  if (age < 7200) return `since ${when} (${Math.round(age / 60)} min ago)`;
  return `since ${when} (${Math.round(age / 3600)} h ago)`;
}

function ranges(list) {
  return (list || []).map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}

function slotBar(upstream) {
  const runs = upstream.slot_owners || [];
  const shards = upstream.shards || [];
  const owned = runs.filter((r) => r[2] >= 0);
  const summary = shards.map((s, i) => `shard ${i + 1} (${s.primary.address}): ${ranges(s.slots)}`)
    .join("; ");
  const bar = el("div", {
    class: "slotbar", role: "img",
    "aria-label": `Slot map: ${owned.length ? summary : "no slot served"}`,
  });
  for (const [start, end, shard] of runs) {
    const primary = shard >= 0 && shards[shard] ? shards[shard].primary.address : "no owner";
    bar.append(el("div", {
      class: shard < 0 ? "seg none" : "seg",
      "data-start": start, "data-end": end, "data-shard": shard, "data-primary": primary,
      title: `slots ${start}–${end}: ${shard < 0 ? "not served" : `shard ${shard + 1}, primary ${primary}`}`,
      style: { left: `${(start / SLOTS) * 100}%`, width: `${((end - start + 1) / SLOTS) * 100}%`,
        background: colour(shard) },
    }));
  }
  for (const m of upstream.migrations || []) {
    bar.append(el("div", {
      class: `mark ${m.state}`, "data-slot": m.slot, "data-state": m.state,
      title: `slot ${m.slot} ${m.state} (${m.node})`,
      style: { left: `${(m.slot / SLOTS) * 100}%` },
    }));
  }
  const scale = el("div", { class: "scale", "aria-hidden": "true" },
    el("span", { text: "0" }), el("span", { text: "8192" }), el("span", { text: "16383" }));
  const legend = el("ul", { class: "legend", "aria-label": "Shards" });
  shards.forEach((s, i) => {
    legend.append(el("li", {},
      el("span", { class: "swatch", style: { background: colour(i) }, "aria-hidden": "true" }),
      el("span", { text: `shard ${i + 1}: ${s.primary.address} — slots ${ranges(s.slots)}` })));
  });
  const migrating = (upstream.migrations || []);
  const migrations = migrating.length
    ? el("p", { class: "migrations" },
      `Open migrations: ${migrating.map((m) => `slot ${m.slot} ${m.state} on ${m.node}`).join("; ")}`)
    : null;
  return el("div", { class: "slots" }, bar, scale, legend, migrations);
}

function errorsText(errors) {
  const parts = Object.entries(errors || {}).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(", ") : "none";
}

const COLUMNS = ["Node", "Role", "Health", "Host / IP", "Repl. offset", "Lag (bytes)",
  "Conns", "In flight", "Req/s", "p99 (ms)", "Errors"];

function nodeRow(node, shardIndex) {
  const healthy = node.health === "online";
  const hostIp = [node.hostname, node.ip].filter(Boolean).join(" / ") || "–";
  const cells = [
    el("th", { scope: "row" }, el("span", { class: "addr", text: node.address })),
    el("td", {}, el("span", { class: `badge ${node.role}`, text: node.role })),
    el("td", {}, el("span", { class: `badge ${healthy ? "ok" : "bad"}`, text: node.health }),
      el("span", { class: "since", text: ` ${since(node.health_since_unix_ms)}` })),
    el("td", { text: hostIp }),
    el("td", { class: "n", text: num(node.replication_offset) }),
    el("td", { class: "n", text: num(node.replication_lag_bytes) }),
    el("td", { class: "n", text: num(node.connections) }),
    el("td", { class: "n", text: num(node.in_flight) }),
    el("td", { class: "n", text: num(node.requests_per_second, 1) }),
    el("td", { class: "n", text: num(node.p99_ms) }),
    el("td", { text: errorsText(node.errors) }),
  ];
  cells.forEach((cell, i) => cell.setAttribute("data-label", COLUMNS[i]));
  return el("tr", {
    "data-node": node.address, "data-role": node.role, "data-health": node.health,
    "data-shard": shardIndex, tabindex: 0, "data-key": `node:${node.address}`,
    "aria-label": `${node.address}, ${node.role}, ${node.health}`,
  }, ...cells);
}

function nodeTable(upstream) {
  const table = el("table", { class: "nodes" },
    el("caption", { text: "Nodes, by shard (rates and p99 over the last seconds)" }),
    el("thead", {}, el("tr", {}, ...COLUMNS.map((c) => el("th", { scope: "col", text: c })))));
  (upstream.shards || []).forEach((shard, i) => {
    const body = el("tbody", { "data-shard": i });
    body.append(el("tr", { class: "shardhead" },
      el("th", { colspan: COLUMNS.length, scope: "rowgroup" },
        el("span", { class: "swatch", style: { background: colour(i) }, "aria-hidden": "true" }),
        `Shard ${i + 1} — slots ${ranges(shard.slots)}`)));
    body.append(nodeRow(shard.primary, i));
    for (const replica of shard.replicas || []) body.append(nodeRow(replica, i));
    table.append(body);
  });
  return el("div", { class: "tablewrap", tabindex: 0, "data-key": `table:${upstream.name}`,
    role: "region", "aria-label": `Nodes of ${upstream.name}` }, table);
}

// Sentinel mode: each Sentinel, the primary it names, and whether they agree (the
// reachable ones name the same primary). `upstream.sentinel` is null in other modes.
function sentinels(upstream) {
  const status = upstream.sentinel;
  if (!status || !Array.isArray(status.sentinels)) return null;
  const named = status.sentinels.filter((s) => s.reachable && s.says).map((s) => s.says);
  const agree = named.length > 0 && named.every((n) => n === named[0]);
  const verdict = named.length === 0 ? "No Sentinel answered: serving the last confirmed primary."
    : agree ? `The ${named.length} reachable Sentinel(s) agree: the primary is ${named[0]}.`
      : `The Sentinels DISAGREE: ${[...new Set(named)].join(" vs ")}.`;
  const items = status.sentinels.map((s) => el("li", {
    "data-sentinel": s.address, "data-reachable": s.reachable, "data-says": s.says || "",
  },
  el("span", { class: "addr", text: s.address }),
  el("span", { class: `badge ${s.reachable ? "ok" : "bad"}`, text: s.reachable ? "reachable" : "unreachable" }),
  el("span", { text: s.says ? ` says the primary is ${s.says}` : s.error ? ` ${s.error}` : "" }),
  el("span", { class: "since", text: s.configured ? " (configured)" : " (discovered)" })));
  const facts = [`master name ${status.master_name}`,
    `primary confirmed by ROLE: ${status.primary || "none"}`];
  if (status.holding) facts.push("failover hold in force");
  const fault = upstream.no_primary;
  return el("section", { class: "sentinels", "aria-label": "Sentinels", "data-agree": agree },
    el("h3", { text: "Sentinels" }),
    el("p", { class: agree ? "" : "problem", text: verdict }),
    el("p", { text: facts.join(" · ") }),
    fault ? el("p", { class: "problem", role: "alert",
      text: `No primary: ${fault.split_brain ? "split brain between " + fault.claimants.join(", ") : fault.error}` }) : null,
    el("ul", { class: "sentinel-list" }, ...items));
}

function events(upstream) {
  const list = upstream.events || [];
  const ol = el("ol", { class: "events" });
  for (const e of list.slice(0, 20)) {
    ol.append(el("li", { "data-kind": e.kind },
      el("time", { datetime: e.at, text: e.at.replace("T", " ").replace(/\.\d+Z$/, "Z") }),
      el("span", { class: `kind ${e.kind}`, text: e.kind.replace(/_/g, " ") }),
      el("span", { text: e.message })));
  }
  return el("section", { "aria-label": "Topology events" },
    el("h3", { text: "Last topology events" }),
    list.length ? ol : el("p", { text: "None since slotgate started." }));
}

function upstreamSection(upstream) {
  const facts = el("dl", { class: "facts" });
  const fact = (k, v) => facts.append(el("div", {}, el("dt", { text: k }), el("dd", { text: v })));
  fact("Mode", upstream.mode || "cluster");
  fact("Ready", upstream.ready ? "yes" : "no");
  fact("Slots covered", `${num(upstream.slots_covered)} of ${SLOTS}`);
  fact("Epoch", num(upstream.epoch));
  fact("Map generation", num(upstream.generation));
  fact("Map from", upstream.source || "–");
  fact("Last refresh", upstream.last_refresh ? since(upstream.last_refresh_unix_ms) : "never");
  const mode = upstream.mode || "cluster";
  return el("section", { class: "upstream", "data-upstream": upstream.name,
    "aria-labelledby": `h-${upstream.name}` },
  el("h2", { id: `h-${upstream.name}`, text: `Backend “${upstream.name}” (${mode})` }),
  facts,
  mode === "cluster" ? slotBar(upstream) : null,
  sentinels(upstream),
  nodeTable(upstream),
  events(upstream));
}

function renderProxy(doc) {
  const readiness = document.getElementById("readiness");
  readiness.textContent = doc.ready ? "Ready: serving traffic" : `Not ready (${doc.readiness}): ${doc.readiness_reason}`;
  readiness.className = `readiness ${doc.ready ? "ok" : "bad"}`;
  const proxy = document.getElementById("proxy");
  proxy.replaceChildren();
  const fact = (k, v) => proxy.append(el("div", {}, el("dt", { text: k }), el("dd", { text: v })));
  fact("Clients", num(doc.proxy.client_connections));
  fact("Commands/s", num(doc.proxy.commands_per_second, 1));
  fact("p99 (ms)", num(doc.proxy.p99_ms));
  fact("Updated", new Date(doc.generated_unix_ms).toISOString().substring(11, 19) + "Z");
}

function render(doc) {
  const focused = document.activeElement && document.activeElement.getAttribute("data-key");
  renderProxy(doc);
  const main = document.getElementById("upstreams");
  main.replaceChildren(...doc.upstreams.map(upstreamSection));
  if (focused) {
    const again = main.querySelector(`[data-key="${CSS.escape(focused)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  document.body.setAttribute("data-generation",
    doc.upstreams.map((u) => u.generation).join(","));
}

async function poll() {
  const problem = document.getElementById("problem");
  try {
    const response = await fetch("api/topology", { cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) {
      problem.textContent = "The admin token is missing or wrong: reload the page to sign in.";
      problem.hidden = false;
      return;
    }
    if (!response.ok) throw new Error(`api/topology answered ${response.status}`);
    render(await response.json());
    problem.hidden = true;
  } catch (e) {
    problem.textContent = `Cannot reach slotgate (${e.message}); retrying every second.`;
    problem.hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

poll();
