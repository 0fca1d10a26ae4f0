// An express-like hello service on node's http module, with one (vendored) dependency.
// `node index.js --once` prints one response and exits (used by the demo).
const http = require("http");
const os = require("os");
const fmt = require("tiny-format");

let served = 0;
function respond() {
  served += 1;
  return `hello from uid ${process.getuid()} on node ${process.version} — ${fmt(1234567 + served)} requests served\n`;
}

if (process.argv.includes("--once")) {
  process.stdout.write(respond());
  process.exit(0);
}
const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => res.end(respond()))
  .listen(port, () => console.log(`listening on ${os.hostname()}:${port} (NODE_ENV=${process.env.NODE_ENV})`));
