// The entity document (app/worker/schemas/entity-document.v1.schema.json)
// as a zod schema. Written once against the API zod 3 and zod 4 share, and
// built with whichever `z` the caller passes: entityDocumentSchema(z).
//
// Not generated from the JSON Schema: a zod worker writes its own, and the
// point is to report what zod itself says. It follows the JSON Schema's
// rules field by field, plus one semantic check JSON Schema cannot express
// (span.end >= span.start), reported as a zod "custom" issue.

const ENTITY_TYPES = ["Condition", "MedicationStatement", "AllergyIntolerance", "Observation", "Procedure"];

export function entityDocumentSchema(z) {
  const text = z.string().min(1).max(1000);
  const code = z.string().min(1).max(64);
  const codeSystem = z.string().regex(/^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$/);
  const confidence = z.number().min(0).max(1);
  const span = z
    .object({
      page: z.number().int().min(1),
      start: z.number().int().min(0),
      end: z.number().int().min(0),
    })
    .strict()
    .superRefine((value, ctx) => {
      if (value.end < value.start) {
        ctx.addIssue({ code: "custom", path: ["end"], message: "span end must not be before its start" });
      }
    });
  const attributes = z.record(z.string().max(64), z.union([z.string(), z.number(), z.boolean()]));
  const unit = z.string().min(1).max(64);
  // FHIR Quantity: value, unit (UCUM), and optionally the coded unit (system + code).
  const quantity = z
    .object({
      value: z.number(),
      unit,
      system: codeSystem.optional(),
      code: z.string().min(1).max(64).optional(),
    })
    .strict();
  const date = z.string().date();
  const common = {
    text,
    code,
    code_system: codeSystem,
    confidence,
    span,
    attributes: attributes.optional(),
  };
  const entity = z.discriminatedUnion("entity_type", [
    z.object({ entity_type: z.literal("Condition"), ...common, onset_date: date.optional() }).strict(),
    z
      .object({
        entity_type: z.literal("MedicationStatement"),
        ...common,
        dosage: quantity.extend({ value: z.number().gt(0) }).strict().optional(),
      })
      .strict(),
    z
      .object({
        entity_type: z.literal("AllergyIntolerance"),
        ...common,
        criticality: z.enum(["low", "high", "unable-to-assess"]).optional(),
      })
      .strict(),
    z
      .object({ entity_type: z.literal("Observation"), ...common, value: quantity, effective_date: date.optional() })
      .strict(),
    z.object({ entity_type: z.literal("Procedure"), ...common, performed_date: date.optional() }).strict(),
  ]);
  return z
    .object({
      document_id: z.string().min(1).max(200),
      schema_version: z.literal(1),
      extracted_at: z.string().datetime({ offset: true }),
      source: z
        .object({
          page_count: z.number().int().min(1).optional(),
          mime_type: z.string().regex(/^[a-z]+\/[A-Za-z0-9.+-]+$/).optional(),
        })
        .strict()
        .optional(),
      entities: z.array(entity),
    })
    .strict();
}

export { ENTITY_TYPES };
