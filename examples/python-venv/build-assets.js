// The asset pipeline (seed 001 runs gulp): concatenate and minify media/css and media/js into
// static_final/. No dependencies, so the example builds offline.
const fs = require("fs");
const path = require("path");
const out = path.join(__dirname, "static_final");
fs.mkdirSync(out, { recursive: true });
for (const kind of ["css", "js"]) {
  const dir = path.join(__dirname, "media", kind);
  const text = fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n");
  const min = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\s+/g, " ").trim();
  fs.writeFileSync(path.join(out, `bundle.min.${kind}`), min + "\n");
}
console.log("assets built:", fs.readdirSync(out).join(", "));
