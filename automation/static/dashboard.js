// The dashboard's only script: reads the service's JSON API (same origin, the login cookie),
// builds the pages with DOM calls (text is never parsed as HTML), follows a job with EventSource.
"use strict";

const FINISHED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
let session = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function loginUrl() {
  const next = location.pathname + location.search;
  return "/ui/login?next=" + encodeURIComponent(next);
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {}, credentials: "same-origin" };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && !options.allowUnauthorized) {
    location.assign(loginUrl());
    throw new Error("not logged in");
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

function notify(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

function badge(status) {
  return el("span", { class: "badge status-" + status, text: status });
}

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  return el("time", { datetime: value, title: value, text: date.toLocaleString() });
}

function cell(label, content) {
  return el("td", { "data-label": label }, content);
}

function jobLink(job) {
  return el("a", { href: "/ui/jobs/" + encodeURIComponent(job.id), text: job.id.slice(0, 8) });
}

function shortCommit(source) {
  if (!source || !source.commit) return "none (not a git checkout)";
  return source.commit.slice(0, 10) + (source.dirty ? " (+ local changes)" : "");
}

function outputValue(value) {
  if (typeof value === "string" && /^https?:\/\/[^\s]+$/.test(value)) {
    return el("a", { href: value, rel: "noopener noreferrer", text: value });
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

function rights(environment) {
  const found = session.environments.find((item) => item.name === environment);
  return found || { name: environment, requires_approval: false, may_operate: false, may_approve: false };
}

function confirmAction({ title, text, typed, action }) {
  const dialog = document.getElementById("confirm");
  const input = document.getElementById("confirm-input");
  const ok = document.getElementById("confirm-ok");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-typed").hidden = !typed;
  document.getElementById("confirm-expected").textContent = typed || "";
  ok.textContent = action;
  ok.className = typed ? "danger-solid" : "";
  input.value = "";
  ok.disabled = Boolean(typed);
  input.oninput = () => { ok.disabled = input.value !== typed; };
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    (typed ? input : ok).focus();
  });
}

async function submit(path, body, button) {
  notify("");
  if (button) button.disabled = true;
  try {
    const job = await api(path, { method: "POST", body });
    location.assign("/ui/jobs/" + encodeURIComponent(job.id));
  } catch (error) {
    notify(error.message);
    if (button) button.disabled = false;
  }
}

// ---- header ----

function renderWho() {
  const who = document.getElementById("who");
  const name = session.open_access ? "open access (no tokens)" : session.name;
  const scopes = session.open_access ? "" : session.scopes.join(", ");
  who.replaceChildren(
    el("span", { class: "who-name", text: name }),
    scopes ? el("span", { class: "muted who-scopes", text: " · " + scopes }) : null,
  );
  if (!session.open_access) {
    who.append(" ", el("button", { type: "button", class: "link", onclick: logOut, text: "Log out" }));
  }
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page || (page === "job" && link.dataset.nav === "jobs")) {
      link.setAttribute("aria-current", "page");
    }
  }
}

async function logOut() {
  await fetch("/session", { method: "DELETE", credentials: "same-origin" });
  location.assign("/ui/login");
}

// ---- login ----

function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

async function loginPage() {
  const form = document.getElementById("login");
  const message = document.getElementById("login-error");
  try {
    const current = await api("/session", { allowUnauthorized: true });
    if (current.open_access) {
      message.hidden = false;
      message.className = "notice";
      message.textContent = "No tokens are configured: the service is open on this machine, no login needed.";
    }
  } catch (error) {
    // not logged in: the form is what this page is for
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    const token = input.value.trim();
    message.hidden = true;
    const response = await fetch("/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { Authorization: "Bearer " + token },
    });
    input.value = "";
    if (response.ok) {
      location.assign(safeNext());
      return;
    }
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (error) { /* keep the status text */ }
    message.className = "error";
    message.textContent = "Login failed: " + detail;
    message.hidden = false;
    input.focus();
  });
}

// ---- environments ----

async function overviewPage() {
  const container = document.getElementById("environments");
  const environments = await api("/environments");
  container.replaceChildren(...environments.map(environmentCard));
  container.setAttribute("aria-busy", "false");
  if (!environments.length) container.append(el("p", { text: "No environments are configured." }));
  await Promise.all(environments.map((environment) => fillEnvironment(environment.name)));
}

function environmentCard(environment) {
  const id = "env-" + environment.name;
  const allowed = rights(environment.name);
  const card = el("section", { class: "card", id, "aria-labelledby": id + "-title" },
    el("h2", { id: id + "-title" }, environment.name,
      allowed.requires_approval ? el("span", { class: "tag", text: "approval required" }) : null),
    el("dl", { class: "details" },
      el("dt", { text: "Now" }), el("dd", { class: "now", text: "…" }),
      el("dt", { text: "Last job" }),
      el("dd", {}, environment.last_job
        ? el("span", {}, jobLink(environment.last_job), " ", environment.last_job.operation, " ",
          badge(environment.last_job.status))
        : "none"),
      el("dt", { text: "Last deploy" }), el("dd", { class: "deploy", text: "…" }),
      el("dt", { text: "Drift" }), el("dd", { class: "drift", text: "…" }),
    ),
    el("h3", { text: "Outputs" }),
    outputList(environment.outputs),
  );
  if (allowed.may_operate) card.append(environmentActions(environment.name, allowed));
  return card;
}

function outputList(outputs) {
  const entries = Object.entries(outputs || {});
  if (!entries.length) return el("p", { class: "muted outputs", text: "none yet" });
  const list = el("dl", { class: "details outputs" });
  for (const [key, value] of entries) list.append(el("dt", { text: key }), el("dd", {}, outputValue(value)));
  return list;
}

function environmentActions(name, allowed) {
  const base = "/environments/" + encodeURIComponent(name);
  const actions = el("div", { class: "actions", role: "group", "aria-label": "Operations on " + name });
  const button = (label, onclick, extra = {}) =>
    el("button", { type: "button", onclick, ...extra, text: label });
  actions.append(button("Preview", (event) => submit(base + "/preview", undefined, event.target)));
  if (allowed.requires_approval) {
    actions.append(el("p", {
      class: "muted",
      text: "Changes here run only as a preview applied by an approver (open the preview's job).",
    }));
    return actions;
  }
  actions.append(
    button("Up", (event) => submit(base + "/up", undefined, event.target)),
    button("Refresh", (event) => submit(base + "/refresh", undefined, event.target)),
    button("Roll back", async (event) => {
      const target = event.target;
      const ok = await confirmAction({
        title: "Roll back " + name + "?",
        text: "Runs an up with the source and config of the successful up before the latest.",
        action: "Roll back",
      });
      if (ok) submit(base + "/rollback", undefined, target);
    }),
    button("Destroy…", async (event) => {
      const target = event.target;
      const ok = await confirmAction({
        title: "Destroy " + name + "?",
        text: "Deletes every resource of the stack " + name + ".",
        typed: name,
        action: "Destroy",
      });
      if (ok) submit(base + "/destroy", { confirm: name }, target);
    }, { class: "danger" }),
  );
  const inputId = "image-" + name;
  const form = el("form", { class: "deploy-form" },
    el("label", { for: inputId, text: "Image" }),
    el("input", { id: inputId, name: "image", required: true, placeholder: "repository:tag", autocomplete: "off" }),
    el("button", { type: "submit", text: "Deploy" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const image = form.elements.image.value.trim();
    submit(base + "/deploy", { image }, form.querySelector("button"));
  });
  actions.append(form);
  return actions;
}

async function fillEnvironment(name) {
  const card = document.getElementById("env-" + name);
  const now = card.querySelector(".now");
  const deploy = card.querySelector(".deploy");
  const drift = card.querySelector(".drift");
  const [detail, succeeded] = await Promise.allSettled([
    api("/environments/" + encodeURIComponent(name)),
    api("/jobs?" + new URLSearchParams({ environment: name, status: "succeeded", limit: "50" })),
  ]);
  if (detail.status === "fulfilled") {
    const value = detail.value;
    const parts = [];
    if (value.active_job) parts.push(el("span", {}, "running ", jobLink(value.active_job), " ", value.active_job.operation));
    for (const job of value.queued_jobs) parts.push(el("span", {}, "queued ", jobLink(job), " ", job.operation));
    now.replaceChildren(...(parts.length ? parts.flatMap((part, index) => (index ? [el("br"), part] : [part])) : ["idle"]));
    drift.replaceChildren(describeDrift(value.drift));
  } else {
    now.textContent = "unavailable: " + detail.reason.message;
    drift.textContent = "unknown";
  }
  if (succeeded.status === "fulfilled") {
    const last = succeeded.value.items.find((job) => job.operation === "up");
    deploy.replaceChildren(last ? describeDeploy(last) : "none yet");
  } else {
    deploy.textContent = "unavailable: " + succeeded.reason.message;
  }
}

function describeDrift(drift) {
  if (!drift || !drift.checked_at) return el("span", { class: "muted", text: "not checked" });
  const parts = [el("span", { class: "badge drift-" + drift.status, text: drift.status })];
  if (drift.checked_at) parts.push(" checked ", when(drift.checked_at));
  if (Array.isArray(drift.resources) && drift.resources.length) {
    parts.push(" · " + drift.resources.length + " resource(s)");
  }
  return el("span", {}, ...parts);
}

function describeVerification(verification) {
  if (!verification) return null;
  const parts = [badge(verification.status || "unknown")];
  if (verification.detail) parts.push(" " + verification.detail);
  else if (verification.error) parts.push(" " + verification.error);
  return el("span", {}, ...parts);
}

function describeDeploy(job) {
  return el("span", {},
    jobLink(job), " by ", job.requested_by || "local", ", ", when(job.finished_at),
    el("br"), "image ", el("code", { text: job.image || "(stack config)" }),
    el("br"), "commit ", el("code", { text: shortCommit(job.source) }),
    job.verification ? el("span", {}, el("br"), "verification ", describeVerification(job.verification)) : null,
  );
}

// ---- job list ----

async function jobsPage() {
  const params = new URLSearchParams(location.search);
  const environmentFilter = document.getElementById("filter-environment");
  for (const environment of session.environments) {
    environmentFilter.append(el("option", { value: environment.name, text: environment.name }));
  }
  environmentFilter.value = params.get("environment") || "";
  document.getElementById("filter-status").value = params.get("status") || "";
  const query = new URLSearchParams({ limit: "50" });
  for (const key of ["environment", "status"]) if (params.get(key)) query.set(key, params.get(key));
  const body = document.querySelector("#jobs tbody");
  const older = document.getElementById("older");
  const load = async (cursor) => {
    if (cursor) query.set("cursor", cursor);
    const page = await api("/jobs?" + query);
    for (const job of page.items) {
      body.append(el("tr", {},
        cell("Job", jobLink(job)), cell("Environment", job.environment), cell("Operation", job.operation),
        cell("Status", badge(job.status)), cell("By", job.requested_by || "—"),
        cell("Created", when(job.created_at)), cell("Finished", when(job.finished_at))));
    }
    if (!body.children.length) {
      body.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No jobs match." })));
    }
    older.hidden = !page.next_cursor;
    older.onclick = () => load(page.next_cursor).catch((error) => notify(error.message));
  };
  await load(null);
}

// ---- one job ----

async function jobPage() {
  const jobId = decodeURIComponent(location.pathname.split("/").pop());
  const path = "/jobs/" + encodeURIComponent(jobId);
  const state = { job: null, resources: new Map(), logTimer: null };
  const refreshJob = async () => {
    state.job = await api(path);
    renderJob(state.job);
  };
  const loadLog = async () => {
    const text = await api(path + "/log");
    const log = document.getElementById("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = text || "(no output yet)";
    if (atEnd) log.scrollTop = log.scrollHeight;
  };
  const refreshLog = () => {
    if (state.logTimer) return;
    state.logTimer = setTimeout(() => {
      state.logTimer = null;
      loadLog().catch((error) => notify(error.message));
    }, 300);
  };
  try {
    await refreshJob();
  } catch (error) {
    document.getElementById("title").textContent = "Job " + jobId;
    notify(error.message);
    return;
  }
  refreshLog();
  const streamState = document.getElementById("stream-state");
  const events = new EventSource(path + "/events");
  events.onopen = () => { streamState.textContent = FINISHED.has(state.job.status) ? "" : "(live)"; };
  events.onerror = () => { streamState.textContent = "(reconnecting…)"; };
  events.addEventListener("status", (event) => {
    const data = JSON.parse(event.data);
    setStatus(data.status);
    refreshJob().catch((error) => notify(error.message));
  });
  events.addEventListener("engine", (event) => {
    progress(state.resources, JSON.parse(event.data));
    refreshLog();
  });
  events.addEventListener("log", refreshLog);
  events.addEventListener("end", async (event) => {
    events.close();
    const data = JSON.parse(event.data);
    setStatus(data.status);
    streamState.textContent = data.reason === "shutdown" ? "(the service is restarting: reload later)" : "";
    if (data.reason === "finished") settleProgress(state.resources, data.status);
    try {
      await Promise.all([refreshJob(), loadLog()]);
    } catch (error) {
      notify(error.message);
    }
    document.body.dataset.stream = "ended";
  });
}

function setStatus(status) {
  const node = document.getElementById("status");
  node.className = "badge status-" + status;
  node.textContent = status;
}

function progress(resources, event) {
  const kinds = { resourcePreEvent: "in progress", resOutputsEvent: "done", resOpFailedEvent: "failed" };
  const kind = Object.keys(kinds).find((key) => key in event);
  if (!kind || !event[kind].metadata) return;
  const metadata = event[kind].metadata;
  let row = resources.get(metadata.urn);
  if (!row) {
    row = el("tr", {}, cell("Resource", metadata.urn.split("::").pop()), cell("Type", metadata.type),
      cell("Step", ""), cell("State", ""));
    resources.set(metadata.urn, row);
    document.querySelector("#progress tbody").append(row);
  }
  row.children[2].textContent = metadata.op;
  row.children[3].replaceChildren(el("span", { class: "state-" + kinds[kind].replace(" ", "-"), text: kinds[kind] }));
}

function settleProgress(resources, status) {
  // Components and the stack get their outputs only when the whole update succeeds.
  const settled = status === "succeeded" ? "done" : "not finished";
  for (const row of resources.values()) {
    const state = row.children[3];
    if (state.textContent === "in progress") {
      state.replaceChildren(el("span", { class: "state-" + settled.replace(" ", "-"), text: settled }));
    }
  }
}

function renderJob(job) {
  document.title = job.operation + " " + job.environment + " · " + job.id.slice(0, 8) + " · automation";
  document.getElementById("crumb").textContent = job.id;
  document.getElementById("title").textContent = job.operation + " · " + job.environment;
  setStatus(job.status);
  const error = document.getElementById("error");
  error.hidden = !job.error;
  error.replaceChildren(...(job.error ? [el("strong", { text: "Error: " }), job.error] : []));
  const rows = [
    ["Job", job.id],
    ["Environment", job.environment],
    ["Requested by", job.requested_by || "local"],
    ["Message", job.message],
    ["Created", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)],
    ["Image", job.image ? el("code", { text: job.image }) : null],
    ["Source", job.source ? el("span", {}, "commit ", el("code", { text: shortCommit(job.source) }),
      " · tree ", el("code", { text: job.source.tree.slice(0, 12) })) : null],
    ["Config", Object.keys(job.config || {}).length ? el("code", { text: JSON.stringify(job.config) }) : null],
    ["Summary", job.summary ? Object.entries(job.summary).map(([op, count]) => op + " " + count).join(", ") : null],
    ["Applies plan of", job.applies ? jobLink({ id: job.applies }) : null],
    ["Plan applied by", job.applied_by ? jobLink({ id: job.applied_by }) : null],
    ["Approved by", job.approved_by],
    ["Plan expires", job.plan_expires_at && !job.applied_by ? when(job.plan_expires_at) : null],
    ["Rollback of", job.rollback_of ? jobLink({ id: job.rollback_of }) : null],
    ["Rolled back by", job.rolled_back_by ? jobLink({ id: job.rolled_back_by }) : null],
    ["Verification", describeVerification(job.verification)],
    ["Outputs", job.outputs && Object.keys(job.outputs).length ? outputList(job.outputs) : null],
    ["Notes", job.notes && job.notes.length ? el("ul", {}, ...job.notes.map((note) => el("li", { text: note }))) : null],
  ];
  const details = document.getElementById("details");
  details.replaceChildren();
  for (const [label, value] of rows) {
    if (value === null || value === undefined || value === "") continue;
    details.append(el("dt", { text: label }), el("dd", {}, value));
  }
  renderChanges(job.changes);
  renderJobActions(job);
}

function renderChanges(changes) {
  const table = document.getElementById("changes");
  document.getElementById("changes-empty").hidden = Boolean(changes && changes.length);
  table.hidden = !(changes && changes.length);
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const change of changes || []) {
    const properties = Object.entries(change.diff || {}).map(([key, diff]) =>
      el("li", {}, el("code", { text: key }), " " + describeDiff(diff)));
    body.append(el("tr", { class: change.op === "same" ? "unchanged" : null },
      cell("Resource", change.name), cell("Type", change.type),
      cell("Step", el("span", { class: "op-" + change.op, text: change.op })),
      cell("Properties", properties.length ? el("ul", { class: "diff" }, ...properties) : "—")));
  }
}

function describeDiff(diff) {
  const show = (value) => {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text && text.length > 120 ? text.slice(0, 120) + "…" : text;
  };
  if (diff.kind === "add") return "+ " + show(diff.new);
  if (diff.kind === "delete") return "− " + show(diff.old);
  return show(diff.old) + " → " + show(diff.new) + (diff.kind.endsWith("replace") ? " (replace)" : "");
}

function renderJobActions(job) {
  const actions = document.getElementById("actions");
  actions.replaceChildren();
  const allowed = rights(job.environment);
  const path = "/jobs/" + encodeURIComponent(job.id);
  if (!FINISHED.has(job.status) && allowed.may_operate && !job.cancel_requested) {
    actions.append(el("button", {
      type: "button",
      class: "danger",
      text: job.status === "queued" ? "Cancel" : "Cancel (Ctrl-C)",
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api(path + "/cancel", { method: "POST" });
        } catch (error) {
          notify(error.message);
        }
      },
    }));
  }
  const expired = job.plan_expires_at && new Date(job.plan_expires_at) < new Date();
  const applicable = job.operation === "preview" && job.status === "succeeded" && !job.applied_by && !expired;
  if (applicable && allowed.requires_approval) {
    if (allowed.may_approve && (session.open_access || session.name !== job.requested_by)) {
      actions.append(el("button", {
        type: "button",
        text: "Approve and apply…",
        onclick: async (event) => {
          const target = event.target;
          const ok = await confirmAction({
            title: "Apply this plan to " + job.environment + "?",
            text: job.environment + " requires approval: applying runs an up limited to this preview's changes, recorded as approved by you.",
            action: "Approve and apply",
          });
          if (ok) submit(path + "/apply", undefined, target);
        },
      }));
    } else if (allowed.may_approve) {
      actions.append(el("p", { class: "muted", text: "You requested this preview: another approver must apply it." }));
    }
  } else if (applicable && allowed.may_operate) {
    actions.append(el("button", {
      type: "button",
      text: "Apply this plan",
      onclick: (event) => submit(path + "/apply", undefined, event.target),
    }));
  }
  if (job.operation === "up" && job.status === "succeeded" && allowed.may_operate && !allowed.requires_approval) {
    actions.append(el("button", {
      type: "button",
      text: "Roll back to this…",
      onclick: async (event) => {
        const target = event.target;
        const ok = await confirmAction({
          title: "Roll back " + job.environment + " to this job?",
          text: "Runs an up with this job's source and config.",
          action: "Roll back",
        });
        if (ok) submit("/environments/" + encodeURIComponent(job.environment) + "/rollback", { to: job.id }, target);
      },
    }));
  }
}

// ---- start ----

async function main() {
  const page = document.body.dataset.page;
  if (page === "login") return loginPage();
  session = await api("/session");
  renderWho();
  if (!session.may_read) {
    notify("Token " + session.name + " lacks the 'read' scope: the dashboard has nothing to show it.");
    return;
  }
  if (page === "overview") return overviewPage();
  if (page === "jobs") return jobsPage();
  if (page === "job") return jobPage();
}

document.addEventListener("DOMContentLoaded", () => {
  main().catch((error) => { if (error.message !== "not logged in") notify(error.message); });
});
