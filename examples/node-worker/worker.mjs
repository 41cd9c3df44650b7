#!/usr/bin/env node
// A worker for the Clinical Intelligence worker API, written from the docs
// alone (README.md, docs/worker-contract.md, docs/error-details.md and the
// OpenAPI document): Node 18+ built-in fetch, ajv or zod, no framework.
//
//   API_URL=http://127.0.0.1:5000 WORKER_TOKEN=cit_... \
//     node worker.mjs [--validator ajv|zod3|zod4] [--simulate-timeout] document.json...
//
// (WORKER_TOKEN as `make demo` prints it; API_TOKEN is read too.)
//
// For each entity document: create a job, start it, validate the document,
// and report the outcome -- the entities when it is valid, else the
// validator's own errors as they are (error_format "ajv" or "zod": the server
// normalises them). Every POST carries an Idempotency-Key and is retried with
// the same key as the contract's "Which answers to retry" says: no answer (at
// once, then with a growing pause), 503, 409 idempotency-key-in-progress and
// 429 after Retry-After, a 500 a few times with a growing pause, nothing
// else. An answer that is not JSON (a proxy's error page) is reported with
// its status, not parsed. --simulate-timeout drops the first answer of every
// POST, as a client timeout would, so the retry gets the stored answer
// (Idempotent-Replayed: true) and nothing is done twice.
//
// Prints one JSON line per step on stdout; problems are printed with the
// place of each error (pointer, parameter or header).

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { z as z3 } from "zod";
import { z as z4 } from "zod4";
import { ajvValidator } from "./lib/ajv-validator.mjs";
import { entityDocumentSchema } from "./lib/entity-document-zod.mjs";

const API = `${(process.env.API_URL ?? "http://127.0.0.1:5000").replace(/\/$/, "")}/api/v1`;
const TOKEN = process.env.WORKER_TOKEN ?? process.env.API_TOKEN;
const MAX_ATTEMPTS = 5;
// The longest Retry-After honoured (seconds): a longer one ends the retries.
const MAX_RETRY_AFTER_S = 120;
// Who reports (docs/worker-contract.md, "Who sent a report"): stored on each
// failure; a group resolved "in version X" stays resolved for older versions.
const WORKER = { name: "node-example-worker", version: "1.0.0" };

class ProblemError extends Error {
  constructor(status, problem) {
    super(`${status} ${problem?.type ?? ""}: ${problem?.detail ?? problem?.title ?? ""}`);
    this.status = status;
    this.problem = problem;
  }
}

function log(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

// Where each error of a problem is: the body (pointer), the query (parameter) or a header.
function problemPlaces(problem) {
  return (problem.errors ?? []).map((error) => {
    if ("pointer" in error) return { pointer: error.pointer, detail: error.detail };
    if ("parameter" in error) return { parameter: error.parameter, detail: error.detail };
    return { header: error.header, detail: error.detail };
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The answer's JSON, or for a body that is not JSON (an HTML error page of a
// proxy in front of the API) a stand-in problem holding its status.
function parseAnswer(response, text) {
  if (!text) {
    // An error with no body (a proxy's 502, say) still needs a problem to report.
    return response.ok ? null : { type: "about:blank", title: response.statusText, detail: `an empty ${response.status} answer` };
  }
  try {
    return JSON.parse(text);
  } catch {
    return { type: "about:blank", title: response.statusText, detail: `a ${response.status} answer that is not JSON` };
  }
}

// Retry-After as seconds (RFC 9110 section 10.2.3: delay-seconds or an
// HTTP-date), 1 when absent, null when unreadable.
function retryAfterSeconds(value) {
  if (value === null) return 1;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

// How long to wait before the next try (ms), or null for "do not retry":
// docs/worker-contract.md, "Which answers to retry".
function retryPause(response, payload, attempt) {
  const type = String(payload?.type ?? "");
  const afterRetryAfter =
    response.status === 503 ||
    response.status === 429 ||
    (response.status === 409 && type.endsWith("/idempotency-key-in-progress"));
  if (afterRetryAfter) {
    const seconds = retryAfterSeconds(response.headers.get("Retry-After"));
    if (seconds === null || seconds > MAX_RETRY_AFTER_S) return null;
    return seconds * 1000;
  }
  // A gateway that got no answer from the API (502, 504) is "no answer": a growing pause.
  if (response.status === 502 || response.status === 504) return 200 * attempt;
  if (response.status === 500) return 500 * 2 ** (attempt - 1); // a bug: a few times, a growing pause
  return null; // any other answer: the request itself is wrong or no longer applies
}

async function call(method, path, body, { simulateTimeout = false } = {}) {
  const headers = { Authorization: `Bearer ${TOKEN}`, "X-Request-ID": randomUUID() };
  if (method === "POST") headers["Idempotency-Key"] = randomUUID(); // one key for every attempt
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 1; ; attempt += 1) {
    let response;
    try {
      response = await fetch(`${API}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS) throw error;
      await sleep(200 * attempt);
      continue;
    }
    const text = await response.text();
    if (simulateTimeout && attempt === 1 && method === "POST") {
      // The answer is lost, as after a client-side timeout: the server made
      // the change, and the retry below (same key, same body) must not make it again.
      log({ event: "simulated-timeout", method, path });
      continue;
    }
    const payload = parseAnswer(response, text);
    const pause = retryPause(response, payload, attempt);
    if (pause !== null && attempt < MAX_ATTEMPTS) {
      await sleep(pause);
      continue;
    }
    if (!response.ok) throw new ProblemError(response.status, payload);
    return { status: response.status, body: payload, replayed: response.headers.get("Idempotent-Replayed") === "true" };
  }
}

const VALIDATORS = {
  ajv: () => {
    const validate = ajvValidator({ allErrors: true });
    return (document) => (validate(document) ? null : { error_format: "ajv", error_details: validate.errors });
  },
  zod3: () => {
    const schema = entityDocumentSchema(z3);
    return (document) => {
      const result = schema.safeParse(document);
      return result.success ? null : { error_format: "zod", error_details: result.error.issues };
    };
  },
  zod4: () => {
    const schema = entityDocumentSchema(z4);
    return (document) => {
      const result = schema.safeParse(document);
      return result.success ? null : { error_format: "zod", error_details: result.error.issues };
    };
  },
};

const ENTITY_FIELDS = ["entity_type", "text", "code", "code_system", "confidence", "span"];

// An entity of the document as the API's ExtractedEntityInput: the measured
// value (an observation's value, a medication's dosage) as the FHIR Quantity
// `value`, the other type-specific fields under attributes.
function entityInput(entity) {
  const input = Object.fromEntries(ENTITY_FIELDS.map((name) => [name, entity[name]]));
  const quantity = entity.value ?? entity.dosage;
  if (quantity !== undefined) input.value = quantity;
  const attributes = { ...(entity.attributes ?? {}) };
  for (const [name, value] of Object.entries(entity)) {
    if (![...ENTITY_FIELDS, "value", "dosage", "attributes"].includes(name)) attributes[name] = value;
  }
  if (Object.keys(attributes).length > 0) input.attributes = attributes;
  return input;
}

async function processDocument(path, validate, options) {
  const document = JSON.parse(readFileSync(path, "utf8"));
  const name = basename(path);
  const created = await call("POST", "/processing-jobs", { document_id: document.document_id ?? name }, options);
  const jobId = created.body.id;
  log({ event: "created", document: name, job_id: jobId, replayed: created.replayed });
  const started = await call("POST", `/processing-jobs/${jobId}/start`, undefined, options);
  log({ event: "started", document: name, job_id: jobId, replayed: started.replayed });
  const failure = validate(document);
  const report = failure
    ? { status: "validation_failed", error_message: "The entity document failed validation.", ...failure, worker: WORKER }
    : { status: "completed", entities: document.entities.map(entityInput) };
  const result = await call("POST", `/processing-jobs/${jobId}/result`, report, options);
  log({
    event: "reported",
    document: name,
    job_id: jobId,
    status: result.body.status,
    error_format: result.body.error_format,
    error_count: result.body.error_details?.error_count ?? 0,
    replayed: result.replayed,
  });
}

async function main() {
  const args = process.argv.slice(2);
  let validator = "ajv";
  const options = { simulateTimeout: false };
  const paths = [];
  for (let i = 0; i < args.length; i += 1) {
    if (args[i] === "--validator") validator = args[++i];
    else if (args[i] === "--simulate-timeout") options.simulateTimeout = true;
    else paths.push(args[i]);
  }
  if (!TOKEN) throw new Error("set WORKER_TOKEN to a worker token (flask tokens create --name <host>)");
  if (!(validator in VALIDATORS)) throw new Error(`--validator must be one of ${Object.keys(VALIDATORS)}`);
  const validate = VALIDATORS[validator]();
  let failed = 0;
  for (const path of paths) {
    try {
      await processDocument(path, validate, options);
    } catch (error) {
      failed += 1;
      if (!(error instanceof ProblemError)) throw error;
      log({ event: "problem", document: basename(path), status: error.status, type: error.problem?.type,
            places: problemPlaces(error.problem ?? {}) }); // prettier-ignore
    }
  }
  // A problem about a query parameter, to show where its error points.
  try {
    await call("GET", "/processing-jobs?limit=0");
  } catch (error) {
    if (!(error instanceof ProblemError)) throw error;
    log({ event: "problem", status: error.status, type: error.problem.type, places: problemPlaces(error.problem) });
  }
  process.exitCode = failed ? 1 : 0;
}

await main();
