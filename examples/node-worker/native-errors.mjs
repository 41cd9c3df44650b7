#!/usr/bin/env node
// Print what ajv and zod say about entity documents, exactly as the libraries
// produce it. Used by the test suite (tests/integration/api/test_native_formats.py)
// so that the server's adapters are tested on real output, and handy for a
// worker author who wants to see the native shapes.
//
//   node native-errors.mjs < documents.json
//
// Input: a JSON array of entity documents. Output: a JSON array with, for each
// document, {"ajv_all_errors", "ajv_first_error", "ajv_verbose", "zod3",
// "zod4"}: ajv v8 ErrorObject[] (allErrors on, off, and on with verbose: true),
// and ZodError.issues of zod 3 and zod 4 (null when the document is valid).

import { readFileSync } from "node:fs";
import { z as z3 } from "zod";
import { z as z4 } from "zod4";
import { ajvValidator } from "./lib/ajv-validator.mjs";
import { entityDocumentSchema } from "./lib/entity-document-zod.mjs";

const documents = JSON.parse(readFileSync(0, "utf8"));
const validators = {
  ajv_all_errors: ajvValidator({ allErrors: true }),
  ajv_first_error: ajvValidator({ allErrors: false }),
  ajv_verbose: ajvValidator({ allErrors: true, verbose: true }),
};
const zodSchemas = { zod3: entityDocumentSchema(z3), zod4: entityDocumentSchema(z4) };

const results = documents.map((document) => {
  const result = {};
  for (const [name, validate] of Object.entries(validators)) {
    result[name] = validate(document) ? null : validate.errors;
  }
  for (const [name, schema] of Object.entries(zodSchemas)) {
    const parsed = schema.safeParse(document);
    result[name] = parsed.success ? null : parsed.error.issues;
  }
  return result;
});
process.stdout.write(JSON.stringify(results));
