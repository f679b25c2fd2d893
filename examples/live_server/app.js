// The live demo's page: the workspace overview at `/`, one project at
// `/projects/<uuid>`. Each view subscribes to its topics through
// `/events` and re-reads what it shows whenever an event arrives: events
// say what changed, not the new state.
"use strict";

const view = document.getElementById("view");
const statusBadge = document.getElementById("status");
const eventLog = document.getElementById("events");

// Builds an element; children are nodes or strings (set as text, never HTML).
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key.startsWith("on")) {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value);
    }
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new Error((data && data.error) || response.statusText);
  }
  return data;
}

// A change made by a button: a failure is shown in an alert.
function act(method, path, body) {
  return api(method, path, body).catch((error) => alert(error.message));
}

function setStatus(state, text) {
  statusBadge.dataset.state = state;
  statusBadge.textContent = text;
}

function logEvent(frame) {
  const item = el("li", { class: "flash" },
    el("strong", {}, frame.event), " on ", el("code", {}, frame.topic));
  eventLog.prepend(item);
  while (eventLog.children.length > 30) {
    eventLog.lastChild.remove();
  }
}

// Opens the stream of `topics` and re-reads the view once it is ready, on
// a reload order, and after every event. Re-reads never overlap, so an
// older answer cannot overwrite a newer one.
function follow(topics, refresh) {
  let running = false;
  let again = false;
  const reread = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await refresh();
      } while (again);
    } catch (error) {
      view.prepend(el("p", { class: "error" }, "Could not load: " + error.message));
    } finally {
      running = false;
    }
  };

  document.getElementById("topics").textContent = topics.join(", ");
  const query = topics.map((topic) => "topic=" + encodeURIComponent(topic)).join("&");
  const source = new EventSource("/events?" + query);
  source.addEventListener("ready", () => {
    setStatus("live", "live");
    reread();
  });
  source.addEventListener("reload", () => {
    setStatus("live", "live (reloaded after a gap)");
    reread();
  });
  source.onmessage = (message) => {
    logEvent(JSON.parse(message.data));
    reread();
  };
  source.onerror = () => setStatus("reconnecting", "reconnecting…");
  reread();
}

// Runs a change; a failure is shown next to the form that made it.
function submitter(form, change) {
  return async (event) => {
    event.preventDefault();
    const message = form.querySelector(".error");
    message.textContent = "";
    try {
      await change();
      form.reset();
    } catch (error) {
      message.textContent = error.message;
    }
  };
}

function errorSlot() {
  return el("span", { class: "error", role: "alert" });
}

// ---- the workspace overview ----------------------------------------------

async function renderOverview() {
  const workspace = await api("GET", "/api/workspace");
  const projects = workspace.projects.filter((p) => !p.is_template);
  const templates = workspace.projects.filter((p) => p.is_template);

  const projectItem = (project) => el("li", { "data-uuid": project.uuid },
    el("a", { href: "/projects/" + project.uuid }, project.name),
    el("span", { class: "muted" }, ` ${project.assignments} tasks `),
    el("button", {
      class: "small",
      onclick: () => act("DELETE", "/api/projects/" + project.uuid),
    }, "delete"));

  const nameInput = el("input", { type: "text", id: "project-name-input",
    placeholder: "New project name", required: "" });
  const templateSelect = el("select", { id: "template-select" },
    el("option", { value: "" }, "no template"),
    templates.map((t) => el("option", { value: t.uuid }, "from " + t.name)));
  const asTemplate = el("input", { type: "checkbox", id: "as-template" });
  const newProject = el("form", { id: "new-project" },
    nameInput, templateSelect,
    el("label", {}, asTemplate, " template"),
    el("button", { type: "submit" }, "Create"), errorSlot());
  newProject.addEventListener("submit", submitter(newProject, () => api("POST", "/api/projects", {
    name: nameInput.value,
    is_template: asTemplate.checked,
    template: templateSelect.value || null,
  })));

  const taskInput = el("input", { type: "text", id: "task-title-input",
    placeholder: "New library task", required: "" });
  const newTask = el("form", { id: "new-task" },
    taskInput, el("button", { type: "submit" }, "Add task"), errorSlot());
  newTask.addEventListener("submit", submitter(newTask,
    () => api("POST", "/api/tasks", { title: taskInput.value })));

  view.replaceChildren(
    el("h1", {}, "Workspace"),
    el("h2", {}, "Projects"),
    el("ul", { id: "projects" }, projects.map(projectItem)),
    newProject,
    el("h2", {}, "Templates"),
    el("ul", { id: "templates" }, templates.map(projectItem)),
    el("h2", {}, "Task library"),
    el("ul", { id: "tasks" }, workspace.tasks.map((task) => el("li", {}, task.title,
      " ", el("button", {
        class: "small",
        onclick: () => act("DELETE", "/api/tasks/" + task.uuid),
      }, "delete")))),
    newTask);
}

// ---- one project -----------------------------------------------------------

async function renderProject(uuid) {
  let detail;
  try {
    detail = await api("GET", "/api/projects/" + uuid);
  } catch (error) {
    view.replaceChildren(el("h1", { id: "project-name" }, "Project gone"),
      el("p", {}, error.message + ". ", el("a", { href: "/" }, "Back to the workspace")));
    return;
  }
  const workspace = await api("GET", "/api/workspace");
  const { project, assignments, dependencies } = detail;
  const base = "/api/projects/" + uuid;
  const titleOf = new Map(assignments.map((a) => [a.uuid, a.title]));
  const order = assignments.map((a) => a.uuid);

  const move = (from, to) => {
    const next = order.slice();
    const [moved] = next.splice(from, 1);
    next.splice(to, 0, moved);
    return act("PUT", base + "/assignments/order", { order: next });
  };

  const renameInput = el("input", { type: "text", id: "rename-input", value: project.name,
    required: "" });
  const rename = el("form", { id: "rename" }, renameInput,
    el("button", { type: "submit", id: "rename-button" }, "Rename"), errorSlot());
  rename.addEventListener("submit", submitter(rename,
    () => api("PATCH", base, { name: renameInput.value })));

  const taskSelect = el("select", { id: "task-select" },
    workspace.tasks.map((task) => el("option", { value: task.uuid }, task.title)));
  const assign = el("form", { id: "assign" }, taskSelect,
    el("button", { type: "submit" }, "Assign task"), errorSlot());
  assign.addEventListener("submit", submitter(assign,
    () => api("POST", base + "/assignments", { task_uuid: taskSelect.value })));

  const choice = (id) => el("select", { id },
    assignments.map((a, at) => el("option", { value: a.uuid }, `${at + 1}. ${a.title}`)));
  const waiting = choice("waiting-select");
  const waitedFor = choice("waited-for-select");
  const depend = el("form", { id: "depend" }, waiting, " waits for ", waitedFor,
    el("button", { type: "submit" }, "Add dependency"), errorSlot());
  depend.addEventListener("submit", submitter(depend, () => api("POST", base + "/dependencies", {
    assignment_uuid: waiting.value,
    depends_on_uuid: waitedFor.value,
  })));

  view.replaceChildren(
    el("p", {}, el("a", { href: "/" }, "← Workspace")),
    el("h1", { id: "project-name" }, project.name,
      project.is_template ? el("span", { class: "badge" }, "template") : ""),
    rename,
    el("h2", {}, "Assignments"),
    el("ol", { id: "assignments" }, assignments.map((a, at) => el("li", { "data-uuid": a.uuid },
      a.title, " ",
      el("button", { class: "small", title: "move up", onclick: () => move(at, at - 1),
        ...(at === 0 ? { disabled: "" } : {}) }, "↑"),
      el("button", { class: "small", title: "move down", onclick: () => move(at, at + 1),
        ...(at === order.length - 1 ? { disabled: "" } : {}) }, "↓"),
      el("button", {
        class: "small", title: "remove",
        onclick: () => act("DELETE", base + "/assignments/" + a.uuid),
      }, "remove")))),
    assign,
    el("h2", {}, "Dependencies"),
    el("ul", { id: "dependencies" }, dependencies.map((d) => el("li", {},
      `${titleOf.get(d.assignment_uuid)} waits for ${titleOf.get(d.depends_on_uuid)} `,
      el("button", {
        class: "small",
        onclick: () => act("DELETE",
          `${base}/dependencies/${d.assignment_uuid}/${d.depends_on_uuid}`),
      }, "remove")))),
    assignments.length > 1
      ? depend
      : el("p", { class: "muted" }, "Assign two tasks to add a dependency."));
}

// ---- routing -----------------------------------------------------------------

const route = location.pathname.match(/^\/projects\/([0-9a-fA-F-]{36})$/);
if (route) {
  const uuid = route[1].toLowerCase();
  follow(["projects:project:" + uuid, "projects:tasks"], () => renderProject(uuid));
} else {
  follow(["projects:all"], () => renderOverview());
}
