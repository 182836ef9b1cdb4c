// The API reference page: fetches /api/openapi.json and lays out its operations by tag, with method,
// path, summary, roles, parameters, body fields and answer. Everything from the document is data, so it
// goes in through textContent and DOM calls only (never as markup), and nothing is fetched from elsewhere.

const statusLine = document.getElementById("api-docs-status");
const intro = document.getElementById("api-docs-intro");
const tagNav = document.getElementById("api-docs-tags");
const operationsBox = document.getElementById("api-docs-operations");

const METHODS = ["get", "post", "put", "patch", "delete"];

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  // Strings given to append() become text nodes, never markup.
  node.append(...children);
  return node;
}

// Descriptions mark code with backticks; those parts become <code> elements holding text.
function prose(text) {
  const paragraph = el("p");
  text.split("`").forEach((part, index) => paragraph.append(index % 2 ? el("code", "", part) : part));
  return paragraph;
}

function componentName(ref) {
  return ref.split("/").pop();
}

function resolve(doc, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen < 32) {
    schema = doc.components?.schemas?.[componentName(schema.$ref)];
    seen += 1;
  }
  return schema ?? {};
}

function typeOf(schema) {
  if (!schema) {
    return "any";
  }
  if (schema.$ref) {
    return componentName(schema.$ref);
  }
  if ("const" in schema) {
    return JSON.stringify(schema.const);
  }
  if (Array.isArray(schema.enum)) {
    return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  }
  const options = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(options)) {
    return options.map(typeOf).join(" | ");
  }
  if (schema.type === "array") {
    return `array of ${typeOf(schema.items)}`;
  }
  if (Array.isArray(schema.type)) {
    return schema.type.join(" | ");
  }
  if (schema.type) {
    return schema.format ? `${schema.type} (${schema.format})` : schema.type;
  }
  return "any";
}

const LIMITS = [
  ["minLength", "at least %s characters"],
  ["maxLength", "at most %s characters"],
  ["minimum", "≥ %s"],
  ["maximum", "≤ %s"],
  ["exclusiveMinimum", "> %s"],
  ["exclusiveMaximum", "< %s"],
  ["pattern", "matches %s"],
  ["default", "default %s"],
];

function notes(schema) {
  const parts = [];
  for (const part of [schema, ...(schema.anyOf ?? [])]) {
    for (const [key, template] of LIMITS) {
      if (part && key in part) {
        const value = key === "pattern" ? part[key] : JSON.stringify(part[key]);
        parts.push(template.replace("%s", value));
      }
    }
  }
  if (schema.writeOnly) {
    parts.push("write-only");
  }
  return [schema.description, parts.join(", ")].filter(Boolean).join(". ");
}

function table(headings, rows) {
  const head = el("tr", "", ...headings.map((heading) => el("th", "", heading)));
  const body = rows.map((cells) => el("tr", "", ...cells.map((cell) => el("td", "", cell))));
  return el("table", "fields", el("thead", "", head), el("tbody", "", ...body));
}

function parametersSection(operation) {
  const parameters = operation.parameters ?? [];
  if (parameters.length === 0) {
    return [];
  }
  const rows = parameters.map((parameter) => [
    el("code", "", parameter.name),
    parameter.in,
    typeOf(parameter.schema),
    parameter.required ? "yes" : "no",
    notes({ ...(parameter.schema ?? {}), description: parameter.description }),
  ]);
  return [el("h4", "", "Parameters"), table(["name", "in", "type", "required", "notes"], rows)];
}

function fieldsTable(model) {
  const required = new Set(model.required ?? []);
  const rows = Object.entries(model.properties ?? {}).map(([name, field]) => [
    el("code", "", name),
    typeOf(field),
    required.has(name) ? "yes" : "no",
    notes(field),
  ]);
  return table(["field", "type", "required", "notes"], rows);
}

function bodySection(doc, operation) {
  const schema = operation.requestBody?.content?.["application/json"]?.schema;
  if (!schema) {
    return [];
  }
  const model = resolve(doc, schema);
  const heading = el("h4", "", `Body (JSON, ${typeOf(schema)})`);
  const parts = [heading];
  if (model.description) {
    parts.push(prose(model.description));
  }
  // A body that is one of several shapes (a union) gets one table per shape.
  const options = model.oneOf ?? model.anyOf;
  for (const option of Array.isArray(options) ? options : [schema]) {
    const shape = resolve(doc, option);
    if (option !== schema) {
      parts.push(el("p", "", `Either ${typeOf(option)}:`));
    }
    parts.push(fieldsTable(shape));
    if (shape.additionalProperties === false) {
      parts.push(el("p", "muted", "No other fields."));
    }
  }
  return parts;
}

function answerSection(operation) {
  const [status, response] =
    Object.entries(operation.responses ?? {}).find(([code]) => code.startsWith("2")) ?? [];
  if (!response) {
    return [];
  }
  const envelope = response.content?.["application/json"]?.schema ?? {};
  const data = envelope.properties?.data;
  const paged = envelope.properties?.pagination ? ", with pagination" : "";
  const text = `${status}: data is ${data?.type === "null" ? "null" : typeOf(data)}${paged}`;
  return [el("h4", "", "Answer"), el("p", "", text)];
}

function rolesLine(operation) {
  const roles = operation["x-roles"] ?? [];
  const text = roles.length ? `Roles: ${roles.join(", ")}` : "Public: no sign-in needed";
  return el("p", "roles", text);
}

function operationBlock(doc, path, method, operation) {
  const summary = el(
    "summary",
    "",
    el("span", `method method-${method}`, method.toUpperCase()),
    " ",
    el("code", "path", path),
    " ",
    el("span", "op-summary", operation.summary ?? ""),
  );
  const block = el(
    "details",
    "operation",
    summary,
    rolesLine(operation),
    ...parametersSection(operation),
    ...bodySection(doc, operation),
    ...answerSection(operation),
  );
  if (operation.operationId) {
    block.id = `op-${operation.operationId}`;
  }
  return block;
}

function render(doc) {
  for (const paragraph of (doc.info?.description ?? "").split(/\n\s*\n/)) {
    if (paragraph.trim()) {
      intro.append(prose(paragraph.replace(/\s*\n\s*/g, " ")));
    }
  }
  const byTag = new Map((doc.tags ?? []).map((tag) => [tag.name, []]));
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation) {
        const tag = operation.tags?.[0] ?? "other";
        if (!byTag.has(tag)) {
          byTag.set(tag, []);
        }
        byTag.get(tag).push(operationBlock(doc, path, method, operation));
      }
    }
  }
  const links = [];
  for (const [tag, blocks] of byTag) {
    if (blocks.length === 0) {
      continue;
    }
    const anchor = `tag-${tag.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    const section = el("section", "tag-group", el("h2", "", tag), ...blocks);
    section.id = anchor;
    operationsBox.append(section);
    const link = el("a", "", tag);
    link.href = `#${anchor}`;
    links.push(link);
  }
  tagNav.append(...links);
  statusLine.textContent = `${doc.info?.title ?? "API"} ${doc.info?.version ?? ""}`.trim();
}

async function main() {
  try {
    const response = await fetch("/api/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(`status ${response.status}`);
    }
    render(await response.json());
  } catch {
    statusLine.textContent = "The API document could not be loaded. Reload the page to try again.";
  }
}

main();
