// Validates rendered Kubernetes manifests (multi-document YAML on stdin or
// in the files named) against the Kubernetes JSON schemas shipped in the npm
// package kubernetes-models (and prometheus-operator's for ServiceMonitor).
// Every object must be of a known apiVersion/kind and valid; exits 1 with
// the object and the schema error otherwise.
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  try {
    // prometheus-operator's models are ES modules, exported per version.
    const m = group === "monitoring.coreos.com"
      ? await import(`@kubernetes-models/prometheus-operator/${group}/${version}`)
      : require(`kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`);
    return m[kind] || null;
  } catch (e) {
    return null;
  }
}

const texts = process.argv.length > 2
  ? process.argv.slice(2).map((f) => [f, fs.readFileSync(f, "utf8")])
  : [["<stdin>", fs.readFileSync(0, "utf8")]];
async function main() {
let failed = 0, checked = 0;
for (const [file, text] of texts) {
  for (const doc of yaml.loadAll(text)) {
    if (!doc) continue;
    const name = `${file}: ${doc.apiVersion} ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const Model = await modelFor(doc.apiVersion || "", doc.kind || "");
    if (!Model) { console.log(`FAIL ${name}: no schema for this apiVersion/kind`); failed++; continue; }
    try {
      new Model(doc).validate();
      console.log(`ok   ${name}`);
      checked++;
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
}
main();
