#!/usr/bin/env node
// Validates Kubernetes manifests offline, without a cluster, against the API schema
// that the npm package kubernetes-models bundles (generated from Kubernetes' OpenAPI
// spec), in two passes per object:
//   1. JSON-schema validation (ajv): types, required fields, enums, formats;
//   2. a TypeScript compile of the object as a literal of the package's typed model:
//      the excess-property check rejects unknown or misspelt fields at any depth,
//      which the schema pass lets through (as kubectl's client-side decoding would).
// Usage: NODE_PATH=DIR/node_modules node validate.cjs FILE.yaml...
// (npm install --prefix DIR kubernetes-models@4.5.1 yaml@2.9.1 typescript@5.9.3)
// Prints one line per object, exit 0 if every object passed both, 1 otherwise.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const YAML = require("yaml");
const ts = require("typescript");

function modulePath(apiVersion, kind) {
  // "v1" -> kubernetes-models/v1/Kind, "apps/v1" -> kubernetes-models/apps/v1/Kind
  return `kubernetes-models/${apiVersion}/${kind}`;
}

function load(files) {
  const objects = [];
  for (const file of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { uniqueKeys: true });
    docs.forEach((doc, i) => {
      if (doc.errors.length) throw new Error(`${file}: document ${i + 1}: ${doc.errors[0].message}`);
      const obj = doc.toJS();
      if (obj === null) return; // empty document
      objects.push({ file, index: i + 1, obj });
    });
  }
  return objects;
}

function schemaPass(o) {
  const { apiVersion, kind } = o.obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string") return "no apiVersion/kind";
  let Model;
  try {
    Model = require(modulePath(apiVersion, kind))[kind];
  } catch (e) {
    return `unknown apiVersion/kind ${apiVersion}/${kind}`;
  }
  if (!Model) return `unknown kind ${kind} in ${apiVersion}`;
  try {
    new Model(o.obj).validate();
  } catch (e) {
    return e.message;
  }
  return null;
}

function typePass(objects) {
  const modelsDir = path.dirname(require.resolve("kubernetes-models/package.json"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-validate-"));
  const file = path.join(dir, "manifests.ts");
  const lines = [];
  const firstLine = []; // line (1-based) where each object's literal starts
  objects.forEach((o, n) => {
    const { apiVersion, kind } = o.obj;
    lines.push(`import type { I${kind} as T${n} } from "${modulePath(apiVersion, kind)}";`);
  });
  objects.forEach((o, n) => {
    firstLine.push(lines.length + 1);
    lines.push(...`export const object${n}: T${n} = ${JSON.stringify(o.obj, null, 2)};`.split("\n"));
  });
  fs.writeFileSync(file, lines.join("\n"));
  const program = ts.createProgram([file], {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    moduleResolution: ts.ModuleResolutionKind.Node10,
    module: ts.ModuleKind.CommonJS,
    target: ts.ScriptTarget.ES2020,
    baseUrl: dir,
    paths: { "kubernetes-models/*": [path.join(modelsDir, "*")] },
  });
  const errors = new Map(); // object (null: not tied to one) -> messages
  const add = (o, msg) => (errors.get(o) || errors.set(o, []).get(o)).push(msg);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (!d.file || d.file.fileName !== file) {
      add(null, msg);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line + 1;
    let o = null;
    firstLine.forEach((l, k) => {
      if (l <= line) o = objects[k];
    });
    add(o, `${msg} (at ${lines[line - 1].trim()})`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return errors;
}

const files = process.argv.slice(2);
if (!files.length) {
  console.error("usage: validate.cjs FILE.yaml...");
  process.exit(2);
}
let objects;
try {
  objects = load(files);
} catch (e) {
  console.log(`FAIL ${e.message}`);
  process.exit(1);
}
let failed = 0;
for (const o of objects) o.schema = schemaPass(o);
// Objects of an unknown kind have no model to compile against.
const typeErrors = typePass(objects.filter((o) => !/^unknown|^no apiVersion/.test(o.schema || "")));
for (const o of objects) {
  const name = `${o.file}#${o.index} ${o.obj.kind}/${(o.obj.metadata || {}).name}`;
  const problems = [];
  if (o.schema) problems.push(`schema: ${o.schema}`);
  for (const t of typeErrors.get(o) || []) problems.push(`fields: ${t}`);
  if (problems.length) {
    failed++;
    console.log(`FAIL ${name}`);
    for (const p of problems) console.log(`    ${p}`);
  } else {
    console.log(`ok   ${name} (${o.obj.apiVersion}: schema and fields)`);
  }
}
for (const t of typeErrors.get(null) || []) {
  failed++;
  console.log(`FAIL typescript: ${t}`);
}
process.exit(failed ? 1 : 0);
