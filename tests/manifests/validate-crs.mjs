// SPDX-License-Identifier: GPL-2.0-or-later
// Validates the Prometheus Operator custom resources (ServiceMonitor, PrometheusRule) given as
// JSON files against the schemas of their CRDs, as compiled into the
// @kubernetes-models/prometheus-operator package. Prints one line per resource; exits 1 if any
// fails, 2 if a kind has no schema here.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modelsDir = process.env.MODELS_DIR;
const kinds = {
  "monitoring.coreos.com/v1/ServiceMonitor": "monitoring.coreos.com/v1/ServiceMonitor.js",
  "monitoring.coreos.com/v1/PrometheusRule": "monitoring.coreos.com/v1/PrometheusRule.js",
};

let failed = 0;
for (const file of process.argv.slice(2)) {
  for (const resource of JSON.parse(readFileSync(file, "utf8"))) {
    const key = `${resource.apiVersion}/${resource.kind}`;
    const module = kinds[key];
    if (!module) {
      console.log(`FAIL ${file}: no schema here for ${key}`);
      process.exit(2);
    }
    const exports = await import(`${modelsDir}/${module}`);
    const Model = exports[resource.kind];
    try {
      new Model(resource).validate();
      console.log(`PASS ${file}: ${resource.kind}/${resource.metadata.name}`);
    } catch (error) {
      failed += 1;
      const details = (error.errors || []).map((e) => `${e.instancePath} ${e.message}`).join("; ");
      console.log(`FAIL ${file}: ${resource.kind}/${resource.metadata.name}: ${details || error.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
