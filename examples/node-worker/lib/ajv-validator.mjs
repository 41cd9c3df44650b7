// ajv v8 (JSON Schema draft 2020-12) compiled for the published entity-document schema.
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const SCHEMA_URL = new URL("../../../app/worker/schemas/entity-document.v1.schema.json", import.meta.url);

export function loadEntitySchema() {
  return JSON.parse(readFileSync(SCHEMA_URL, "utf8"));
}

export function ajvValidator(options = {}, schema = loadEntitySchema()) {
  const ajv = new Ajv2020({ strict: false, ...options });
  addFormats(ajv);
  return ajv.compile(schema);
}
