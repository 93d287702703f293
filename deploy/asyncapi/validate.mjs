// Validates AsyncAPI documents with AsyncAPI's own parser: the JSON schema of
// the document's `asyncapi` version plus the parser's rules (references that
// resolve, operations that name their channel's messages, ...).
// Usage: node deploy/asyncapi/validate.mjs FILE...; exits 1 naming every error.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const diagnostics = await parser.validate(await readFile(file, "utf8"), { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of errors) {
    console.error(`${file}: ${d.path.join(".") || "(document)"}: ${d.message} [${d.code}]`);
  }
  failed ||= errors.length > 0;
  if (errors.length === 0) console.log(`${file}: valid AsyncAPI ${diagnostics.length ? `(${diagnostics.length} hints)` : ""}`.trim());
}
process.exit(failed ? 1 : 0);
